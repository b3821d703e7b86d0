//! The storage seam: every byte a writer puts into the file and every sync it asks for go
//! through a [`Storage`], so that one commit path can write through the writable mapping (the
//! default) or another way. What goes through which call, and why the coordination words are
//! stores through a writable mapping whatever the backend, is argued in
//! `docs/pblockdb-format.md` ("The storage seam").

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pmap::SharedMap;

use crate::Result;
use crate::seqlock::Seqlock;
use crate::testing::Recorder;

/// How a writable handle puts its changes into the file.
///
/// Two kinds of write reach it. **Record bytes** ([`Storage::write`]): slot and history-entry
/// bodies, count records, descriptor fields, the user area, zeroed regions; a reader copies
/// them with plain (relaxed) copies and trusts them only after a guard word or a checksum said
/// the copy is whole, so they need no atomicity. **Coordination words**
/// ([`Storage::store_u64`], [`Storage::store_u32`], [`Storage::begin_write`],
/// [`Storage::end_write`]): seqlock guards (slot meta words, entry number words, descriptor
/// generation words), the commit clock, the history head, the generations, the hints and the
/// user version; readers load each of them with one atomic load and order their reads by it,
/// so every backend stores them with one atomic store (with the ordering asked for) through a
/// writable shared mapping of the file.
#[derive(Debug, Clone, Default)]
pub(crate) enum Storage {
    /// Everything through the writable shared mapping; syncs are `msync` plus a data sync.
    #[default]
    Mapped,
    /// As [`Storage::Mapped`], and every write and sync noted, in order, in a [`Recorder`]:
    /// the crash tests build the file a power loss could leave from it.
    Recorded(Arc<Recorder>),
}

impl Storage {
    /// Copies record bytes into the file at `at`.
    #[inline]
    pub(crate) fn write(&self, map: &SharedMap, at: usize, bytes: &[u8]) -> Result<()> {
        map.write_at(at, bytes)?;
        self.note(at, bytes);
        Ok(())
    }

    /// Stores the coordination word at `at` (8 bytes, aligned) with one atomic store.
    #[inline]
    pub(crate) fn store_u64(
        &self,
        map: &SharedMap,
        at: usize,
        value: u64,
        order: Ordering,
    ) -> Result<()> {
        map.atomic_u64(at)?.store(value, order);
        self.note(at, &value.to_le_bytes());
        Ok(())
    }

    /// Stores the 4-byte coordination word (a hint) at `at` with one atomic store.
    #[inline]
    pub(crate) fn store_u32(
        &self,
        map: &SharedMap,
        at: usize,
        value: u32,
        order: Ordering,
    ) -> Result<()> {
        map.atomic_u32(at)?.store(value, order);
        self.note(at, &value.to_le_bytes());
        Ok(())
    }

    /// A seqlock writer enters the region guarded by the word at `at`
    /// ([`Seqlock::begin_write`]: the mark, then a release fence).
    #[inline]
    pub(crate) fn begin_write(&self, map: &SharedMap, at: usize, writing: u64) -> Result<()> {
        Seqlock::begin_write(map.atomic_u64(at)?, writing);
        self.note(at, &writing.to_le_bytes());
        Ok(())
    }

    /// A seqlock writer leaves ([`Seqlock::end_write`]: the word, release).
    #[inline]
    pub(crate) fn end_write(&self, map: &SharedMap, at: usize, done: u64) -> Result<()> {
        Seqlock::end_write(map.atomic_u64(at)?, done);
        self.note(at, &done.to_le_bytes());
        Ok(())
    }

    /// Makes every byte written so far durable, and waits for the disk.
    pub(crate) fn sync(&self, map: &SharedMap) -> Result<()> {
        map.flush()?;
        if let Storage::Recorded(recorder) = self {
            recorder.synced(0, u64::MAX);
        }
        Ok(())
    }

    /// Makes the bytes `at .. at + len` durable, and waits for the disk.
    pub(crate) fn sync_range(&self, map: &SharedMap, at: usize, len: usize) -> Result<()> {
        map.flush_range(at, len)?;
        if let Storage::Recorded(recorder) = self {
            recorder.synced(at as u64, (at + len) as u64);
        }
        Ok(())
    }

    #[inline]
    fn note(&self, at: usize, bytes: &[u8]) {
        if let Storage::Recorded(recorder) = self {
            recorder.wrote(at as u64, bytes);
        }
    }
}
