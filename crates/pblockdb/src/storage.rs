//! The storage seam: every byte a writer puts into the file and every sync it asks for go
//! through a [`Backend`], so that one commit path can write through the writable mapping (the
//! default, [`Storage::Mapped`]) or by positioned writes beside a read-only data mapping
//! ([`Storage::Write`]). What goes through which call, and why the coordination words are
//! stores through a writable mapping whatever the backend, is argued in
//! `docs/pblockdb-format.md` ("The storage seam").

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use pmap::SharedMap;

use crate::Result;
use crate::seqlock::Seqlock;
use crate::testing::Recorder;

/// How a writable handle puts its commits into the file (`DbOptions::storage`). Handles that
/// chose differently share a file: the format and the order of the writes are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Storage {
    /// Through a writable shared mapping of the file, which readers read too; syncs are
    /// `msync` (plus a data sync off Linux). The fastest.
    #[default]
    Mapped,
    /// The handle's data mapping, which every read goes through, is read-only; record bytes
    /// (slot images, history entries, count records, descriptors) go into the file by
    /// positioned writes (`pwrite`, `WriteFile` at an offset), and only the coordination words
    /// (seqlock guards, the clock, the hints) are stored through a second, writable mapping
    /// that no read uses (`docs/pblockdb-format.md`, "The storage seam").
    Write,
}

/// The writable view of a [`Storage::Write`] handle: used only for coordination words,
/// positioned writes, growth and syncs. Behind a lock because another process's growth makes
/// it remap.
#[derive(Debug)]
pub(crate) struct Words {
    map: RwLock<SharedMap>,
}

/// How a writable handle puts its changes into the file: the storage it chose, and, in tests,
/// a record of every write and sync.
///
/// Two kinds of write reach it. **Record bytes** ([`Backend::write`]): slot and history-entry
/// bodies, count records, descriptor fields, the user area, zeroed regions; a reader copies
/// them with plain (relaxed) copies and trusts them only after a guard word or a checksum said
/// the copy is whole, so they need no atomicity. **Coordination words**
/// ([`Backend::store_u64`], [`Backend::store_u32`], [`Backend::begin_write`],
/// [`Backend::end_write`]): seqlock guards (slot meta words, entry number words, descriptor
/// generation words), the commit clock, the history head, the generations, the hints and the
/// user version; readers load each of them with one atomic load and order their reads by it,
/// so every storage stores them with one atomic store (with the ordering asked for) through a
/// writable shared mapping of the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backend {
    /// `None`: [`Storage::Mapped`], everything through the handle's own (writable) map.
    words: Option<Arc<Words>>,
    /// Every write and sync noted, in order (the crash tests build the file a power loss
    /// could leave from it).
    recorder: Option<Arc<Recorder>>,
}

impl Backend {
    /// The backend of a handle whose data mapping is `map`: for [`Storage::Write`], `words` is
    /// the writable mapping of the same file and `map` must be read-only.
    pub(crate) fn new(words: Option<SharedMap>, recorder: Option<Arc<Recorder>>) -> Backend {
        Backend {
            words: words.map(|map| {
                Arc::new(Words {
                    map: RwLock::new(map),
                })
            }),
            recorder,
        }
    }

    /// Runs `f` on the map coordination words and positioned writes go through, which covers
    /// `at .. at + len` if the file does (it is remapped when another process grew the file).
    #[inline(always)]
    fn on<R>(
        &self,
        map: &SharedMap,
        at: usize,
        len: usize,
        f: impl Fn(&SharedMap, Storage) -> pmap::Result<R>,
    ) -> Result<R> {
        let Some(words) = &self.words else {
            return Ok(f(map, Storage::Mapped)?);
        };
        {
            let view = words.map.read().unwrap_or_else(PoisonError::into_inner);
            if at.checked_add(len).is_some_and(|end| end <= view.len()) {
                return Ok(f(&view, Storage::Write)?);
            }
        }
        let mut view = words.map.write().unwrap_or_else(PoisonError::into_inner);
        view.refresh()?;
        Ok(f(&view, Storage::Write)?)
    }

    /// Copies record bytes into the file at `at`: into the mapping, or by a positioned write.
    #[inline(always)]
    pub(crate) fn write(&self, map: &SharedMap, at: usize, bytes: &[u8]) -> Result<()> {
        self.on(map, at, bytes.len(), |view, storage| match storage {
            Storage::Write => view.write_file_at(at, bytes),
            Storage::Mapped => view.write_at(at, bytes),
        })?;
        self.note(at, bytes);
        Ok(())
    }

    /// Stores the coordination word at `at` (8 bytes, aligned) with one atomic store.
    #[inline(always)]
    pub(crate) fn store_u64(
        &self,
        map: &SharedMap,
        at: usize,
        value: u64,
        order: Ordering,
    ) -> Result<()> {
        self.on(map, at, 8, |view, _| {
            view.atomic_u64(at).map(|word| word.store(value, order))
        })?;
        self.note(at, &value.to_le_bytes());
        Ok(())
    }

    /// Stores the 4-byte coordination word (a hint) at `at` with one atomic store.
    #[inline(always)]
    pub(crate) fn store_u32(
        &self,
        map: &SharedMap,
        at: usize,
        value: u32,
        order: Ordering,
    ) -> Result<()> {
        self.on(map, at, 4, |view, _| {
            view.atomic_u32(at).map(|word| word.store(value, order))
        })?;
        self.note(at, &value.to_le_bytes());
        Ok(())
    }

    /// A seqlock writer enters the region guarded by the word at `at`
    /// ([`Seqlock::begin_write`]: the mark, then a release fence).
    #[inline(always)]
    pub(crate) fn begin_write(&self, map: &SharedMap, at: usize, writing: u64) -> Result<()> {
        self.on(map, at, 8, |view, _| {
            view.atomic_u64(at)
                .map(|word| Seqlock::begin_write(word, writing))
        })?;
        self.note(at, &writing.to_le_bytes());
        Ok(())
    }

    /// A seqlock writer leaves ([`Seqlock::end_write`]: the word, release).
    #[inline(always)]
    pub(crate) fn end_write(&self, map: &SharedMap, at: usize, done: u64) -> Result<()> {
        self.on(map, at, 8, |view, _| {
            view.atomic_u64(at)
                .map(|word| Seqlock::end_write(word, done))
        })?;
        self.note(at, &done.to_le_bytes());
        Ok(())
    }

    /// Makes every byte written so far durable, and waits for the disk (the word view's
    /// `msync` of the whole file, which covers the positioned writes too; elsewhere than on
    /// Linux a data sync of the file after it).
    pub(crate) fn sync(&self, map: &SharedMap) -> Result<()> {
        self.on(map, 0, 0, |view, _| view.flush())?;
        if let Some(recorder) = &self.recorder {
            recorder.synced(0, u64::MAX);
        }
        Ok(())
    }

    /// Makes the bytes `at .. at + len` durable, and waits for the disk.
    pub(crate) fn sync_range(&self, map: &SharedMap, at: usize, len: usize) -> Result<()> {
        self.on(map, at, len, |view, _| view.flush_range(at, len))?;
        if let Some(recorder) = &self.recorder {
            recorder.synced(at as u64, (at + len) as u64);
        }
        Ok(())
    }

    /// Grows the file to `len` bytes (its blocks reserved) and remaps `map` over it.
    pub(crate) fn grow(&self, map: &mut SharedMap, len: usize) -> pmap::Result<()> {
        match &self.words {
            None => map.grow(len),
            Some(words) => {
                words
                    .map
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .grow(len)?;
                map.refresh().map(|_| ())
            }
        }
    }

    #[inline(always)]
    fn note(&self, at: usize, bytes: &[u8]) {
        if let Some(recorder) = &self.recorder {
            recorder.wrote(at as u64, bytes);
        }
    }
}
