//! [`ReadSpan`]: a range of a [`SharedMap`] checked once for reading, on read-only views too,
//! so that a loop over many records of one region (a table scan) pays one check against the
//! map per region instead of one per word and copy.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[allow(unused_imports)] // `Error` is named by the doc links.
use crate::Error;
use crate::shared::{copy_out, copy_words_out, load_ordered, prefetch_lines};
use crate::word::LoadWord64;
use crate::{Result, SharedMap};

/// The alignment of a read span's first byte: its words at multiples of 8 are aligned.
const SPAN_ALIGN: usize = 8;

/// `len` bytes of a [`SharedMap`] (writable or not) at an 8-aligned address, checked when the
/// span was made ([`SharedMap::read_span`]). Its accessors check an offset only against the
/// span's own length and return `Option`/`bool`, never an [`Error`]: the read side of
/// [`crate::SharedSpan`], for loops that read many records of one region.
///
/// Reads follow the map's rules: bytes come out only through copies made of relaxed atomic
/// loads (a byte another process writes meanwhile may be old or new, so validate what you
/// copy, as a seqlock does), and on a read-only view every load is relaxed with the ordering
/// supplied by fences. The span borrows the map, so the view cannot be unmapped or moved while
/// it lives.
///
/// ```
/// # fn main() -> Result<(), pmap::Error> {
/// use std::sync::atomic::Ordering;
/// use pmap::word::Load64;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("table.bin");
/// let shared = pmap::Map::create(&path, 4096)?.into_shared();
/// shared.write_at(64, &7u64.to_le_bytes())?;
/// let region = shared.read_span(64, 128)?; // checked once
/// assert_eq!(region.word_u64(0).map(|w| w.load(Ordering::Acquire)), Some(7));
/// let mut record = [0u8; 16];
/// assert!(region.read_at(0, &mut record));
/// assert!(!region.read_at(120, &mut record), "past the span: nothing read");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ReadSpan<'a> {
    /// The span's first byte: inside the live view, 8-aligned, with `len` bytes after it in
    /// the view (checked by [`SharedMap::read_span`]).
    ptr: *const u8,
    len: usize,
    writable: bool,
    map: PhantomData<&'a SharedMap>,
}

impl SharedMap {
    /// Checks once that the `len` bytes at `offset` lie in the view and that the address of
    /// `offset` is 8-aligned, and returns them as a [`ReadSpan`] whose accessors need no
    /// further check against the map. Works on read-only views.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    #[inline]
    pub fn read_span(&self, offset: usize, len: usize) -> Result<ReadSpan<'_>> {
        let ptr = self.core.aligned(offset, len, SPAN_ALIGN)?;
        Ok(ReadSpan {
            ptr: ptr.cast_const(),
            len,
            writable: self.core.is_writable(),
            map: PhantomData,
        })
    }
}

impl<'a> ReadSpan<'a> {
    /// The span's length in bytes.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the span holds no byte.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `len` bytes at `offset` end inside the span.
    #[inline]
    fn holds(&self, offset: usize, len: usize) -> bool {
        matches!(offset.checked_add(len), Some(end) if end <= self.len)
    }

    /// The 8-aligned word at `offset` as a [`LoadWord64`] (for a protocol kernel, see
    /// [`crate::word`]); `None` if `offset` is not a multiple of 8 or the word does not end
    /// inside the span.
    #[inline]
    #[must_use]
    pub fn word_u64(&self, offset: usize) -> Option<LoadWord64<'a>> {
        if offset % 8 != 0 || !self.holds(offset, 8) {
            return None;
        }
        // SAFETY: the span's start is 8-aligned and `offset` a multiple of 8, so the word is
        // aligned; it ends inside the span (checked), hence inside the live view for `'a` (the
        // span borrows the map, which unmaps only through `&mut self` or by value).
        // `LoadWord64` only loads, relaxed on a read-only view (`load_ordered`), and
        // `SharedMap` never accesses its bytes non-atomically.
        let word = unsafe { AtomicU64::from_ptr(self.ptr.add(offset).cast::<u64>().cast_mut()) };
        Some(LoadWord64 {
            word,
            writable: self.writable,
        })
    }

    /// Loads the 4-aligned word at `offset` with `order` (as [`SharedMap::load_u32`]); `None`
    /// if `offset` is not a multiple of 4 or the word does not end inside the span.
    #[inline]
    #[must_use]
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Option<u32> {
        if offset % 4 != 0 || !self.holds(offset, 4) {
            return None;
        }
        // SAFETY: as in `word_u64`, for 4 bytes at a 4-aligned address (the start is
        // 8-aligned); only loaded, relaxed on a read-only view.
        let word = unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast::<u32>().cast_mut()) };
        Some(load_ordered(self.writable, order, |o| word.load(o)))
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`, as [`SharedMap::read_at`] does (whole
    /// words without a head or tail loop when `offset` and the length are multiples of 8);
    /// `false`, and nothing read, if they do not end inside the span.
    #[inline(always)]
    #[must_use = "false means nothing was read"]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> bool {
        if !self.holds(offset, buf.len()) {
            return false;
        }
        // SAFETY: `offset <= len` (checked), so the pointer stays in the span.
        let src = unsafe { self.ptr.add(offset) };
        if offset % WORD == 0 && buf.len() % WORD == 0 {
            // SAFETY: the range lies in the span (checked), hence in the live view for `'a`;
            // `src` is word-aligned (the start is 8-aligned, `offset` a multiple of the word)
            // and the length a whole number of words.
            unsafe { copy_words_out(src, buf) };
        } else {
            // SAFETY: the range lies in the span (checked), hence in the live view for `'a`;
            // `copy_out` loads with relaxed atomics only.
            unsafe { copy_out(src, buf) };
        }
        true
    }

    /// Asks the processor to start loading the cache lines of `len` bytes at `offset` (at most
    /// the first 256): a hint, which does nothing out of the span or off x86-64.
    #[inline]
    pub fn prefetch(&self, offset: usize, len: usize) {
        if self.holds(offset, len) {
            // `offset <= len`: the address stays in the span.
            prefetch_lines(self.ptr.wrapping_add(offset), len);
        }
    }
}

/// The copies' word, as in `shared.rs`: pointer-sized, the largest relaxed atomic load std
/// promises works on read-only memory. A span's start is 8-aligned, so also word-aligned.
const WORD: usize = size_of::<usize>();
