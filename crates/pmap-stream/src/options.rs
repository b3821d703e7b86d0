//! [`StreamOptions`] for opening a stream over a file, and the scoped [`with_stream`].

use std::io;
use std::path::Path;

use pmap::{Lock, MapOptions};

use crate::{Error, MapStream, Result};

/// Room a growable stream reserves past the file's current end when it opens, unless told.
const DEFAULT_STREAM_CAPACITY: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ReadOnly,
    Fixed { size: u64 },
    Growable { capacity: usize },
}

/// How [`MapStream::open`] and [`with_stream`] open a file.
///
/// The default is a **growable** read-write stream that creates the file when absent, holds the
/// file's current bytes, starts at position 0, and reserves 64 KiB of room past the end (the
/// file is trimmed back on [`MapStream::finish`] or drop).
///
/// ```
/// # fn main() -> Result<(), pmap_stream::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("data.bin");
/// use pmap_stream::{MapStream, StreamOptions};
///
/// let fixed = MapStream::open(&path, &StreamOptions::new().fixed(4096))?;
/// assert_eq!((fixed.len(), fixed.is_growable()), (4096, false));
/// fixed.finish()?;
/// let reader = MapStream::open(&path, &StreamOptions::new().read_only())?;
/// assert!(!reader.is_writable());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StreamOptions {
    kind: Kind,
    create: bool,
    lock: Lock,
    lock_wait: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamOptions {
    /// Growable, read-write, create when absent, no lock.
    pub fn new() -> Self {
        StreamOptions {
            kind: Kind::Growable {
                capacity: DEFAULT_STREAM_CAPACITY,
            },
            create: true,
            lock: Lock::None,
            lock_wait: true,
        }
    }

    /// A growable stream (the default) reserving `capacity` bytes past the file's current end
    /// when it opens. A capacity of 0 is taken as 1, as a mapping cannot be empty.
    pub fn growable(mut self, capacity: usize) -> Self {
        self.kind = Kind::Growable { capacity };
        self
    }

    /// A fixed-size read-write stream over the whole file, extended first to at least `size`
    /// bytes (0 keeps an existing file's length). Writes past its end are refused.
    pub fn fixed(mut self, size: u64) -> Self {
        self.kind = Kind::Fixed { size };
        self
    }

    /// A read-only stream over an existing, non-empty file; every write is refused.
    pub fn read_only(mut self) -> Self {
        self.kind = Kind::ReadOnly;
        self.create = false;
        self
    }

    /// The file must already exist.
    pub fn must_exist(mut self) -> Self {
        self.create = false;
        self
    }

    /// Holds an advisory lock on the file while the stream is open, waiting for it.
    pub fn lock(mut self, lock: Lock) -> Self {
        self.lock = lock;
        self.lock_wait = true;
        self
    }

    /// Holds an advisory lock on the file while the stream is open; a conflicting holder makes
    /// opening fail with [`pmap::Error::LockContended`].
    pub fn try_lock(mut self, lock: Lock) -> Self {
        self.lock = lock;
        self.lock_wait = false;
        self
    }

    fn map_options(&self) -> MapOptions {
        let options = MapOptions::new().create(self.create);
        if self.lock_wait {
            options.lock(self.lock)
        } else {
            options.try_lock(self.lock)
        }
    }

    pub(crate) fn open(&self, path: &Path) -> Result<MapStream> {
        match self.kind {
            Kind::ReadOnly => {
                let options = self.map_options().read_only();
                Ok(MapStream::fixed(options.open(path)?))
            }
            Kind::Fixed { size } => Ok(MapStream::fixed(self.map_options().size(size).open(path)?)),
            Kind::Growable { capacity } => {
                let room = capacity.max(1);
                // Map the file as it is first, so that its length is read while the lock is
                // held (a stat before opening could miss bytes another writer appends while
                // this one waits for the lock), then make room.
                match self.map_options().must_exist().open(path) {
                    Ok(mut map) => {
                        let used = map.len();
                        let wanted = used.checked_add(room).ok_or(pmap::Error::TooLarge {
                            requested: used as u64,
                        })?;
                        map.grow(wanted)?;
                        MapStream::growable_with_len(map, used)
                    }
                    // Nothing to map: a missing file (when creating is allowed) or an empty one.
                    Err(pmap::Error::NotFound { .. }) if self.create => self.open_empty(path, room),
                    Err(pmap::Error::ZeroLength { .. }) => self.open_empty(path, room),
                    Err(error) => Err(error.into()),
                }
            }
        }
    }

    fn open_empty(&self, path: &Path, room: usize) -> Result<MapStream> {
        let map = self.map_options().size(room as u64).open(path)?;
        MapStream::growable_with_len(map, 0)
    }
}

/// Opens `path` as a stream, runs `body` on it, and closes it, in the spirit of Lisp's
/// `with-mapping-stream`. Closing is [`MapStream::finish`]: a growable stream's file is trimmed
/// to the bytes it holds. Returns what `body` returned.
///
/// ```
/// # fn main() -> Result<(), pmap_stream::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("notes.txt");
/// use std::io::{BufRead, Write};
/// use pmap_stream::{StreamOptions, with_stream};
///
/// with_stream(&path, &StreamOptions::new(), |s| s.write_all(b"one\ntwo\n"))?;
/// let lines = with_stream(&path, &StreamOptions::new().read_only(), |s| {
///     s.lines().collect::<std::io::Result<Vec<String>>>()
/// })?;
/// assert_eq!(lines, ["one", "two"]);
/// assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
/// # Ok(()) }
/// ```
///
/// # Errors
/// The error from opening; else `body`'s error (the stream is still closed, best effort), as the
/// typed [`Error`] it carried or as [`Error::Io`]; else the error from closing.
pub fn with_stream<T>(
    path: impl AsRef<Path>,
    options: &StreamOptions,
    body: impl FnOnce(&mut MapStream) -> io::Result<T>,
) -> Result<T> {
    let path = path.as_ref();
    let mut stream = MapStream::open(path, options)?;
    match body(&mut stream) {
        Ok(value) => {
            stream.finish()?;
            Ok(value)
        }
        Err(error) => {
            // The body's error is the one worth reporting; closing is best effort here.
            let _ = stream.finish();
            Err(Error::from_io(error, "stream", path))
        }
    }
}
