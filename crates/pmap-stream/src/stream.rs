//! [`MapStream`]: a position over a mapping, with the standard I/O traits.

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::Path;

use pmap::Map;

use crate::{Error, Result, StreamOptions};

/// A stream over a [`pmap::Map`]: a position into the mapped bytes, with [`Read`], [`Write`],
/// [`Seek`] and [`BufRead`], in the manner of [`std::io::Cursor`].
///
/// A stream is *fixed* or *growable*, decided when it is made:
/// - **fixed** ([`MapStream::fixed`]): its end is the mapping's length. A write that does not
///   fit is refused whole with [`Error::NoRoom`]; nothing of it is written.
/// - **growable** ([`MapStream::growable`], [`MapStream::growable_with_len`]): its end is a
///   high-water mark, the furthest byte ever written (or the length it was given). A write past
///   the mapping reserves room by doubling ([`Map::reserve`]), so the mapping (and the file) is
///   usually longer than the stream; [`MapStream::finish`], and dropping the stream, trim the
///   file back to the high-water mark. Writing after seeking past the end fills the gap with
///   zeros, as `Cursor<Vec<u8>>` does.
///
/// Reads stop at the end (`Ok(0)`), never showing the reserved tail; a `read_exact` that runs
/// out fails with [`io::ErrorKind::UnexpectedEof`] and leaves the position at the end, as
/// `Cursor` does. Seeking before byte 0 is an
/// error ([`Error::SeekOutOfRange`]) and leaves the position alone; seeking past the end is
/// allowed. A stream over a read-only mapping refuses every write with [`Error::ReadOnly`].
/// Errors from the I/O traits are [`io::Error`]s carrying one of this crate's [`Error`]s
/// (see [`Error::from_io`]).
///
/// [`Write::flush`] writes the bytes changed since the last flush back to the file and waits for
/// the disk ([`Map::flush_range`]).
#[derive(Debug)]
pub struct MapStream {
    /// `None` only inside the methods that consume the stream, so that `Drop` can tell.
    map: Option<Map>,
    pos: u64,
    end: usize,
    /// The mapping's length and writability, cached so the write fast path makes one call
    /// into `pmap` instead of three (calls across crates are not inlined).
    capacity: usize,
    writable: bool,
    growable: bool,
    dirty_start: usize,
    dirty_end: usize,
}

/// The error for a stream whose map was already taken; only reachable through a bug here, as
/// every method that takes the map also consumes the stream.
fn taken() -> io::Error {
    io::Error::other("pmap-stream: the stream's mapping was already taken")
}

impl MapStream {
    fn new(map: Map, end: usize, growable: bool) -> Self {
        MapStream {
            capacity: map.len(),
            writable: map.is_writable(),
            map: Some(map),
            pos: 0,
            end,
            growable,
            dirty_start: usize::MAX,
            dirty_end: 0,
        }
    }

    /// A fixed-size stream over the whole mapping, positioned at 0.
    pub fn fixed(map: Map) -> Self {
        let end = map.len();
        Self::new(map, end, false)
    }

    /// A growable stream whose current contents are the whole mapping, positioned at 0.
    pub fn growable(map: Map) -> Self {
        let end = map.len();
        Self::new(map, end, true)
    }

    /// A growable stream whose contents are the first `len` bytes of the mapping; the rest is
    /// room to grow into, and is cut off the file by [`MapStream::finish`] or on drop.
    ///
    /// # Errors
    /// [`pmap::Error::OutOfBounds`] (inside [`Error::Map`]) when `len` exceeds the mapping.
    pub fn growable_with_len(map: Map, len: usize) -> Result<Self> {
        if len > map.len() {
            return Err(pmap::Error::OutOfBounds {
                offset: 0,
                len,
                map_len: map.len(),
            }
            .into());
        }
        Ok(Self::new(map, len, true))
    }

    /// Opens (or creates) `path` as a growable read-write stream holding the file's bytes,
    /// positioned at 0: `StreamOptions::new().open(path)`. See [`StreamOptions`] for the rest.
    ///
    /// # Errors
    /// As [`StreamOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        StreamOptions::new().open(path)
    }

    /// Opens an existing, non-empty file as a read-only stream:
    /// `StreamOptions::new().read_only().open(path)`.
    ///
    /// # Errors
    /// As [`StreamOptions::open`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        StreamOptions::new().read_only().open(path)
    }

    /// The position of the next read or write.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves the position (past the end is allowed, as with [`Seek`]).
    pub fn set_position(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// The stream's length: the mapping's length for a fixed stream, the high-water mark for a
    /// growable one.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.end as u64
    }

    /// Whether the stream holds no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// The mapping's current length, the room before the next growth.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.map.as_ref().map_or(0, Map::len)
    }

    /// Whether writes past the end grow the mapping.
    #[must_use]
    pub fn is_growable(&self) -> bool {
        self.growable
    }

    /// Whether the stream accepts writes (its mapping is read-write).
    #[must_use]
    pub fn is_writable(&self) -> bool {
        self.map.as_ref().is_some_and(Map::is_writable)
    }

    /// The mapped file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.map.as_ref().map_or(Path::new(""), Map::path)
    }

    /// The stream's bytes, from 0 to its end.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // The mapping is at least `end` long, except after a growth whose remap failed twice
        // (pmap then leaves no view): show nothing rather than panic.
        self.map
            .as_ref()
            .and_then(|map| map.as_slice().get(..self.end))
            .unwrap_or(&[])
    }

    /// The bytes from the position to the end (empty at or past the end).
    fn remaining(&self) -> &[u8] {
        let bytes = self.as_slice();
        match usize::try_from(self.pos) {
            Ok(pos) if pos < bytes.len() => &bytes[pos..],
            _ => &[],
        }
    }

    /// Writes all of `buf` at the position or nothing: the rules in the type's documentation.
    #[inline]
    fn put(&mut self, buf: &[u8]) -> Result<usize> {
        // The common case, a write inside the mapping that starts at or before the end, is one
        // bounds check and a copy; everything else takes `put_slow`.
        let len = buf.len();
        if let (true, Ok(pos), Some(map)) =
            (self.writable, usize::try_from(self.pos), self.map.as_mut())
        {
            if let Some(new_end) = pos.checked_add(len) {
                if new_end <= self.capacity && pos <= self.end {
                    map.as_mut_slice()?[pos..new_end].copy_from_slice(buf);
                    self.end = self.end.max(new_end);
                    self.pos = new_end as u64;
                    self.dirty_start = self.dirty_start.min(pos);
                    self.dirty_end = self.dirty_end.max(new_end);
                    return Ok(len);
                }
            }
        }
        self.put_slow(buf)
    }

    #[cold]
    fn put_slow(&mut self, buf: &[u8]) -> Result<usize> {
        let Some(map) = self.map.as_mut() else {
            return Err(Error::from_io(taken(), "write", ""));
        };
        if !map.is_writable() {
            return Err(Error::ReadOnly {
                path: map.path().to_path_buf(),
            });
        }
        let len = buf.len();
        let too_large = || Error::TooLarge { pos: self.pos, len };
        let pos = usize::try_from(self.pos).map_err(|_| too_large())?;
        let new_end = pos.checked_add(len).ok_or_else(too_large)?;
        if new_end > map.len() {
            if !self.growable {
                if len == 0 {
                    return Ok(0);
                }
                return Err(Error::NoRoom {
                    path: map.path().to_path_buf(),
                    pos: self.pos,
                    len,
                    end: self.end as u64,
                });
            }
            let grown = map.reserve(new_end);
            // Whatever happened, the cached length must follow the mapping.
            self.capacity = map.len();
            grown?;
        }
        let bytes = map.as_mut_slice()?;
        let start = if pos > self.end {
            // Bytes past the high-water mark may hold old data (a reused file, a mapping
            // handed to `growable_with_len`): the gap must read back as zeros.
            bytes[self.end..pos].fill(0);
            self.end
        } else {
            pos
        };
        bytes[pos..new_end].copy_from_slice(buf);
        self.end = self.end.max(new_end);
        self.pos = new_end as u64;
        self.dirty_start = self.dirty_start.min(start);
        self.dirty_end = self.dirty_end.max(new_end);
        Ok(len)
    }

    /// Writes the bytes changed since the last sync back to the file and waits for the disk.
    ///
    /// # Errors
    /// The [`pmap::Error`] from flushing.
    pub fn sync(&mut self) -> Result<()> {
        let Some(map) = self.map.as_ref() else {
            return Ok(());
        };
        if self.dirty_start < self.dirty_end {
            // The dirty range lies below the high-water mark, which never exceeds the mapping.
            map.flush_range(self.dirty_start, self.dirty_end - self.dirty_start)?;
        }
        self.dirty_start = usize::MAX;
        self.dirty_end = 0;
        Ok(())
    }

    /// Gives back the mapping, untrimmed: a growable stream's mapping may be longer than
    /// [`MapStream::len`]. Use [`MapStream::finish`] to trim instead.
    pub fn into_inner(mut self) -> Map {
        match self.map.take() {
            Some(map) => map,
            // `map` is `Some` outside consuming methods, and this one consumes `self`.
            None => unreachable!("MapStream without a mapping"),
        }
    }

    /// Closes the stream, reporting what dropping would swallow, and returns its length. A
    /// growable stream trims its file to the high-water mark ([`Map::finish`]); a fixed one
    /// leaves the file alone. Bytes reach the file as after any unmap; call
    /// [`MapStream::sync`] first for durability against power loss.
    ///
    /// # Errors
    /// The [`pmap::Error`] from truncating the file or releasing its lock.
    pub fn finish(mut self) -> Result<u64> {
        let end = self.end as u64;
        match self.map.take() {
            Some(map) if self.growable && map.is_writable() => Ok(map.finish(end)?),
            Some(map) => {
                map.close()?;
                Ok(end)
            }
            None => Ok(end),
        }
    }
}

impl Drop for MapStream {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            if self.growable && map.is_writable() && map.len() > self.end {
                // Best effort, as documented: `finish` is the way to see this error.
                let _ = map.finish(self.end as u64);
            }
        }
    }
}

impl Read for MapStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.remaining();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let available = self.remaining();
        if available.len() < buf.len() {
            // What `Cursor` does: a failed `read_exact` leaves the position at the end.
            self.pos = self.end as u64;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "failed to fill whole buffer",
            ));
        }
        buf.copy_from_slice(&available[..buf.len()]);
        self.pos += buf.len() as u64;
        Ok(())
    }
}

impl BufRead for MapStream {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.remaining())
    }

    fn consume(&mut self, amt: usize) {
        self.pos = self.pos.saturating_add(amt as u64);
    }
}

impl Write for MapStream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.put(buf)?)
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // `put` writes everything or nothing, so one call is the whole job.
        self.put(buf)?;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(self.sync()?)
    }
}

impl Seek for MapStream {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let (base, offset) = match from {
            SeekFrom::Start(pos) => {
                self.pos = pos;
                return Ok(pos);
            }
            SeekFrom::End(offset) => (self.end as u64, offset),
            SeekFrom::Current(offset) => (self.pos, offset),
        };
        let pos = base
            .checked_add_signed(offset)
            .ok_or(Error::SeekOutOfRange { base, offset })?;
        self.pos = pos;
        Ok(pos)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}
