//! The database handle: opening and validating a file, and the lock-free read path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use pmap::{Lock, SharedMap};

use crate::buf::{Buf, scratch};
use crate::format::{
    self, Geometry, OFF_CHANGES, OFF_COUNT, OFF_DESC, OFF_GENERATION, OFF_JOURNAL_STATE, OFF_USED,
    OFF_USER_AREA, OFF_USER_VERSION, SLOT_HEADER, STATE_EMPTY, STATE_LIVE, STATE_TOMB,
    USER_AREA_SIZE,
};
use crate::{Error, Result};

/// How long a reader waits on a slot that stays mid-write before it suspects a dead writer and
/// takes the writer lock to settle it.
const STUCK_AFTER: Duration = Duration::from_millis(20);

/// The active table as this handle last saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    pub generation: u64,
    /// Start of the region: the hint array.
    pub offset: usize,
    /// Start of the slots, after the hint array.
    pub slots: usize,
    pub capacity: u64,
}

impl Table {
    /// A table whose region (`offset`, `capacity`) was checked to lie in the map.
    pub(crate) fn new(generation: u64, offset: usize, capacity: u64) -> Self {
        // In bounds by the caller's check, so the hint bytes fit too.
        let hints = format::hint_bytes(capacity).unwrap_or(0) as usize;
        Table {
            generation,
            offset,
            slots: offset + hints,
            capacity,
        }
    }

    pub(crate) fn mask(&self) -> u64 {
        self.capacity - 1
    }

    /// Byte offset of slot `idx` (`idx < capacity`; the table was checked to lie in the map).
    pub(crate) fn slot_at(&self, geo: &Geometry, idx: u64) -> usize {
        self.slots + idx as usize * geo.slot_size
    }

    /// Byte offset of slot `idx`'s hint.
    pub(crate) fn hint_at(&self, idx: u64) -> usize {
        self.offset + idx as usize * 4
    }
}

#[derive(Debug)]
pub(crate) struct Mapped {
    pub map: SharedMap,
    pub table: Table,
}

/// A fixed-block record database in a memory-mapped file, shared between threads and
/// processes.
///
/// Every record has a key of exactly [`Db::key_size`] bytes and a value of exactly
/// [`Db::value_size`] bytes; shorter keys and values are padded with zero bytes, longer ones
/// are [`Error::KeySize`]/[`Error::ValueSize`]. Reads take no lock; writes serialise on an
/// in-process mutex plus an exclusive advisory file lock (one `flock` pair per write, or one
/// per batch with [`Db::lock_writes`]). See `docs/pblockdb-format.md` for the file layout and
/// the crash-consistency argument.
#[derive(Debug)]
pub struct Db {
    pub(crate) path: PathBuf,
    pub(crate) geo: Geometry,
    pub(crate) read_only: bool,
    pub(crate) sync_on_write: bool,
    pub(crate) mapped: RwLock<Mapped>,
    pub(crate) writer: Mutex<()>,
    /// A second, fixed, read-only view of the header whose file handle carries the advisory
    /// lock, so that waiting for the lock never holds `mapped` (readers would queue behind a
    /// remap that waits on it).
    pub(crate) locker: SharedMap,
    /// [`thread_token`] of the thread holding the writer lock through this handle, 0 when none.
    pub(crate) owner: AtomicUsize,
    /// [`thread_token`] of the thread holding the writer lock through any handle of this
    /// process on this file (shared between them, see `owners.rs`), 0 when none.
    pub(crate) file_owner: Arc<AtomicUsize>,
}

/// A number unique to the calling thread while it lives (the address of a thread-local).
pub(crate) fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|token| std::ptr::from_ref(token) as usize)
}

/// What a lookup found.
enum Probe<R> {
    Found(R),
    Missing,
    /// The table was rebuilt under the reader: start again.
    Retry,
    /// A slot stayed mid-write: settle it under the writer lock, then start again.
    Stuck(u64),
}

/// The result of reading one slot consistently.
pub(crate) enum SlotRead {
    /// The slot's meta word, stable across the copy of the slot into the buffer.
    Stable(u64),
    /// The slot stayed mid-write past [`STUCK_AFTER`].
    Stuck,
}

pub(crate) fn is_writing(meta: u64) -> bool {
    format::version_of(meta) & 1 == 1
}

impl Db {
    /// Opens an existing database, adopting the key size, value size and capacity stored in it.
    ///
    /// # Errors
    /// [`Error::Map`] with [`pmap::Error::NotFound`] when the file does not exist, the
    /// validation errors listed in `docs/pblockdb-format.md`, or an I/O error.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Db> {
        crate::options::open_existing(path.as_ref(), false)
    }

    /// Opens an existing database read-only: every read works, every write is
    /// [`Error::ReadOnly`]. If a writer crashed mid-operation and nobody has recovered the file
    /// yet, this is [`Error::NeedsRecovery`].
    ///
    /// # Errors
    /// As [`Db::open_existing`], plus [`Error::NeedsRecovery`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Db> {
        crate::options::open_existing(path.as_ref(), true)
    }

    pub(crate) fn read_mapped(&self) -> RwLockReadGuard<'_, Mapped> {
        // A panic elsewhere cannot leave `Mapped` half-updated: it is replaced whole.
        self.mapped.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_mapped(&self) -> RwLockWriteGuard<'_, Mapped> {
        self.mapped.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in every key.
    pub fn key_size(&self) -> usize {
        self.geo.key_size
    }

    /// Bytes in every value.
    pub fn value_size(&self) -> usize {
        self.geo.value_size
    }

    /// Slots in the current table. The table is rebuilt (doubling when needed) once live
    /// records plus tombstones would pass three quarters of it.
    ///
    /// # Errors
    /// As [`Db::get`] (the handle first catches up with growth by other processes).
    pub fn capacity(&self) -> Result<u64> {
        self.current(|m| Ok(m.table.capacity))
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Records stored (a snapshot: other processes may be writing).
    pub fn len(&self) -> usize {
        let count = self
            .read_mapped()
            .map
            .load_u64(OFF_COUNT, Ordering::Acquire)
            .unwrap_or(0);
        usize::try_from(count).unwrap_or(usize::MAX)
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The change counter: +1 for every put, removing delete, in-place update and user-area
    /// write, by any process, over the life of the file.
    pub fn change_count(&self) -> u64 {
        self.read_mapped()
            .map
            .load_u64(OFF_CHANGES, Ordering::Acquire)
            .unwrap_or(0)
    }

    /// Writes every dirty page back to the file and waits for the disk.
    ///
    /// # Errors
    /// The I/O error the operating system reported.
    pub fn flush(&self) -> Result<()> {
        Ok(self.read_mapped().map.flush()?)
    }

    /// The value stored under `key`, `value_size` bytes long, or `None`.
    ///
    /// # Errors
    /// [`Error::KeySize`] for a key longer than the key size; [`Error::CorruptSlot`] when the
    /// record fails its checksum; mapping errors.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.lookup(key, <[u8]>::to_vec)
    }

    /// Copies the value stored under `key` into `out` (exactly `value_size` bytes) without
    /// allocating; returns whether the key was found (`out` is untouched when not).
    ///
    /// # Errors
    /// [`Error::BufferSize`] when `out` is not `value_size` bytes, else as [`Db::get`].
    pub fn get_into(&self, key: &[u8], out: &mut [u8]) -> Result<bool> {
        if out.len() != self.geo.value_size {
            return Err(Error::BufferSize {
                given: out.len(),
                expected: self.geo.value_size,
            });
        }
        Ok(self
            .lookup(key, |value| out.copy_from_slice(value))?
            .is_some())
    }

    /// Whether `key` is stored.
    ///
    /// # Errors
    /// As [`Db::get`].
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.lookup(key, |_| ())?.is_some())
    }

    pub(crate) fn pad_key(&self, key: &[u8]) -> Result<Buf> {
        if key.len() > self.geo.key_size {
            return Err(Error::KeySize {
                given: key.len(),
                expected: self.geo.key_size,
            });
        }
        Ok(Buf::padded(key, self.geo.key_size))
    }

    /// Runs `f` on the mapping once this handle has caught up with the file's generation.
    pub(crate) fn current<R>(&self, f: impl FnOnce(&Mapped) -> Result<R>) -> Result<R> {
        f(&*self.caught_up()?)
    }

    /// The mapping, once this handle has caught up with the file's generation (remapping
    /// after a rebuild by another handle or process).
    #[inline]
    fn caught_up(&self) -> Result<RwLockReadGuard<'_, Mapped>> {
        loop {
            let guard = self.read_mapped();
            let generation = guard.map.load_u64(OFF_GENERATION, Ordering::Acquire)?;
            if generation == guard.table.generation {
                return Ok(guard);
            }
            drop(guard);
            self.refresh()?;
        }
    }

    /// Remaps and re-reads the table descriptor after another handle rebuilt the table.
    pub(crate) fn refresh(&self) -> Result<()> {
        let mut guard = self.write_mapped();
        let generation = guard.map.load_u64(OFF_GENERATION, Ordering::Acquire)?;
        if generation == guard.table.generation {
            return Ok(());
        }
        let mapped = &mut *guard;
        mapped.map.refresh()?;
        mapped.table = read_table(&mapped.map, &self.geo, &self.path)?;
        Ok(())
    }

    fn lookup<R>(&self, key: &[u8], found: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        if key.len() > self.geo.key_size {
            return Err(Error::KeySize {
                given: key.len(),
                expected: self.geo.key_size,
            });
        }
        // Stack scratch space declared here, in this frame, so a lookup neither allocates nor
        // moves a large buffer (for keys up to 128 and slots up to 256 bytes).
        let (mut key_stack, mut key_heap) = ([0u8; 128], Vec::new());
        let key: &[u8] = if key.len() == self.geo.key_size {
            key
        } else {
            let padded = scratch(&mut key_stack, &mut key_heap, self.geo.key_size);
            padded[..key.len()].copy_from_slice(key);
            padded
        };
        let hash = format::hash_key(key);
        let (mut slot_stack, mut slot_heap) = ([0u64; 32], Vec::new());
        let slot = scratch(
            bytemuck::cast_slice_mut(&mut slot_stack),
            &mut slot_heap,
            self.geo.slot_size,
        );
        loop {
            let guard = self.caught_up()?;
            match self.probe(&guard, key, hash, slot)? {
                Probe::Found(()) => {
                    let value = &slot[self.geo.value_at()..][..self.geo.value_size];
                    return Ok(Some(found(value)));
                }
                Probe::Missing => return Ok(None),
                Probe::Retry => {}
                Probe::Stuck(idx) => {
                    drop(guard);
                    self.settle(idx)?;
                }
            }
        }
    }

    /// Follows the probe sequence of `key` in the current table; on `Found` the slot's bytes
    /// are in `slot`. Every answer is checked against a rebuild that raced the reads.
    fn probe(&self, m: &Mapped, key: &[u8], hash: u64, slot: &mut [u8]) -> Result<Probe<()>> {
        let table = m.table;
        let tag = format::tag_of(hash);
        let mut idx = hash & table.mask();
        for _ in 0..table.capacity {
            // The hint array is small and dense: a probe touches a slot only when its hint
            // matches the key's tag, so a miss usually costs no slot read at all.
            let hint = m.map.load_u32(table.hint_at(idx), Ordering::Acquire)?;
            match u64::from(hint & 3) {
                STATE_EMPTY => return self.settled(m, Probe::Missing),
                STATE_TOMB => {}
                STATE_LIVE if format::hint_matches(hint, tag) => {
                    let at = table.slot_at(&self.geo, idx);
                    let meta = match self.read_slot(m, at, slot)? {
                        SlotRead::Stable(meta) => meta,
                        SlotRead::Stuck => return self.settled(m, Probe::Stuck(idx)),
                    };
                    // A slot deleted or rewritten since its hint was read is just skipped.
                    if format::state_of(meta) == STATE_LIVE
                        && format::get_u32(slot, 8) == tag
                        && &slot[SLOT_HEADER..][..key.len()] == key
                    {
                        let intact = self.check_crc(slot, idx);
                        return match (self.settled(m, Probe::Found(()))?, intact) {
                            (Probe::Found(()), Err(e)) => Err(e),
                            (answer, _) => Ok(answer),
                        };
                    }
                }
                STATE_LIVE => {}
                _ => {
                    return match self.settled(m, Probe::<()>::Missing)? {
                        Probe::Retry => Ok(Probe::Retry),
                        _ => Err(self.corrupt(idx, "unknown hint state")),
                    };
                }
            }
            idx = (idx + 1) & table.mask();
        }
        self.settled(m, Probe::Missing)
    }

    /// `answer`, unless the table was rebuilt since this read began (then `Retry`).
    fn settled<R>(&self, m: &Mapped, answer: Probe<R>) -> Result<Probe<R>> {
        fence(Ordering::Acquire);
        let now = m.map.load_u64(OFF_GENERATION, Ordering::Relaxed)?;
        Ok(if now == m.table.generation {
            answer
        } else {
            Probe::Retry
        })
    }

    /// Reads the slot at byte offset `at` into `buf` as a seqlock reader: the meta word
    /// (acquire), the whole slot, an acquire fence, the meta word again. The whole slot is
    /// copied before anything is decided, so both of its cache lines are fetched at once. The
    /// caller checks the generation before trusting an answer (see [`Self::settled`]).
    pub(crate) fn read_slot(&self, m: &Mapped, at: usize, buf: &mut [u8]) -> Result<SlotRead> {
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        loop {
            let meta = m.map.load_u64(at, Ordering::Acquire)?;
            if is_writing(meta) {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    let start = *since.get_or_insert_with(Instant::now);
                    if start.elapsed() > STUCK_AFTER {
                        return Ok(SlotRead::Stuck);
                    }
                    std::thread::yield_now();
                }
                continue;
            }
            m.map.read_at(at, buf)?;
            fence(Ordering::Acquire);
            if m.map.load_u64(at, Ordering::Relaxed)? == meta {
                return Ok(SlotRead::Stable(meta));
            }
        }
    }

    pub(crate) fn check_crc(&self, slot: &[u8], idx: u64) -> Result<()> {
        let stored = format::get_u32(slot, 12);
        let tag = format::get_u32(slot, 8);
        let body = &slot[SLOT_HEADER..][..self.geo.key_size + self.geo.value_size];
        if format::slot_crc(tag, body) == stored {
            Ok(())
        } else {
            Err(self.corrupt(idx, "checksum mismatch"))
        }
    }

    pub(crate) fn corrupt(&self, slot: u64, reason: &'static str) -> Error {
        Error::CorruptSlot {
            path: self.path.clone(),
            slot,
            reason,
        }
    }

    /// A slot stayed mid-write: wait for the writer lock (a live writer finishes first; a dead
    /// one left its journal), replay the journal, and report the slot if it is still torn.
    fn settle(&self, idx: u64) -> Result<()> {
        if self.file_owner.load(Ordering::Relaxed) == thread_token() {
            // This thread is the writer (through this handle or another), so no write is in
            // progress: the slot is damaged.
            return Err(self.corrupt(idx, "left mid-write with no journal to finish it"));
        }
        if self.read_only {
            return self.read_locked(|| self.still_torn(&self.read_mapped(), idx));
        }
        let writer = self.lock_writes()?;
        let guard = self.read_mapped();
        let result = self.still_torn(&guard, idx);
        drop(guard);
        drop(writer);
        result
    }

    fn still_torn(&self, m: &Mapped, idx: u64) -> Result<()> {
        if idx < m.table.capacity {
            let meta = m
                .map
                .load_u64(m.table.slot_at(&self.geo, idx), Ordering::Acquire)?;
            if is_writing(meta) {
                return Err(self.corrupt(idx, "left mid-write with no journal to finish it"));
            }
        }
        Ok(())
    }

    /// Copies every live record out, each read consistently, as `key ‖ value` runs.
    pub(crate) fn snapshot(&self) -> Result<Vec<u8>> {
        let record = self.geo.key_size + self.geo.value_size;
        let mut slot = Buf::zeroed(self.geo.slot_size);
        'again: loop {
            let guard = self.caught_up()?;
            let table = guard.table;
            let count = guard
                .map
                .load_u64(OFF_COUNT, Ordering::Relaxed)?
                .min(table.capacity);
            let mut out = Vec::with_capacity(count as usize * record);
            for idx in 0..table.capacity {
                let at = table.slot_at(&self.geo, idx);
                // Empty and deleted slots are skipped on one load: a record that appears in one
                // concurrently is a write the walk may or may not see, either is right.
                let hint = guard.map.load_u32(table.hint_at(idx), Ordering::Acquire)?;
                if matches!(u64::from(hint & 3), STATE_EMPTY | STATE_TOMB) {
                    continue;
                }
                let problem = match self.read_slot(&guard, at, &mut slot)? {
                    SlotRead::Stable(meta) => match format::state_of(meta) {
                        STATE_LIVE => match self.check_crc(&slot, idx) {
                            Ok(()) => {
                                out.extend_from_slice(&slot[SLOT_HEADER..][..record]);
                                continue;
                            }
                            Err(e) => e,
                        },
                        STATE_EMPTY | STATE_TOMB => continue,
                        _ => self.corrupt(idx, "unknown slot state"),
                    },
                    SlotRead::Stuck => {
                        if let Probe::Retry = self.settled(&guard, Probe::<()>::Missing)? {
                            continue 'again;
                        }
                        drop(guard);
                        self.settle(idx)?;
                        continue 'again;
                    }
                };
                // Garbage read from a region a rebuild is reusing is not corruption: retry.
                return match self.settled(&guard, Probe::<()>::Missing)? {
                    Probe::Retry => continue 'again,
                    _ => Err(problem),
                };
            }
            if let Probe::Retry = self.settled(&guard, Probe::<()>::Missing)? {
                continue 'again;
            }
            return Ok(out);
        }
    }

    /// Every record as owned `(key, value)` pairs, each record read consistently (a snapshot
    /// per record, not of the whole table while others write).
    ///
    /// # Errors
    /// [`Error::CorruptSlot`] for a record that fails its checksum; mapping errors.
    pub fn iter(&self) -> Result<Iter> {
        Ok(Iter {
            bytes: self.snapshot()?,
            at: 0,
            key_size: self.geo.key_size,
            record: self.geo.key_size + self.geo.value_size,
        })
    }

    /// Calls `f` with every record's key and value (borrowed from one snapshot buffer, so no
    /// allocation per record).
    ///
    /// # Errors
    /// As [`Db::iter`].
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let bytes = self.snapshot()?;
        for (key, value) in self.records(&bytes) {
            f(key, value);
        }
        Ok(())
    }

    /// The `(key, value)` pairs of a [`Self::snapshot`].
    pub(crate) fn records<'a>(
        &self,
        bytes: &'a [u8],
    ) -> impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        let key_size = self.geo.key_size;
        bytes
            .chunks_exact(key_size + self.geo.value_size)
            .map(move |run| run.split_at(key_size))
    }

    /// The first record (in table order) for which `predicate(key, value)` holds.
    ///
    /// # Errors
    /// As [`Db::iter`].
    pub fn find(
        &self,
        mut predicate: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let bytes = self.snapshot()?;
        Ok(self
            .records(&bytes)
            .find(|(key, value)| predicate(key, value))
            .map(|(key, value)| (key.to_vec(), value.to_vec())))
    }

    /// The user area: [`USER_AREA_SIZE`] bytes in the header, free for the application.
    ///
    /// # Errors
    /// Mapping errors.
    pub fn user_area(&self) -> Result<Vec<u8>> {
        let guard = self.read_mapped();
        let mut out = vec![0u8; USER_AREA_SIZE];
        loop {
            let version = guard.map.load_u64(OFF_USER_VERSION, Ordering::Acquire)?;
            guard
                .map
                .read_at(OFF_USER_AREA[(version & 1) as usize], &mut out)?;
            fence(Ordering::Acquire);
            if guard.map.load_u64(OFF_USER_VERSION, Ordering::Relaxed)? == version {
                return Ok(out);
            }
        }
    }

    /// Records, tombstones and checks: every hint matches its slot, every empty slot is all
    /// zeros, every live slot has a valid checksum and is reachable from its home slot, no key
    /// is stored twice, and the header counts match. Holds the writer lock (a read-only
    /// handle: the file lock, shared) so that the table is still; writers wait until it
    /// returns.
    ///
    /// # Errors
    /// [`Error::CorruptSlot`] or [`Error::CorruptHeader`] describing the first problem found;
    /// [`Error::NeedsRecovery`] on a read-only handle when a writer died mid-operation.
    pub fn verify(&self) -> Result<Stats> {
        if !self.read_only {
            let writer = self.lock_writes()?;
            let stats = self.current(|m| self.verify_table(m));
            drop(writer);
            return stats;
        }
        self.read_locked(|| self.current(|m| self.verify_table(m)))
    }

    /// For a read-only handle: runs `f` holding the file lock shared, so that no writer is
    /// inside an operation; a journal still armed then means one died mid-operation.
    fn read_locked<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        if self.file_owner.load(Ordering::Relaxed) == thread_token() {
            return Err(Error::WouldDeadlock {
                path: self.path.clone(),
            });
        }
        // A file lock belongs to the open file, not the thread: without the mutex, the first of
        // two threads here to unlock would release the lock under the other.
        let _threads = self.lock_writer();
        self.locker.lock(Lock::Shared)?;
        let result = (|| {
            let journal = self
                .read_mapped()
                .map
                .load_u64(OFF_JOURNAL_STATE, Ordering::Acquire)?;
            if journal != 0 {
                return Err(Error::NeedsRecovery {
                    path: self.path.clone(),
                });
            }
            f()
        })();
        let unlocked = self.locker.unlock();
        let value = result?;
        unlocked?;
        Ok(value)
    }

    fn verify_table(&self, m: &Mapped) -> Result<Stats> {
        let table = m.table;
        let mut slot = Buf::zeroed(self.geo.slot_size);
        let mut stats = Stats {
            capacity: table.capacity,
            ..Stats::default()
        };
        let mut seen = std::collections::HashSet::new();
        for idx in 0..table.capacity {
            let at = table.slot_at(&self.geo, idx);
            m.map.read_at(at, &mut slot)?;
            let meta = format::get_u64(&slot, 0);
            if is_writing(meta) {
                return Err(self.corrupt(idx, "left mid-write"));
            }
            let hint = m.map.load_u32(table.hint_at(idx), Ordering::Relaxed)?;
            let expect = match format::state_of(meta) {
                STATE_EMPTY => 0,
                state => format::hint(state, format::get_u32(&slot, 8)),
            };
            if hint != expect {
                return Err(self.corrupt(idx, "hint does not match the slot"));
            }
            match format::state_of(meta) {
                // Slots become empty only in a zeroed table: anything else there is a record
                // or tombstone whose state was damaged.
                STATE_EMPTY if slot.iter().any(|&b| b != 0) => {
                    return Err(self.corrupt(idx, "empty slot is not zeroed"));
                }
                STATE_EMPTY => stats.empty += 1,
                STATE_TOMB => stats.tombstones += 1,
                STATE_LIVE => {
                    self.check_crc(&slot, idx)?;
                    let key = &slot[SLOT_HEADER..][..self.geo.key_size];
                    let hash = format::hash_key(key);
                    if format::tag_of(hash) != format::get_u32(&slot, 8) {
                        return Err(self.corrupt(idx, "tag does not match the key"));
                    }
                    if !seen.insert(key.to_vec()) {
                        return Err(self.corrupt(idx, "key stored twice"));
                    }
                    // Reachable: no empty slot between the home slot and this one.
                    let mut probe = hash & table.mask();
                    while probe != idx {
                        let meta = m
                            .map
                            .load_u64(table.slot_at(&self.geo, probe), Ordering::Relaxed)?;
                        if format::state_of(meta) == STATE_EMPTY {
                            return Err(self.corrupt(idx, "unreachable from its home slot"));
                        }
                        probe = (probe + 1) & table.mask();
                    }
                    stats.live += 1;
                }
                _ => return Err(self.corrupt(idx, "unknown slot state")),
            }
        }
        let count = m.map.load_u64(OFF_COUNT, Ordering::Acquire)?;
        let used = m.map.load_u64(OFF_USED, Ordering::Acquire)?;
        if count != stats.live {
            return Err(self.header_error("count", count));
        }
        if used < stats.live + stats.tombstones {
            return Err(self.header_error("used", used));
        }
        Ok(stats)
    }

    pub(crate) fn header_error(&self, field: &'static str, value: u64) -> Error {
        Error::CorruptHeader {
            path: self.path.clone(),
            field,
            value,
        }
    }
}

/// What [`Db::verify`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Slots in the table.
    pub capacity: u64,
    /// Live records.
    pub live: u64,
    /// Deleted slots not yet reclaimed by a rebuild.
    pub tombstones: u64,
    /// Never-used slots.
    pub empty: u64,
}

/// Owned `(key, value)` pairs from [`Db::iter`].
#[derive(Debug)]
pub struct Iter {
    bytes: Vec<u8>,
    at: usize,
    key_size: usize,
    record: usize,
}

impl Iterator for Iter {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        let run = self.bytes.get(self.at..self.at.checked_add(self.record)?)?;
        self.at += self.record;
        let (key, value) = run.split_at(self.key_size);
        Some((key.to_vec(), value.to_vec()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.bytes.len() - self.at) / self.record.max(1);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter {}

/// Reads and checks the active table descriptor. Retries while a rebuild races the read, so a
/// reader never mistakes a descriptor being rewritten for corruption.
pub(crate) fn read_table(map: &SharedMap, geo: &Geometry, path: &Path) -> Result<Table> {
    let corrupt = |field, value| Error::CorruptHeader {
        path: path.to_path_buf(),
        field,
        value,
    };
    loop {
        let generation = map.load_u64(OFF_GENERATION, Ordering::Acquire)?;
        let desc = OFF_DESC[(generation & 1) as usize];
        let offset = map.load_u64(desc, Ordering::Relaxed)?;
        let capacity = map.load_u64(desc + 8, Ordering::Relaxed)?;
        let crc = map.load_u64(desc + 16, Ordering::Relaxed)?;
        fence(Ordering::Acquire);
        if map.load_u64(OFF_GENERATION, Ordering::Relaxed)? != generation {
            continue;
        }
        if crc != format::descriptor_crc(offset, capacity, generation) {
            return Err(corrupt("descriptor_crc", crc));
        }
        if !capacity.is_power_of_two()
            || !(format::MIN_CAPACITY..=format::MAX_CAPACITY).contains(&capacity)
        {
            return Err(corrupt("capacity", capacity));
        }
        if offset < geo.header_size || offset % format::PAGE != 0 {
            return Err(corrupt("table_offset", offset));
        }
        let end = geo
            .table_bytes(capacity)
            .and_then(|bytes| offset.checked_add(bytes));
        let len = map.len() as u64;
        match end {
            Some(end) if end <= len => {}
            _ => {
                return Err(Error::Truncated {
                    path: path.to_path_buf(),
                    len,
                    needed: end.unwrap_or(u64::MAX),
                });
            }
        }
        let offset = usize::try_from(offset).map_err(|_| corrupt("table_offset", offset))?;
        return Ok(Table::new(generation, offset, capacity));
    }
}
