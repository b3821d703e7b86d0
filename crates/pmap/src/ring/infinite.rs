//! [`InfiniteRing`]: a double-mapped ring whose writes never fail, overwriting the oldest
//! unread bytes instead.

use std::io::{self, BufRead, Read, Write};

use super::{RingMemory, advance_offset};
use crate::Result;

/// A double-mapped ring buffer that always takes a write: when it is full the oldest unread
/// bytes are overwritten, so it holds the newest `capacity` bytes written (a flight recorder,
/// the tail of a log). One owner only: a reader in another thread could not keep up with a
/// writer that overwrites what it is reading, so it has no split into ends.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::Write;
///
/// let mut ring = pmap::InfiniteRing::new(4096)?;
/// let capacity = ring.capacity();
/// for i in 0..capacity {
///     ring.write_all(&[(i % 251) as u8])?;
/// }
/// ring.write_all(b"newest")?;
/// // The six oldest bytes were overwritten; the newest are at the end, in one slice.
/// assert_eq!(ring.len(), capacity);
/// assert_eq!(ring.readable()[0], 6);
/// assert!(ring.readable().ends_with(b"newest"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InfiniteRing {
    memory: RingMemory,
    /// Bytes ever written.
    head: u64,
    /// Bytes ever read or overwritten: `head - tail <= capacity`.
    tail: u64,
    /// `head % capacity` and `tail % capacity`, kept by addition.
    head_offset: usize,
    tail_offset: usize,
}

impl InfiniteRing {
    /// An anonymous infinite ring of at least `min_capacity` bytes (rounded up to the
    /// allocation unit): shorthand for `RingOptions::new().capacity(min_capacity)
    /// .infinite_ring()`.
    ///
    /// # Errors
    /// As [`crate::RingOptions::ring`].
    pub fn new(min_capacity: usize) -> Result<InfiniteRing> {
        crate::RingOptions::new()
            .capacity(min_capacity)
            .infinite_ring()
    }

    pub(crate) fn from_memory(memory: RingMemory) -> InfiniteRing {
        InfiniteRing {
            memory,
            head: 0,
            tail: 0,
            head_offset: 0,
            tail_offset: 0,
        }
    }

    /// The capacity in bytes: a whole number of allocation units.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.memory.capacity()
    }

    /// The number of unread bytes (at most the capacity).
    #[inline]
    pub fn len(&self) -> usize {
        // At most the capacity: `feed` and `write` keep it so.
        self.head.wrapping_sub(self.tail) as usize
    }

    /// Whether there is nothing to read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Bytes ever written since the ring was made, kept or overwritten.
    #[inline]
    pub fn written(&self) -> u64 {
        self.head
    }

    /// The unread bytes, oldest first, as one slice.
    #[inline]
    pub fn readable(&self) -> &[u8] {
        // SAFETY: this handle is the ring's one owner (no ends exist), and the slice borrows
        // `&self`, so no write can happen while it lives.
        unsafe { self.memory.bytes(self.tail_offset, self.len()) }
    }

    /// The whole capacity from the head as one writable slice: the oldest bytes are among them
    /// when the ring is not empty. [`Self::feed`] what was written.
    #[inline]
    pub fn writable(&mut self) -> &mut [u8] {
        let capacity = self.capacity();
        // SAFETY: the one owner, borrowed mutably: nothing else reads or writes the ring's
        // bytes while the slice lives.
        unsafe { self.memory.bytes_mut(self.head_offset, capacity) }
    }

    /// Marks `len` bytes of [`Self::writable`] written (clamped to the capacity); the oldest
    /// unread bytes they overwrote are dropped.
    #[inline]
    pub fn feed(&mut self, len: usize) {
        let len = len.min(self.capacity());
        self.advance_head(len as u64);
    }

    /// Moves the head on by `by` bytes (any number), and the tail behind it when the bytes
    /// overwrote unread ones.
    fn advance_head(&mut self, by: u64) {
        let capacity = self.capacity();
        self.head = self.head.wrapping_add(by);
        self.head_offset =
            advance_offset(self.head_offset, (by % capacity as u64) as usize, capacity);
        if self.head.wrapping_sub(self.tail) > capacity as u64 {
            self.tail = self.head.wrapping_sub(capacity as u64);
            // Overwritten: the oldest byte kept is the one the head has just reached.
            self.tail_offset = self.head_offset;
        }
    }

    /// Drops `len` unread bytes (clamped to what is readable).
    #[inline]
    pub fn consume(&mut self, len: usize) {
        let len = len.min(self.len());
        self.tail = self.tail.wrapping_add(len as u64);
        self.tail_offset = advance_offset(self.tail_offset, len, self.capacity());
    }

    /// Drops every unread byte.
    pub fn clear(&mut self) {
        self.tail = self.head;
        self.tail_offset = self.head_offset;
    }
}

impl Write for InfiniteRing {
    #[inline]
    /// Takes all of `buf`: what does not fit overwrites the oldest bytes, and of a `buf`
    /// longer than the capacity only its last `capacity` bytes are kept.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let capacity = self.capacity();
        let kept = &buf[buf.len().saturating_sub(capacity)..];
        let skipped = (buf.len() - kept.len()) as u64;
        // The bytes that are overwritten at once are skipped, not written.
        let start = advance_offset(
            self.head_offset,
            (skipped % capacity as u64) as usize,
            capacity,
        );
        // SAFETY: the one owner, borrowed mutably, as in `writable`.
        let room = unsafe { self.memory.bytes_mut(start, kept.len()) };
        room.copy_from_slice(kept);
        self.advance_head(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for InfiniteRing {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.readable();
        let len = available.len().min(buf.len());
        buf[..len].copy_from_slice(&available[..len]);
        self.consume(len);
        Ok(len)
    }
}

impl BufRead for InfiniteRing {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.readable())
    }

    fn consume(&mut self, amount: usize) {
        InfiniteRing::consume(self, amount);
    }
}
