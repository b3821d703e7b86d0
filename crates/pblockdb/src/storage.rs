//! The storage seam: every byte a writer puts into the file and every sync it asks for go
//! through a [`Backend`], so that one commit path can write through the writable mapping (the
//! default, [`Storage::Mapped`]), by positioned writes beside a read-only data mapping
//! ([`Storage::Write`]), or by positioned writes after stores into a memory copy of the file
//! that nothing maps ([`Storage::Unmapped`]). What goes through which call, and why the coordination words are
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
    /// Nothing maps the file: the handle reads a copy of it in its own memory
    /// ([`pmap::MapOptions::memory_copy`], filled by positioned reads when it opens), and every
    /// write, word stores included, goes into the copy and then into the file by a positioned
    /// write, in the same order as the other storages' stores. For file systems where shared
    /// mappings are not possible or not safe. Such a handle is alone with its file while it
    /// lives, read-only or not: opening one while any other handle has the file open, or
    /// another while it does, is [`crate::Error::InUse`] (Linux; elsewhere opening one is
    /// refused for now). See `docs/pblockdb-format.md` ("The storage seam").
    Unmapped,
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
    /// For [`Storage::Unmapped`]: the process that opened the handle. Its memory copy is the
    /// file's only up-to-date image, so a forked child (which has a copy of the copy) must not
    /// write through it.
    copy_opened_by: Option<u32>,
    /// Every write and sync noted, in order (the crash tests build the file a power loss
    /// could leave from it).
    recorder: Option<Arc<Recorder>>,
}

impl Backend {
    /// The backend of a handle whose data mapping is `map`: for [`Storage::Write`], `words` is
    /// the writable mapping of the same file and `map` must be read-only.
    /// For [`Storage::Unmapped`], `map` is a memory copy and `words` is `None`.
    pub(crate) fn new(
        map: &SharedMap,
        words: Option<SharedMap>,
        recorder: Option<Arc<Recorder>>,
    ) -> Backend {
        Backend {
            words: words.map(|map| {
                Arc::new(Words {
                    map: RwLock::new(map),
                })
            }),
            copy_opened_by: map.is_memory_copy().then(std::process::id),
            recorder,
        }
    }

    /// Refuses a write through a [`Storage::Unmapped`] handle from a process forked from the
    /// one that opened it.
    pub(crate) fn check_writer_process(&self, path: &std::path::Path) -> Result<()> {
        match self.copy_opened_by {
            Some(pid) if pid != std::process::id() => Err(crate::Error::UnmappedForked {
                path: path.to_path_buf(),
            }),
            _ => Ok(()),
        }
    }

    /// The storage of this handle's own data view (the one `map` arguments are).
    #[inline(always)]
    fn own_storage(&self) -> Storage {
        if self.copy_opened_by.is_some() {
            Storage::Unmapped
        } else {
            Storage::Mapped
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
            return Ok(f(map, self.own_storage())?);
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
            // A memory copy's positioned write goes into the copy too.
            Storage::Write | Storage::Unmapped => view.write_file_at(at, bytes),
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
        self.on(map, at, 8, |view, storage| {
            view.atomic_u64(at).map(|word| word.store(value, order))?;
            written_back(view, storage, at, 8)
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
        self.on(map, at, 4, |view, storage| {
            view.atomic_u32(at).map(|word| word.store(value, order))?;
            written_back(view, storage, at, 4)
        })?;
        self.note(at, &value.to_le_bytes());
        Ok(())
    }

    /// A seqlock writer enters the region guarded by the word at `at`
    /// ([`Seqlock::begin_write`]: the mark, then a release fence).
    #[inline(always)]
    pub(crate) fn begin_write(&self, map: &SharedMap, at: usize, writing: u64) -> Result<()> {
        self.on(map, at, 8, |view, storage| {
            view.atomic_u64(at)
                .map(|word| Seqlock::begin_write(word, writing))?;
            written_back(view, storage, at, 8)
        })?;
        self.note(at, &writing.to_le_bytes());
        Ok(())
    }

    /// A seqlock writer leaves ([`Seqlock::end_write`]: the word, release).
    #[inline(always)]
    pub(crate) fn end_write(&self, map: &SharedMap, at: usize, done: u64) -> Result<()> {
        self.on(map, at, 8, |view, storage| {
            view.atomic_u64(at)
                .map(|word| Seqlock::end_write(word, done))?;
            written_back(view, storage, at, 8)
        })?;
        self.note(at, &done.to_le_bytes());
        Ok(())
    }

    /// A whole seqlock write of the region guarded by the word at `at`: the guard takes
    /// `writing` ([`Self::begin_write`]), `inside` runs (a test's stall point), the `parts` are
    /// written one after another from `at + 8` on ([`Self::write`]), and the guard takes `done`
    /// ([`Self::end_write`]). A memory copy ([`Storage::Unmapped`]) takes all of it in that
    /// order, and then the file receives the region in one positioned write, instead of one a
    /// store: no other handle has the file open to see the mid-write guard, and whatever a
    /// kill leaves of the region (old, new, or new up to a page boundary) recovery needs no
    /// guard for: an entry counts only once the head passes it, and every slot of an
    /// unfinished commit is restored from the history (docs/pblockdb-format.md, "The storage
    /// seam").
    pub(crate) fn write_guarded(
        &self,
        map: &SharedMap,
        at: usize,
        (writing, done): (u64, u64),
        parts: &[&[u8]],
        inside: impl FnOnce(),
    ) -> Result<()> {
        if self.own_storage() != Storage::Unmapped {
            self.begin_write(map, at, writing)?;
            inside();
            let mut offset = at + 8;
            for part in parts {
                self.write(map, offset, part)?;
                offset += part.len();
            }
            return self.end_write(map, at, done);
        }
        map.atomic_u64(at)
            .map(|word| Seqlock::begin_write(word, writing))?;
        self.note(at, &writing.to_le_bytes());
        inside();
        let mut offset = at + 8;
        for part in parts {
            map.write_at(offset, part)?;
            self.note(offset, part);
            offset += part.len();
        }
        map.atomic_u64(at)
            .map(|word| Seqlock::end_write(word, done))?;
        self.note(at, &done.to_le_bytes());
        Ok(map.write_back(at, offset - at)?)
    }

    /// Makes every byte written so far durable, and waits for the disk (the word view's
    /// `msync` of the whole file, which covers the positioned writes too; elsewhere than on
    /// Linux a data sync of the file after it; for a memory copy, the file's data sync).
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

/// After a word store into a memory copy ([`Storage::Unmapped`]): the same bytes into the file,
/// by a positioned write, before the next store (so the file receives the stores in their
/// order, as a mapping's page cache would).
#[inline(always)]
fn written_back(view: &SharedMap, storage: Storage, at: usize, len: usize) -> pmap::Result<()> {
    match storage {
        Storage::Unmapped => view.write_back(at, len),
        Storage::Mapped | Storage::Write => Ok(()),
    }
}
