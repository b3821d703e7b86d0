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

/// How a [`MapStream`] opens a file: `StreamOptions::new()`, the setters, then
/// [`StreamOptions::open`] (or [`with_stream`]); [`MapStream::open`] and
/// [`MapStream::open_read_only`] are the shortcuts for the defaults.
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
/// let fixed = StreamOptions::new().fixed(4096).open(&path)?;
/// assert_eq!((fixed.len(), fixed.is_growable()), (4096, false));
/// fixed.finish()?;
/// let reader = MapStream::open_read_only(&path)?;
/// assert!(!reader.is_writable());
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct StreamOptions {
    kind: Kind,
    /// What opening the mapping takes from the caller (create or must exist, read-only, lock,
    /// mode); the stream adds its kind and the size.
    map: MapOptions,
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
            map: MapOptions::new(),
        }
    }

    /// A growable read-write stream (the default) reserving `capacity` bytes past the file's
    /// current end when it opens. A capacity of 0 is taken as 1, as a mapping cannot be empty.
    pub fn growable(mut self, capacity: usize) -> Self {
        self.kind = Kind::Growable { capacity };
        self.map = self.map.read_write();
        self
    }

    /// A fixed-size read-write stream over the whole file, extended first to at least `size`
    /// bytes (0 keeps an existing file's length). Writes past its end are refused.
    pub fn fixed(mut self, size: u64) -> Self {
        self.kind = Kind::Fixed { size };
        self.map = self.map.read_write();
        self
    }

    /// A read-only stream over an existing, non-empty file; every write is refused
    /// ([`MapOptions::read_only`]).
    pub fn read_only(mut self) -> Self {
        self.kind = Kind::ReadOnly;
        self.map = self.map.read_only();
        self
    }

    /// The file must already exist ([`MapOptions::must_exist`]).
    pub fn must_exist(mut self) -> Self {
        self.map = self.map.must_exist();
        self
    }

    /// Holds an advisory lock on the file while the stream is open, waiting for it
    /// ([`MapOptions::lock`]).
    pub fn lock(mut self, lock: Lock) -> Self {
        self.map = self.map.lock(lock);
        self
    }

    /// Holds an advisory lock on the file while the stream is open; a conflicting holder makes
    /// opening fail with [`pmap::Error::LockContended`] ([`MapOptions::try_lock`]).
    pub fn try_lock(mut self, lock: Lock) -> Self {
        self.map = self.map.try_lock(lock);
        self
    }

    /// Permission bits for a file this open creates ([`MapOptions::mode`]; Unix only).
    pub fn mode(mut self, mode: u32) -> Self {
        self.map = self.map.mode(mode);
        self
    }

    /// Opens `path` as a stream: see [`StreamOptions`].
    ///
    /// # Errors
    /// The [`pmap::Error`] from opening the mapping (inside [`Error::Map`]), or [`Error::Io`]
    /// if the file's length cannot be read.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<MapStream> {
        let path = path.as_ref();
        match self.kind {
            Kind::ReadOnly => Ok(MapStream::fixed(self.map.open(path)?)),
            Kind::Fixed { size } => Ok(MapStream::fixed(self.map.clone().size(size).open(path)?)),
            Kind::Growable { capacity } => {
                let room = capacity.max(1);
                // Map the file as it is first, so that its length is read while the lock is
                // held (a stat before opening could miss bytes another writer appends while
                // this one waits for the lock), then make room.
                match self.map.clone().must_exist().open(path) {
                    Ok(mut map) => {
                        let used = map.len();
                        let wanted =
                            used.checked_add(room)
                                .ok_or_else(|| pmap::Error::TooLarge {
                                    path: path.to_path_buf(),
                                    requested: used as u64,
                                })?;
                        map.grow(wanted)?;
                        MapStream::growable_with_len(map, used)
                    }
                    // Nothing to map: a missing file (created now unless it must exist, when
                    // this open fails with `NotFound` again) or an empty one.
                    Err(pmap::Error::NotFound { .. } | pmap::Error::ZeroLength { .. }) => {
                        self.open_empty(path, room)
                    }
                    Err(error) => Err(error.into()),
                }
            }
        }
    }

    fn open_empty(&self, path: &Path, room: usize) -> Result<MapStream> {
        let map = self.map.clone().size(room as u64).open(path)?;
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
    let mut stream = options.open(path)?;
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
