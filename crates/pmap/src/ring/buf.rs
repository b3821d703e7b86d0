//! [`RingBufReader`] and [`RingBufWriter`]: `std::io::BufReader`/`BufWriter` with a
//! double-mapped [`Ring`] as the buffer, so that the buffered bytes are always one slice and
//! more can be read in behind them without moving them.

use std::io::{self, BufRead, Read, Write};

use super::Ring;
use crate::Result;

/// A buffered reader whose buffer is a [`Ring`]. Unlike `std::io::BufReader`, it can read more
/// behind the bytes it holds without moving them ([`Self::fill_more`]): a parser that needs a
/// longer look-ahead asks for it and still sees one slice, up to the ring's capacity.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::BufRead;
///
/// let source: &[u8] = b"first line\nsecond line\n";
/// let mut reader = pmap::RingBufReader::new(source, 4096)?;
/// let mut line = String::new();
/// reader.read_line(&mut line)?;
/// assert_eq!(line, "first line\n");
/// assert_eq!(reader.buffer(), b"second line\n");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RingBufReader<R> {
    ring: Ring,
    inner: R,
}

impl<R: Read> RingBufReader<R> {
    /// A reader over `inner` with an anonymous ring of at least `min_capacity` bytes.
    ///
    /// # Errors
    /// As [`crate::RingOptions::ring`].
    pub fn new(inner: R, min_capacity: usize) -> Result<Self> {
        Ok(Self::with_ring(inner, Ring::new(min_capacity)?))
    }

    /// A reader over `inner` buffering in `ring` (whose unread bytes come first).
    pub fn with_ring(inner: R, ring: Ring) -> Self {
        RingBufReader { ring, inner }
    }

    /// The buffered bytes, oldest first.
    pub fn buffer(&self) -> &[u8] {
        self.ring.readable()
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Reads once from the inner reader into the free room behind the buffered bytes and
    /// returns how many came (0: the inner reader is at its end, or the buffer is full).
    ///
    /// # Errors
    /// The inner reader's error (`Interrupted` is retried).
    pub fn fill_more(&mut self) -> io::Result<usize> {
        let room = self.ring.writable();
        if room.is_empty() {
            return Ok(0);
        }
        let read = loop {
            match self.inner.read(room) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.ring.feed(read);
        Ok(read)
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner reader, mutably (reading from it directly skips the buffered bytes).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner reader; the buffered bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for RingBufReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A read at least as large as the buffer gains nothing from it, as in std's.
        if self.ring.is_empty() && buf.len() >= self.ring.capacity() {
            return self.inner.read(buf);
        }
        let available = self.fill_buf()?;
        let len = available.len().min(buf.len());
        buf[..len].copy_from_slice(&available[..len]);
        self.ring.consume(len);
        Ok(len)
    }
}

impl<R: Read> BufRead for RingBufReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.ring.is_empty() {
            self.fill_more()?;
        }
        self.ring.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.ring.consume(amount);
    }
}

/// A buffered writer whose buffer is a [`Ring`]: writes gather in the ring and go to the inner
/// writer as one slice each time the ring fills, on [`Write::flush`], and on drop (whose error
/// is lost: call `flush` to see it).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::Write;
///
/// let mut writer = pmap::RingBufWriter::new(Vec::new(), 4096)?;
/// writer.write_all(b"gathered ")?;
/// writer.write_all(b"then written")?;
/// assert!(writer.get_ref().is_empty());
/// let out = writer.into_inner()?;
/// assert_eq!(out, b"gathered then written");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RingBufWriter<W: Write> {
    ring: Ring,
    /// `None` only once `into_inner` took it, which consumes `self`: every other method sees
    /// `Some`.
    inner: Option<W>,
}

impl<W: Write> RingBufWriter<W> {
    /// A writer into `inner` with an anonymous ring of at least `min_capacity` bytes.
    ///
    /// # Errors
    /// As [`crate::RingOptions::ring`].
    pub fn new(inner: W, min_capacity: usize) -> Result<Self> {
        Ok(Self::with_ring(inner, Ring::new(min_capacity)?))
    }

    /// A writer into `inner` buffering in `ring` (whose unread bytes are written first).
    pub fn with_ring(inner: W, ring: Ring) -> Self {
        RingBufWriter {
            ring,
            inner: Some(inner),
        }
    }

    /// The bytes waiting to be written.
    pub fn buffer(&self) -> &[u8] {
        self.ring.readable()
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        match &self.inner {
            Some(inner) => inner,
            None => unreachable!("the inner writer is taken only by into_inner"),
        }
    }

    /// The inner writer, mutably (writing to it directly goes before the buffered bytes).
    pub fn get_mut(&mut self) -> &mut W {
        match &mut self.inner {
            Some(inner) => inner,
            None => unreachable!("the inner writer is taken only by into_inner"),
        }
    }

    /// Writes the buffered bytes out and returns the inner writer.
    ///
    /// # Errors
    /// The inner writer's error; the buffered bytes not written are then lost with `self`.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.write_buffered()?;
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("the inner writer was already taken"))
    }

    /// Writes the buffered bytes to the inner writer, without flushing it.
    fn write_buffered(&mut self) -> io::Result<()> {
        let Some(inner) = &mut self.inner else {
            return Ok(());
        };
        while !self.ring.is_empty() {
            match inner.write(self.ring.readable()) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the inner writer took none of the buffered bytes",
                    ));
                }
                Ok(written) => self.ring.consume(written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<W: Write> Write for RingBufWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.ring.writable_len() {
            self.write_buffered()?;
        }
        if buf.len() >= self.ring.capacity() {
            // Larger than the whole buffer: straight through, as std's does.
            return self.get_mut().write(buf);
        }
        self.ring.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        self.get_mut().flush()
    }
}

impl<W: Write> Drop for RingBufWriter<W> {
    fn drop(&mut self) {
        let _ = self.write_buffered();
    }
}
