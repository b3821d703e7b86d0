//! The seqlock kernel of a slot and of a history entry: the writer's mark, fence and publish,
//! and the reader's load, fence and recheck, in the order docs/pblockdb-format.md ("Slots",
//! "Snapshots") argues them, written once.
//!
//! A slot's meta word (its version, odd while a writer is inside) and a history entry's number
//! word (`ENTRY_WRITING` while it is rewritten) guard the bytes after them. The writer holds the
//! writer lock, so there is one writer at a time; readers take no lock and retry or read past.
//! Each kernel is generic over `pmap::word`'s traits: the crate calls it with the words of its
//! mapping (std atomics: the same machine code as without the seam), and `loom_models.rs`
//! (`cargo xtask loom`) with loom's atomics.

use std::sync::atomic::Ordering;

use pmap::word::{Load64, Word64};

/// The seqlock protocol on one guard word.
pub(crate) struct Seqlock;

impl Seqlock {
    /// The writer enters: the guard word takes `writing` (an odd version, or `ENTRY_WRITING`),
    /// then a release fence, so that a reader whose copy read any byte written after this
    /// (relaxed) and then fences (acquire, [`Self::unchanged`]) sees the guard changed.
    #[inline(always)]
    pub(crate) fn begin_write<W: Word64>(word: &W, writing: u64) {
        word.store(writing, Ordering::Relaxed);
        W::fence(Ordering::Release);
    }

    /// The writer leaves: the guard word takes `done` (the new even version, or the entry's
    /// number) with release ordering, so that a reader that loads it ([`Self::begin_read`])
    /// sees every byte written before.
    #[inline(always)]
    pub(crate) fn end_write<W: Word64>(word: &W, done: u64) {
        word.store(done, Ordering::Release);
    }

    /// The reader, before its copy: the guard word, acquire.
    #[inline(always)]
    pub(crate) fn begin_read<W: Load64>(word: &W) -> u64 {
        word.load(Ordering::Acquire)
    }

    /// The reader, after its copy: an acquire fence, then the guard word again (relaxed).
    /// True when it still holds `seen`, the value [`Self::begin_read`] returned: no writer
    /// entered during the copy, which is then whole (if `seen` was not a writer's mark).
    #[inline(always)]
    pub(crate) fn unchanged<W: Load64>(word: &W, seen: u64) -> bool {
        W::fence(Ordering::Acquire);
        word.load(Ordering::Relaxed) == seen
    }
}
