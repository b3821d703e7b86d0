//! [`SharedSpan`]: a range of a [`SharedMap`] checked once (bounds, writability, alignment), so
//! that a hot path touching several words and bytes of one record pays one check against the
//! map instead of one per field.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[allow(unused_imports)] // `Error` is named by the doc links.
use crate::Error;
use crate::{Result, SharedMap};

/// The alignment of a span's first byte, and the length it has at least: its first word is an
/// `AtomicU64` without a further check.
const SPAN_ALIGN: usize = 8;

/// `len` bytes of a writable [`SharedMap`], at an 8-aligned address, checked when the span was
/// made ([`SharedMap::span`]). Its accessors check an offset only against the span's own length
/// (one comparison, often folded away), never the map again, and return `Option`/`bool` rather
/// than an [`Error`] carrying the map's path: what the write path of a log needs to claim,
/// fill and publish a block in a handful of instructions.
///
/// The same rules as the map's hold: bytes move in and out only by copies made of relaxed
/// atomic accesses, words are shared as atomics at aligned offsets, and no reference to racing
/// bytes escapes. The span borrows the map, so the view cannot be unmapped or moved (growth
/// and remapping take `&mut SharedMap`) while it lives.
///
/// ```
/// # fn main() -> Result<(), pmap::Error> {
/// use std::sync::atomic::Ordering;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("blocks.bin");
/// let shared = pmap::Map::create(&path, 4096)?.into_shared();
/// let block = shared.span(128, 64)?; // checked once
/// block.first_u64().store(7, Ordering::Release);
/// assert!(block.write_at(8, b"payload!"));
/// assert!(!block.write_at(60, b"too long"), "past the span: nothing written");
/// assert_eq!(shared.load_u64(128, Ordering::Acquire)?, 7);
/// assert_eq!(shared.read::<[u8; 8]>(136)?, *b"payload!");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SharedSpan<'a> {
    /// The span's first byte: inside the live, writable view, 8-aligned, with `len` bytes
    /// after it in the view (checked by [`SharedMap::span`]).
    ptr: *mut u8,
    len: usize,
    map: PhantomData<&'a SharedMap>,
}

impl SharedMap {
    /// Checks once that the `len` bytes at `offset` lie in the view, that the view is writable,
    /// that the address of `offset` is 8-aligned and that `len` is at least 8, and returns them
    /// as a [`SharedSpan`] whose accessors need no further check against the map.
    ///
    /// # Errors
    /// [`Error::ReadOnlyMapping`], [`Error::OutOfBounds`] (also for `len` < 8, reported as the
    /// 8 bytes a span needs), or [`Error::Misaligned`].
    #[inline]
    pub fn span(&self, offset: usize, len: usize) -> Result<SharedSpan<'_>> {
        self.core.require_writable("span")?;
        let ptr = self.core.aligned(offset, len.max(SPAN_ALIGN), SPAN_ALIGN)?;
        Ok(SharedSpan {
            ptr,
            len: len.max(SPAN_ALIGN),
            map: PhantomData,
        })
    }
}

impl<'a> SharedSpan<'a> {
    /// The span's length in bytes (at least 8).
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a span holds at least its first word.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The span's first 8 bytes as an `AtomicU64`: no check, since the span was made aligned
    /// and at least 8 bytes long.
    #[inline]
    #[must_use]
    pub fn first_u64(&self) -> &'a AtomicU64 {
        // SAFETY: `SharedMap::span` checked that `ptr` is 8-aligned with at least 8 bytes of
        // the live, writable view after it. The view stays mapped for `'a` (the span borrows
        // the map, which unmaps only through `&mut self` or by value), and `SharedMap` never
        // accesses its bytes non-atomically, so an atomic reference to them is sound.
        unsafe { AtomicU64::from_ptr(self.ptr.cast::<u64>()) }
    }

    /// The 8-aligned word at `offset` into the span as an `AtomicU64`; `None` if `offset` is
    /// not a multiple of 8 or the word does not end inside the span.
    #[inline]
    #[must_use]
    pub fn atomic_u64(&self, offset: usize) -> Option<&'a AtomicU64> {
        if offset % 8 != 0 || offset.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: the span's start is 8-aligned and `offset` a multiple of 8, so the word is
        // aligned; it ends inside the span (checked), hence inside the live, writable view for
        // `'a`, as in `first_u64`.
        Some(unsafe { AtomicU64::from_ptr(self.ptr.add(offset).cast::<u64>()) })
    }

    /// The 4-aligned word at `offset` into the span as an `AtomicU32`; `None` if `offset` is
    /// not a multiple of 4 or the word does not end inside the span.
    #[inline]
    #[must_use]
    pub fn atomic_u32(&self, offset: usize) -> Option<&'a AtomicU32> {
        if offset % 4 != 0 || offset.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: as in `atomic_u64`, for 4 bytes at a 4-aligned address.
        Some(unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast::<u32>()) })
    }

    /// Copies `data` into the span at `offset`, as [`SharedMap::write_at`] does (relaxed
    /// atomic stores; whole words, without a head or tail loop, when `offset` and the length
    /// are multiples of 8); `false`, and nothing written, if it does not end inside the span.
    #[inline]
    #[must_use = "false means nothing was written"]
    pub fn write_at(&self, offset: usize, data: &[u8]) -> bool {
        match offset.checked_add(data.len()) {
            Some(end) if end <= self.len => {}
            _ => return false,
        }
        // SAFETY: `offset <= len` (checked), so the pointer stays in the span.
        let dst = unsafe { self.ptr.add(offset) };
        if offset % WORD == 0 && data.len() % WORD == 0 {
            // SAFETY: the range lies in the span (checked), hence in the live, writable view
            // for `'a`; `dst` is word-aligned (the span's start is 8-aligned, `offset` a
            // multiple of the word) and the length a whole number of words.
            unsafe { copy_words_in(dst, data) };
        } else {
            // SAFETY: the range lies in the span (checked), hence in the live, writable view
            // for `'a`; `copy_in` stores with relaxed atomics only.
            unsafe { crate::shared::copy_in(dst, data) };
        }
        true
    }
}

/// The copies' word, as in `shared.rs`: pointer-sized (8 bytes on 64-bit targets), so that a
/// relaxed store of it is one plain store everywhere. A span's start is 8-aligned, so also
/// word-aligned.
const WORD: usize = size_of::<usize>();

/// Copies `src`, a whole number of words, into shared memory at the word-aligned `dst` with
/// relaxed atomic word stores: the shape of `copy_in` without its head and
/// tail, for the record images of a log's write path.
///
/// # Safety
/// `dst..dst + src.len()` must lie in a live, writable mapping, `dst` must be word-aligned and
/// `src.len()` a multiple of [`WORD`].
#[inline]
unsafe fn copy_words_in(dst: *mut u8, src: &[u8]) {
    for (i, chunk) in src.chunks_exact(WORD).enumerate() {
        let mut raw = [0u8; WORD];
        raw.copy_from_slice(chunk);
        // tidy:host-endian: bytes into a word of memory, in memory order.
        let value = usize::from_ne_bytes(raw);
        // SAFETY: word `i` ends within the range (`i < src.len() / WORD`), and is aligned
        // (`dst` is word-aligned); the caller's contract puts it in a live, writable mapping.
        unsafe { AtomicUsize::from_ptr(dst.add(i * WORD).cast::<usize>()) }
            .store(value, Ordering::Relaxed);
    }
}
