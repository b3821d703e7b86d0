//! Double-mapped rings: [`Ring`] (refuses writes when full), its single-producer and
//! single-consumer ends [`RingProducer`] and [`RingConsumer`], [`InfiniteRing`] (overwrites the
//! oldest bytes), and [`RingBufReader`]/[`RingBufWriter`] over a ring.
//!
//! # Layout
//! A ring of capacity `C` (a whole number of allocation units: the page size on Unix, 64 KiB
//! on Windows) maps the same `C` bytes twice, back to back: the byte at data offset `i` is also
//! at `i + C`. So every run of at most `C` bytes that starts inside the first copy is one
//! contiguous slice, even when it wraps: no split reads, no copy at the boundary. A ring file
//! has a header of one allocation unit before the data (magic, version, geometry, the two
//! counters and the two role claims, see `memory.rs`); an anonymous ring has none and keeps
//! its counters in the process.
//!
//! # The protocol (single producer, single consumer)
//! This is the one place it is written down; the ends' code refers here.
//!
//! - Two `u64` counters: `head`, the bytes ever written, stored only by the producer, and
//!   `tail`, the bytes ever read, stored only by the consumer. Each end keeps its own counter
//!   locally (it is the only writer of it) and loads the other's.
//! - The readable bytes are positions `tail..head` (`head - tail <= C`), at data offset
//!   `tail % C`; the writable ones are `head..tail + C`, at `head % C`. These two ranges never
//!   share a byte modulo `C`, which is what makes it sound for the consumer to hold a `&[u8]`
//!   of the first while the producer holds a `&mut [u8]` of the second, through either view.
//! - **Producer**: load `tail` with `Acquire`; write bytes into `head..tail + C`; store the new
//!   `head` with `Release`. The `Release` makes the bytes visible to a consumer whose `Acquire`
//!   load reads that head. The `Acquire` on `tail` pairs with the consumer's `Release` store of
//!   it: the consumer's reads of the bytes it gave back happen before the producer writes over
//!   them (no write-after-read race on the memory).
//! - **Consumer**: load `head` with `Acquire`; read bytes from `tail..head`; store the new
//!   `tail` with `Release`.
//! - Nothing else: no `SeqCst`, no fences. A stale load of the other counter only makes the
//!   readable or writable range smaller than it is, never wrong; so each end keeps the other's
//!   counter as last loaded and loads it again only when it gives too little. The ends hand out slices
//!   borrowed from `&self`/`&mut self` and move their counter only through `&mut self`
//!   (`feed`, `consume`), so no slice outlives the publication that gives its bytes away.
//! - Across processes (a ring file) the same holds: the counters are atomics in the shared
//!   header page, and the ends are claimed (a process id in the header, taken over when that
//!   process is dead) so that each has one holder. A counter another process wrote is never
//!   trusted for memory safety: lengths are clamped to `C`, and a `head - tail` beyond `C` (a
//!   peer that broke the protocol) reads as an error, not as bytes.
//! - The counters are `u64` and wrap after 2^64 bytes (centuries at memory speed); positions
//!   are taken modulo `C`.

mod buf;
mod infinite;
mod memory;

use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use buf::{RingBufReader, RingBufWriter};
pub use infinite::InfiniteRing;
pub(crate) use memory::RingMemory;
pub use memory::RingOptions;
use memory::Role;

use crate::Result;

/// The error of a read when the counters are further apart than the capacity: only a peer
/// process that broke the protocol (or wrote the header) gets a ring there.
fn corrupt_counters() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "ring counters further apart than its capacity",
    )
}

/// Moves a data offset on by `len` (at most the capacity), wrapping: the ends keep their
/// offsets this way instead of dividing a position on every access.
#[inline]
fn advance_offset(offset: usize, len: usize, capacity: usize) -> usize {
    let next = offset + len;
    if next >= capacity {
        next - capacity
    } else {
        next
    }
}

/// The writing end of a ring: the one producer (see the protocol in the module doc). Send it
/// to another thread, or open it in another process with
/// [`RingOptions::open_producer`].
///
/// `Write::write` copies as much as fits and returns `Ok(0)` when the ring is full, so
/// `write_all` fails with `WriteZero` then: the ring refuses to overwrite unread bytes.
#[derive(Debug)]
pub struct RingProducer {
    memory: Arc<RingMemory>,
    capacity: usize,
    /// The head as this end last stored it: it is the only writer of it.
    head: u64,
    /// `head % capacity`, kept by addition.
    offset: usize,
    /// The tail as last loaded. The consumer only ever moves it on, so the room it gives is
    /// never more than there is: it is loaded again only when a write needs more.
    tail_seen: u64,
}

impl RingProducer {
    pub(crate) fn from_memory(memory: Arc<RingMemory>) -> Result<Self> {
        memory.claim(Role::Producer)?;
        let head = memory.head().load(Ordering::Relaxed);
        let tail_seen = memory.tail().load(Ordering::Acquire);
        Ok(RingProducer {
            capacity: memory.capacity(),
            offset: memory.offset_of(head),
            head,
            tail_seen,
            memory,
        })
    }

    /// The ring's capacity in bytes.
    #[inline]
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The ring's file (`<anonymous>` for an anonymous ring).
    #[must_use]
    pub fn path(&self) -> &Path {
        self.memory.path()
    }

    /// The room left after the unread bytes counted from `tail`: 0 when they are more than
    /// the capacity (a broken peer, or a tail ahead of the head).
    #[inline]
    fn room_after(&self, tail: u64) -> usize {
        let used = self.head.wrapping_sub(tail);
        (self.capacity as u64).saturating_sub(used) as usize
    }

    /// The room, from the tail loaded now (`Acquire`: see the protocol).
    #[inline]
    fn refresh(&mut self) -> usize {
        self.tail_seen = self.memory.tail().load(Ordering::Acquire);
        self.room_after(self.tail_seen)
    }

    /// At least `wanted` bytes of room if there are, loading the tail only when the last one
    /// seen does not give them.
    #[inline]
    fn room_for(&mut self, wanted: usize) -> usize {
        let room = self.room_after(self.tail_seen);
        if room >= wanted { room } else { self.refresh() }
    }

    /// How many bytes can be written now (the consumer may free more at any time).
    #[inline]
    #[must_use]
    pub fn writable_len(&self) -> usize {
        self.room_after(self.memory.tail().load(Ordering::Acquire))
    }

    /// Whether no byte can be written now.
    #[inline]
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.writable_len() == 0
    }

    /// The writable bytes, as one slice from the head (their contents are whatever was there:
    /// old bytes or zeros). Write into a prefix, then [`Self::feed`] its length.
    #[inline]
    pub fn writable(&mut self) -> &mut [u8] {
        let len = self.refresh();
        // SAFETY: the protocol (module doc): positions `head..tail + C` for the tail just
        // loaded belong to this end, the one producer, and `&mut self` borrows them out only
        // until the next `feed` publishes any of them.
        unsafe { self.memory.bytes_mut(self.offset, len) }
    }

    /// Publishes `len` bytes written into [`Self::writable`] (clamped to what is writable) to
    /// the consumer.
    #[inline]
    pub fn feed(&mut self, len: usize) {
        let len = len.min(self.room_for(len));
        self.publish(len);
    }

    /// Moves the head on by `len`, at most the room: the bytes are written.
    #[inline]
    fn publish(&mut self, len: usize) {
        self.head = self.head.wrapping_add(len as u64);
        self.offset = advance_offset(self.offset, len, self.capacity);
        self.memory.head().store(self.head, Ordering::Release);
    }
}

impl Write for RingProducer {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = self.room_for(buf.len()).min(buf.len());
        // SAFETY: as in `writable`: `len` is within the room for the tail last loaded.
        let room = unsafe { self.memory.bytes_mut(self.offset, len) };
        room.copy_from_slice(&buf[..len]);
        self.publish(len);
        Ok(len)
    }

    /// Nothing to do: fed bytes are visible to the consumer at once.
    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RingProducer {
    fn drop(&mut self) {
        self.memory.release(Role::Producer);
    }
}

/// The reading end of a ring: the one consumer (see the protocol in the module doc).
///
/// `Read::read` returns `Ok(0)` when the ring is empty *now*: not the end of a stream, as the
/// producer may write more.
#[derive(Debug)]
pub struct RingConsumer {
    memory: Arc<RingMemory>,
    capacity: usize,
    /// The tail as this end last stored it: it is the only writer of it.
    tail: u64,
    /// `tail % capacity`, kept by addition.
    offset: usize,
    /// The head as last loaded: the producer only ever moves it on, so the bytes it gives
    /// are all readable; it is loaded again only when a read wants more.
    head_seen: u64,
}

impl RingConsumer {
    pub(crate) fn from_memory(memory: Arc<RingMemory>) -> Result<Self> {
        memory.claim(Role::Consumer)?;
        let tail = memory.tail().load(Ordering::Relaxed);
        Ok(RingConsumer {
            capacity: memory.capacity(),
            offset: memory.offset_of(tail),
            tail,
            // Nothing seen yet: the first read loads the head.
            head_seen: tail,
            memory,
        })
    }

    /// The ring's capacity in bytes.
    #[inline]
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The ring's file (`<anonymous>` for an anonymous ring).
    #[must_use]
    pub fn path(&self) -> &Path {
        self.memory.path()
    }

    /// The unread bytes up to `head`, or `None` if they are more than the capacity (a peer
    /// broke the protocol).
    #[inline]
    fn unread_before(&self, head: u64) -> Option<usize> {
        let unread = head.wrapping_sub(self.tail);
        (unread <= self.capacity as u64).then_some(unread as usize)
    }

    /// The unread bytes, from the head loaded now (`Acquire`: see the protocol).
    #[inline]
    fn refresh(&mut self) -> Option<usize> {
        self.head_seen = self.memory.head().load(Ordering::Acquire);
        self.unread_before(self.head_seen)
    }

    /// At least `wanted` unread bytes if there are, loading the head only when the last one
    /// seen does not give them.
    #[inline]
    fn unread_for(&mut self, wanted: usize) -> Option<usize> {
        match self.unread_before(self.head_seen) {
            Some(unread) if unread >= wanted => Some(unread),
            _ => self.refresh(),
        }
    }

    /// How many bytes can be read now (0 also for counters a peer broke).
    #[inline]
    #[must_use]
    pub fn readable_len(&self) -> usize {
        self.unread_before(self.memory.head().load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Whether no byte can be read now.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.readable_len() == 0
    }

    /// The readable bytes, as one slice from the tail, oldest first. Read them, then
    /// [`Self::consume`] what was used.
    #[inline]
    #[must_use]
    pub fn readable(&self) -> &[u8] {
        self.slice(self.readable_len())
    }

    /// `len` unread bytes from the tail, `len` at most what the last loaded head gives.
    #[inline]
    fn slice(&self, len: usize) -> &[u8] {
        // SAFETY: the protocol (module doc): positions `tail..head` for a head loaded with
        // `Acquire` were published by the producer, which writes none of them until this end
        // stores a later tail, which takes `&mut self` and so ends this borrow first. Every
        // caller passes a length within such a head.
        unsafe { self.memory.bytes(self.offset, len) }
    }

    /// Gives `len` read bytes (clamped to what is readable) back to the producer.
    #[inline]
    pub fn consume(&mut self, len: usize) {
        let len = len.min(self.unread_for(len).unwrap_or(0));
        self.give_back(len);
    }

    /// Moves the tail on by `len`, at most the unread bytes: they are read.
    #[inline]
    fn give_back(&mut self, len: usize) {
        self.tail = self.tail.wrapping_add(len as u64);
        self.offset = advance_offset(self.offset, len, self.capacity);
        self.memory.tail().store(self.tail, Ordering::Release);
    }
}

impl Read for RingConsumer {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let unread = self.unread_for(buf.len()).ok_or_else(corrupt_counters)?;
        let len = unread.min(buf.len());
        buf[..len].copy_from_slice(self.slice(len));
        self.give_back(len);
        Ok(len)
    }
}

impl BufRead for RingConsumer {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let unread = self.refresh().ok_or_else(corrupt_counters)?;
        Ok(self.slice(unread))
    }

    #[inline]
    fn consume(&mut self, amount: usize) {
        RingConsumer::consume(self, amount);
    }
}

impl Drop for RingConsumer {
    fn drop(&mut self) {
        self.memory.release(Role::Consumer);
    }
}

/// A double-mapped ring buffer that refuses writes when full: both ends in one handle, for
/// one thread (or [`Self::split`] into a [`RingProducer`] and a [`RingConsumer`] for two).
///
/// Every readable and writable range is one contiguous slice, even across the wrap: the
/// memory is mapped twice, back to back (the layout and protocol are in the [module
/// doc](crate::ring)).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::{BufRead, Write};
///
/// let mut ring = pmap::Ring::new(4096)?;
/// let capacity = ring.capacity();
/// // Move the ends near the wrap, then write across it: one slice all the same.
/// ring.feed(capacity - 3);
/// ring.consume(capacity - 3);
/// ring.write_all(b"wrapped line\n")?;
/// assert_eq!(ring.readable(), b"wrapped line\n");
/// let mut line = String::new();
/// ring.read_line(&mut line)?;
/// assert_eq!(line, "wrapped line\n");
/// assert!(ring.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Ring {
    producer: RingProducer,
    consumer: RingConsumer,
}

impl Ring {
    /// An anonymous ring of at least `min_capacity` bytes (rounded up to the allocation unit):
    /// shorthand for `RingOptions::new().capacity(min_capacity).ring()`.
    ///
    /// # Errors
    /// As [`RingOptions::ring`].
    pub fn new(min_capacity: usize) -> Result<Ring> {
        RingOptions::new().capacity(min_capacity).ring()
    }

    pub(crate) fn from_memory(memory: RingMemory) -> Result<Ring> {
        let memory = Arc::new(memory);
        let producer = RingProducer::from_memory(Arc::clone(&memory))?;
        let consumer = RingConsumer::from_memory(memory)?;
        Ok(Ring { producer, consumer })
    }

    /// The capacity in bytes: a whole number of allocation units.
    #[inline]
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.producer.capacity()
    }

    /// The ring's file (`<anonymous>` for an anonymous ring).
    #[must_use]
    pub fn path(&self) -> &Path {
        self.producer.path()
    }

    /// The number of unread bytes.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.consumer.readable_len()
    }

    /// Whether there is nothing to read.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.consumer.is_empty()
    }

    /// Whether nothing can be written.
    #[inline]
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.producer.is_full()
    }

    /// How many bytes can be written: the capacity less the unread bytes.
    #[inline]
    #[must_use]
    pub fn writable_len(&self) -> usize {
        self.producer.writable_len()
    }

    /// The unread bytes, oldest first, as one slice.
    #[inline]
    #[must_use]
    pub fn readable(&self) -> &[u8] {
        self.consumer.readable()
    }

    /// The writable bytes as one slice; [`Self::feed`] what was written.
    #[inline]
    pub fn writable(&mut self) -> &mut [u8] {
        self.producer.writable()
    }

    /// Marks `len` bytes of [`Self::writable`] written (clamped to what is writable).
    #[inline]
    pub fn feed(&mut self, len: usize) {
        self.producer.feed(len);
    }

    /// Drops `len` unread bytes (clamped to what is readable).
    #[inline]
    pub fn consume(&mut self, len: usize) {
        self.consumer.consume(len);
    }

    /// Drops every unread byte.
    pub fn clear(&mut self) {
        self.consume(self.len());
    }

    /// The two ends, for a producer thread and a consumer thread.
    #[must_use]
    pub fn split(self) -> (RingProducer, RingConsumer) {
        (self.producer, self.consumer)
    }
}

impl Write for Ring {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.producer.write(buf)
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Ring {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.consumer.read(buf)
    }
}

impl BufRead for Ring {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.consumer.fill_buf()
    }

    #[inline]
    fn consume(&mut self, amount: usize) {
        self.consumer.consume(amount);
    }
}
