//! [`SharedMap`]: a mapping many threads and processes write at once, reached only by copies,
//! checked atomics and wait/wake on a shared word; the racing-safe copy loops live here.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes};

#[allow(unused_imports)] // `Error` is named by the doc links.
use crate::Error;
use crate::common::common_methods;
use crate::core::Core;
use crate::word::{Load64, LoadWord64};
use crate::{Lock, Map, Result, os};

/// A mapping that many threads and processes read and write at once.
///
/// It hands out no `&[u8]`: bytes move in and out only by copying ([`Self::read_at`],
/// [`Self::write_at`]), done with relaxed atomic loads and stores of bytes and aligned
/// pointer-sized words,
/// so a racing writer in another thread is never a data race in Rust's sense; and words are
/// shared as `&AtomicU32`/`&AtomicU64` at checked, aligned offsets. Ordering between the copies
/// and a publishing store is the caller's, with the atomics' orderings and
/// [`std::sync::atomic::fence`], as in any seqlock or ring buffer.
///
/// ```
/// # fn main() -> Result<(), pmap::Error> {
/// use std::sync::atomic::Ordering;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("ring.bin");
/// let shared = pmap::Map::create(&path, 4096)?.into_shared();
/// let counter = shared.atomic_u64(0)?;
/// let at = 64 + counter.fetch_add(16, Ordering::Relaxed) as usize;
/// shared.write_at(at, b"sixteen bytes!!!")?;
/// let mut back = [0u8; 16];
/// shared.read_at(at, &mut back)?;
/// assert_eq!(&back, b"sixteen bytes!!!");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SharedMap {
    pub(crate) core: Core,
}

impl SharedMap {
    pub(crate) fn from_core(core: Core) -> Self {
        SharedMap { core }
    }

    common_methods!();

    /// Copies `buf.len()` bytes from `offset` into `buf`. Bytes that another thread or process
    /// is writing meanwhile may come out old or new, byte by byte (word by word where aligned,
    /// a word being 8 bytes on 64-bit targets):
    /// validate with a checksum or version, as a seqlock does.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`].
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let ptr = self.core.bounds(offset, buf.len())?;
        // SAFETY: `bounds` checked that `buf.len()` bytes from `ptr` lie in the live view.
        unsafe { copy_out(ptr, buf) };
        Ok(())
    }

    /// Asks the processor to start loading the cache lines of `len` bytes at `offset` (at most
    /// the first 256), so that a later read of them waits less: a hint, which reads nothing
    /// and does nothing out of bounds or on other processors than x86-64.
    #[inline]
    pub fn prefetch(&self, offset: usize, len: usize) {
        if let Ok(ptr) = self.core.bounds(offset, len) {
            prefetch_lines(ptr, len);
        }
    }

    /// Copies `data` into the view at `offset`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::ReadOnlyMapping`].
    #[inline]
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.core.require_writable("write_at")?;
        let ptr = self.core.bounds(offset, data.len())?;
        // SAFETY: `bounds` checked that `data.len()` bytes from `ptr` lie in the live view,
        // which is mapped writable (checked above).
        unsafe { copy_in(ptr, data) };
        Ok(())
    }

    /// Writes `data` at `offset` through the file by a positioned write (`pwrite`, `WriteFile`
    /// at an offset), not through the view. Every mapping of the file shows the bytes once this
    /// returns on the platforms whose page cache backs both (Linux, the BSDs, macOS, Windows).
    /// The range must lie inside the view: a positioned write never grows the file.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`], [`Error::ReadOnlyMapping`] (also for an anonymous map),
    /// [`Error::NoSpace`] for a full disk or quota, or the I/O error.
    ///
    /// A memory copy ([`crate::MapOptions::memory_copy`]) takes the bytes into the copy first,
    /// then into the file, so that the view reads them too.
    pub fn write_file_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        if self.core.is_memory_copy() {
            self.write_at(offset, data)?;
        }
        self.core.write_file_at(offset, data)
    }

    /// Writes the view's bytes at `offset .. offset + len` to the file by positioned writes,
    /// for a memory copy ([`crate::MapOptions::memory_copy`]), whose stores (through
    /// [`Self::write_at`] or an atomic) stay in the process's memory until then. A mapping's
    /// bytes are the file's already: for it this checks the range and does nothing. The bytes
    /// are copied out as [`Self::read_at`] would, so a range other threads are storing into
    /// meanwhile is written as some mix of old and new bytes: write back what this thread
    /// stored, or validate as for reads.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`], [`Error::ReadOnlyMapping`], [`Error::NoSpace`] for a full disk or
    /// quota, or the I/O error.
    pub fn write_back(&self, offset: usize, len: usize) -> Result<()> {
        self.core.require_writable("write_back")?;
        self.core.bounds(offset, len)?;
        if !self.core.is_memory_copy() {
            return Ok(());
        }
        // Small ranges (coordination words, one record) go through the stack.
        let mut small = [0u8; 512];
        let mut large = Vec::new();
        let chunk = if len <= small.len() {
            &mut small[..]
        } else {
            large.resize(len.min(1 << 20), 0);
            &mut large[..]
        };
        let mut at = offset;
        while at < offset + len {
            let n = chunk.len().min(offset + len - at);
            self.read_at(at, &mut chunk[..n])?;
            self.core.write_file_at(at, &chunk[..n])?;
            at += n;
        }
        Ok(())
    }

    /// Copies a `T` out of the view at `offset` (any alignment), with the caveat of
    /// [`Self::read_at`].
    ///
    /// # Errors
    /// [`Error::OutOfBounds`].
    pub fn read<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T> {
        let mut value = T::new_zeroed();
        self.read_at(offset, value.as_mut_bytes())?;
        Ok(value)
    }

    /// Copies `value` into the view at `offset` (any alignment).
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::ReadOnlyMapping`].
    pub fn write<T: IntoBytes + Immutable>(&self, offset: usize, value: &T) -> Result<()> {
        self.write_at(offset, value.as_bytes())
    }

    /// Borrows the 8-byte-aligned word at `offset` as an `AtomicU64`, for counters shared
    /// between threads and processes.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`], [`Error::Misaligned`], or [`Error::ReadOnlyMapping`] (a store
    /// into a read-only page would crash the process; use [`Self::load_u64`] there).
    #[inline]
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.core.require_writable("atomic_u64")?;
        let ptr = self.core.aligned(offset, 8, 8)?;
        // SAFETY: `aligned` checked that the 8 bytes lie in the live, writable view and that
        // the address is 8-aligned. The borrow is tied to `&self`, and the view is unmapped only
        // through `&mut self` or by value. This type never accesses the view non-atomically.
        Ok(unsafe { AtomicU64::from_ptr(ptr.cast::<u64>()) })
    }

    /// Borrows the 4-byte-aligned word at `offset` as an `AtomicU32`.
    ///
    /// # Errors
    /// As [`Self::atomic_u64`].
    #[inline]
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.core.require_writable("atomic_u32")?;
        let ptr = self.core.aligned(offset, 4, 4)?;
        // SAFETY: as in `atomic_u64`, for 4 aligned bytes.
        Ok(unsafe { AtomicU32::from_ptr(ptr.cast::<u32>()) })
    }

    /// Atomically loads the 8-byte-aligned word at `offset`; works on read-only mappings (on
    /// 64-bit targets; a 32-bit target may implement an 8-byte load as a compare-exchange,
    /// which faults on a read-only page).
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    ///
    /// # Panics
    /// As [`AtomicU64::load`], on `Release` or `AcqRel`.
    #[inline]
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64> {
        Ok(self.load_word_u64(offset)?.load(order))
    }

    /// The 8-byte-aligned word at `offset` as a [`LoadWord64`]: a word a protocol kernel (see
    /// [`crate::word`]) may load, on read-only mappings too, as [`Self::load_u64`] does.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    #[inline]
    pub fn load_word_u64(&self, offset: usize) -> Result<LoadWord64<'_>> {
        let ptr = self.core.aligned(offset, 8, 8)?;
        // SAFETY: in bounds and aligned (checked), and the borrow is tied to `&self` (the view
        // is unmapped only through `&mut self` or by value). `LoadWord64` only loads: on a
        // read-only view only a relaxed load is made, since std promises only "sufficiently
        // small" *relaxed* loads work on read-only memory ("Atomic accesses to read-only
        // memory"); `load_ordered` supplies the ordering with fences.
        let word = unsafe { AtomicU64::from_ptr(ptr.cast::<u64>()) };
        Ok(LoadWord64 {
            word,
            writable: self.core.is_writable(),
        })
    }

    /// Atomically loads the 4-byte-aligned word at `offset`; works on read-only mappings.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    ///
    /// # Panics
    /// As [`AtomicU32::load`], on `Release` or `AcqRel`.
    #[inline]
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32> {
        let ptr = self.core.aligned(offset, 4, 4)?;
        // SAFETY: as in `load_u64`, for 4 aligned bytes.
        let word = unsafe { AtomicU32::from_ptr(ptr.cast::<u32>()) };
        Ok(load_ordered(self.core.is_writable(), order, |o| {
            word.load(o)
        }))
    }

    /// Blocks while the 32-bit word at `offset` holds `expected`, until [`Self::wake_u32`] is
    /// called on it by any process, or `timeout` passes. It may also return early (a signal, a
    /// spurious wake): callers re-check the word. On Linux this is a shared (not private)
    /// futex, so waiter and waker may be in different processes; elsewhere it polls with short
    /// sleeps. Works on read-only mappings.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    pub fn wait_u32(&self, offset: usize, expected: u32, timeout: Option<Duration>) -> Result<()> {
        let ptr = self.core.aligned(offset, 4, 4)?;
        // SAFETY: in bounds, 4-aligned and inside the live view for the whole call, which
        // borrows `self`.
        unsafe { os::wait_u32(ptr.cast::<u32>(), expected, timeout) };
        Ok(())
    }

    /// Wakes every thread, in any process, blocked in [`Self::wait_u32`] on the word at
    /// `offset`. Change the word first.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    pub fn wake_u32(&self, offset: usize) -> Result<()> {
        let ptr = self.core.aligned(offset, 4, 4)?;
        // SAFETY: in bounds, 4-aligned and inside the live view for the whole call.
        unsafe { os::wake_u32(ptr.cast::<u32>()) };
        Ok(())
    }

    /// Takes a [`LivenessMark`](crate::LivenessMark) on the mapped file itself, through a new
    /// open of this map's file (`/proc/self/fd`: on this very file even if its path now names
    /// another), on an open file description of its own: no other handle's, and none a process
    /// forked later shares until it inherits the mark itself. `Ok(None)` where the platform has
    /// no marks, and for anonymous mappings.
    ///
    /// # Errors
    /// As [`LivenessMark::take`](crate::LivenessMark::take).
    pub fn take_liveness_mark(&self) -> Result<Option<crate::LivenessMark>> {
        self.core.take_liveness_mark()
    }

    /// Whether this and `other` map the same file, whatever paths they were opened by (a file
    /// renamed away and another put at its path is not the same): `Some` on Unix (device and
    /// inode), `None` where the platform gives no identity and for anonymous mappings.
    #[must_use]
    pub fn same_file_as(&self, other: &SharedMap) -> Option<bool> {
        self.core.same_file(&other.core)
    }

    /// Turns this handle back into a [`Map`] with slice access.
    pub fn into_map(self) -> Map {
        Map::from_core(self.core)
    }
}

/// A load with `order` that is also sound on read-only memory. A writable view loads with
/// `order` directly. A read-only view loads relaxed (the only atomic load std promises works on
/// read-only pages) and gets the ordering from fences: an acquire fence after a relaxed load
/// synchronises with a release store it read from, and `SeqCst` fences on both sides keep the
/// load in the single total order.
#[inline(always)]
pub(crate) fn load_ordered<T>(
    writable: bool,
    order: Ordering,
    load: impl FnOnce(Ordering) -> T,
) -> T {
    if writable {
        return load(order);
    }
    match order {
        Ordering::Relaxed => load(Ordering::Relaxed),
        Ordering::Acquire => {
            let value = load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            value
        }
        Ordering::SeqCst => {
            fence(Ordering::SeqCst);
            let value = load(Ordering::Relaxed);
            fence(Ordering::SeqCst);
            value
        }
        // Release and AcqRel make no sense for a load: let std's load panic as it documents.
        other => load(other),
    }
}

/// The copies' word: pointer-sized, because std promises relaxed atomic loads on read-only
/// memory only up to that size ("Atomic accesses to read-only memory": 8 bytes on 64-bit
/// targets, 4 on 32-bit ones, where an 8-byte load may be a compare-exchange that faults).
const WORD: usize = size_of::<usize>();

/// Asks the processor to start loading the cache lines of the first `len.min(256)` bytes at
/// `ptr`: a hint that reads nothing, on x86-64 only.
#[inline]
pub(crate) fn prefetch_lines(ptr: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let mut line = 0;
        while line < len.min(256) {
            // SAFETY: `_mm_prefetch` needs SSE, which every x86-64 processor has (it is in the
            // baseline target). A prefetch is a hint: it never faults and never reads or
            // changes memory for the program, whatever the address; `wrapping_add` keeps the
            // address computation defined.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(line).cast::<i8>());
            }
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}

/// Copies `dst.len()` bytes out of shared memory with relaxed atomic loads: single bytes up to
/// a word boundary, then whole words, then the tail bytes.
///
/// # Safety
/// `src..src + dst.len()` must lie in a live mapping.
pub(crate) unsafe fn copy_out(src: *const u8, dst: &mut [u8]) {
    let head = src.align_offset(WORD).min(dst.len());
    let (bytes, rest) = dst.split_at_mut(head);
    for (i, byte) in bytes.iter_mut().enumerate() {
        // SAFETY: `i < head <= len`, so in bounds (caller's contract); bytes need no alignment.
        *byte = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
    }
    // SAFETY: `head <= len`.
    let src = unsafe { src.add(head) };
    let done = rest.len() - rest.len() % WORD;
    let (words, tail) = rest.split_at_mut(done);
    // SAFETY: `src` is word-aligned after the head, and the `done` bytes (whole words) after
    // it lie in the range (caller's contract).
    unsafe { copy_words_out(src, words) };
    for (i, byte) in tail.iter_mut().enumerate() {
        // SAFETY: `done + i < rest.len()`, in bounds.
        *byte = unsafe { AtomicU8::from_ptr(src.add(done + i).cast_mut()) }.load(Ordering::Relaxed);
    }
}

/// Copies `dst.len()` bytes, a whole number of words, out of shared memory at the word-aligned
/// `src` with relaxed atomic word loads: `copy_out` without its head and tail.
///
/// # Safety
/// `src..src + dst.len()` must lie in a live mapping, `src` must be word-aligned and
/// `dst.len()` a multiple of [`WORD`].
#[inline]
pub(crate) unsafe fn copy_words_out(src: *const u8, dst: &mut [u8]) {
    // A load and a store a word through raw pointers: the slice chunks this replaced cost a
    // bounds check and an iterator step a word (a table scan's record, a 120-byte slot, took
    // 22 instructions fewer so: 472 -> 450 a record under callgrind, pblockdb's iter_n; four
    // words a round through closures took more again).
    let words = dst.len() / WORD;
    let out = dst.as_mut_ptr();
    for i in 0..words {
        // SAFETY: word `i` ends within the range (`(i + 1) * WORD <= dst.len()`) and is
        // aligned (`src` is word-aligned); the caller's contract puts it in a live mapping.
        // Relaxed loads are sound on read-only memory up to the pointer size.
        let word = unsafe { AtomicUsize::from_ptr(src.add(i * WORD).cast::<usize>().cast_mut()) }
            .load(Ordering::Relaxed);
        // SAFETY: the same `WORD` bytes of `dst`, which is exclusively borrowed and holds
        // them; `write_unaligned` needs no alignment. Host order: the word's bytes back in
        // memory order.
        unsafe { out.add(i * WORD).cast::<usize>().write_unaligned(word) };
    }
}

/// Copies `src` into shared memory with relaxed atomic stores, shaped as [`copy_out`].
///
/// # Safety
/// `dst..dst + src.len()` must lie in a live, writable mapping.
pub(crate) unsafe fn copy_in(dst: *mut u8, src: &[u8]) {
    let head = dst.align_offset(WORD).min(src.len());
    let (bytes, rest) = src.split_at(head);
    for (i, &byte) in bytes.iter().enumerate() {
        // SAFETY: `i < head <= len`, in bounds and writable (caller's contract).
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(byte, Ordering::Relaxed);
    }
    // SAFETY: `head <= len`.
    let dst = unsafe { dst.add(head) };
    let mut words = rest.chunks_exact(WORD);
    for (i, chunk) in words.by_ref().enumerate() {
        let mut raw = [0u8; WORD];
        raw.copy_from_slice(chunk);
        // tidy:host-endian: bytes into a word of memory, in memory order.
        let word = usize::from_ne_bytes(raw);
        // SAFETY: `dst` is word-aligned after the head, and word `i` ends within the range.
        unsafe { AtomicUsize::from_ptr(dst.add(i * WORD).cast::<usize>()) }
            .store(word, Ordering::Relaxed);
    }
    let tail = words.remainder();
    let done = rest.len() - tail.len();
    for (i, &byte) in tail.iter().enumerate() {
        // SAFETY: `done + i < rest.len()`, in bounds.
        unsafe { AtomicU8::from_ptr(dst.add(done + i)) }.store(byte, Ordering::Relaxed);
    }
}
