//! [`AppendWriter`]: the growable mmap writer for logs and bulk output.

use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use pmap::Lock;

use crate::{Error, MapStream, Result, StreamOptions};

/// An append-only [`Write`] into a mapped file that grows by doubling and is trimmed to the
/// bytes written when it finishes.
///
/// - It opens with room for `capacity` bytes past the file's current end
///   ([`AppendOptions::capacity`], default [`AppendWriter::DEFAULT_CAPACITY`], 10 MiB) and appends after that end, so re-opening a
///   file continues it.
/// - A write is a copy into the mapping; when the room runs out the mapping (and file) doubles
///   ([`pmap::Map::reserve`]), keeping every byte.
/// - [`Write::flush`] (or [`AppendWriter::sync`]) writes the bytes appended since the last
///   flush to the disk and waits.
/// - [`AppendWriter::finish`] trims the file to the bytes written and returns its length;
///   dropping the writer trims too, best effort.
/// - It holds an exclusive advisory lock on the file, so a second writer on the same file fails
///   to open with [`pmap::Error::LockContended`] instead of interleaving bytes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("out.log");
/// use std::io::Write;
/// use pmap_stream::{AppendOptions, AppendWriter};
///
/// let mut out = AppendOptions::new().capacity(16).open(&path)?;
/// for i in 0..100 {
///     writeln!(out, "line {i}")?; // grows 16 -> 32 -> ... as needed
/// }
/// let len = out.finish()?;
/// assert_eq!(std::fs::metadata(&path)?.len(), len);
///
/// let mut again = AppendWriter::open(&path)?; // appends after the current end
/// again.write_all(b"more\n")?;
/// assert_eq!(again.finish()?, len + 5);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AppendWriter {
    stream: MapStream,
}

/// How an [`AppendWriter`] opens: `AppendOptions::new()`, the setters, then
/// [`AppendOptions::open`]; [`AppendWriter::open`] is the shortcut for the defaults.
#[must_use]
#[derive(Debug, Clone)]
pub struct AppendOptions {
    capacity: usize,
}

impl Default for AppendOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl AppendOptions {
    /// Room for [`AppendWriter::DEFAULT_CAPACITY`] bytes.
    pub fn new() -> Self {
        AppendOptions {
            capacity: AppendWriter::DEFAULT_CAPACITY,
        }
    }

    /// Room for `bytes` past the file's end before the first growth (at least 1).
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Opens (or creates) `path` for appending after its current end.
    ///
    /// # Errors
    /// [`Error::ZeroCapacity`]; [`pmap::Error::LockContended`] when another writer holds the
    /// file; or the [`pmap::Error`] from opening it (a directory, a read-only file, ...).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<AppendWriter> {
        let path = path.as_ref();
        if self.capacity == 0 {
            return Err(Error::ZeroCapacity {
                path: path.to_path_buf(),
            });
        }
        let mut stream = StreamOptions::new()
            .growable(self.capacity)
            .try_lock(Lock::Exclusive)
            .open(path)?;
        stream
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::from_io(e, "seek", path))?;
        Ok(AppendWriter { stream })
    }
}

impl AppendWriter {
    /// The room an [`AppendWriter::open`] reserves: 10 MiB.
    pub const DEFAULT_CAPACITY: usize = 10 << 20;

    /// Opens (or creates) `path` for appending with [`AppendWriter::DEFAULT_CAPACITY`] of room:
    /// `AppendOptions::new().open(path)`.
    ///
    /// # Errors
    /// As [`AppendOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        AppendOptions::new().open(path)
    }

    /// Bytes in the file so far (what [`AppendWriter::finish`] would leave).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.stream.len()
    }

    /// Whether the file holds no bytes yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }

    /// The mapping's current length: bytes that fit before the next doubling.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.stream.capacity()
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.stream.path()
    }

    /// Writes the bytes appended since the last sync to the disk and waits.
    ///
    /// # Errors
    /// The [`pmap::Error`] from flushing.
    pub fn sync(&mut self) -> Result<()> {
        self.stream.sync()
    }

    /// Trims the file to the bytes written, closes it and returns its length. Call
    /// [`AppendWriter::sync`] first for durability against power loss.
    ///
    /// # Errors
    /// The [`pmap::Error`] from truncating the file or releasing its lock.
    pub fn finish(self) -> Result<u64> {
        self.stream.finish()
    }
}

impl Write for AppendWriter {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
