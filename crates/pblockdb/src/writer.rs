//! The write path: the writer lock, the redo journal, table rebuilds and recovery.

use std::sync::MutexGuard;
use std::sync::atomic::{Ordering, fence};

use pmap::{Lock, SharedMap};

use crate::buf::Buf;
use crate::db::{Mapped, Table, is_writing, thread_token};
use crate::format::{
    self, Geometry, JOURNAL_ARMED, JOURNAL_BODY_LEN, OFF_CHANGES, OFF_COUNT, OFF_DESC,
    OFF_GENERATION, OFF_JOURNAL_BODY, OFF_JOURNAL_CRC, OFF_JOURNAL_IMAGE, OFF_JOURNAL_STATE,
    OFF_USED, OFF_USER_AREA, OFF_USER_VERSION, SLOT_HEADER, STATE_EMPTY, STATE_LIVE, STATE_TOMB,
    USER_AREA_SIZE,
};
use crate::{Db, Error, Result};

/// What [`Db::update_each`] does with the record it just showed the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the record as it was (changes to the value buffer are dropped).
    Keep,
    /// Store the value buffer as the record's new value.
    Update,
    /// Delete the record.
    Delete,
}

/// The writer lock held across several writes: the in-process mutex and the exclusive file
/// lock are taken once, so each write costs no system call. Other writers (threads and
/// processes) wait until it is dropped; readers never do.
///
/// ```
/// # fn main() -> Result<(), pblockdb::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("batch.db");
/// let db = pblockdb::DbOptions::new(8, 8).open(&path)?;
/// let mut batch = db.lock_writes()?;
/// for i in 0u64..100 {
///     batch.put(&i.to_le_bytes(), &(i * i).to_le_bytes())?;
/// }
/// drop(batch);
/// assert_eq!(db.len(), 100);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Writer<'a> {
    db: &'a Db,
    _mutex: MutexGuard<'a, ()>,
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        // An unlock that fails leaves the lock to be released when the file closes; nothing
        // better can be done from a destructor.
        self.db.owner.store(0, Ordering::Relaxed);
        // Only if still this thread's (a Writer is not Send, so this is the thread that took
        // it): a store that raced a later owner's must not clear theirs.
        let token = thread_token();
        let _ = self
            .db
            .file_owner
            .compare_exchange(token, 0, Ordering::Relaxed, Ordering::Relaxed);
        let _ = self.db.locker.unlock();
    }
}

/// Where a key's probe sequence ends, for a writer.
enum Find {
    Existing(u64, u64),
    Vacant(u64, u64),
    Full,
}

impl Db {
    /// Takes the writer lock (in-process mutex, then the exclusive file lock) and holds it until
    /// the returned [`Writer`] is dropped. Catches up with growth by other processes and
    /// replays a journal a crashed writer left.
    ///
    /// A write through the same `Db` from the thread that holds it (other than through the
    /// `Writer` itself) is [`Error::Reentrant`] rather than a deadlock; one through another
    /// handle on the same file is [`Error::WouldDeadlock`].
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::Reentrant`], [`Error::WouldDeadlock`], or the I/O error
    /// from locking.
    pub fn lock_writes(&self) -> Result<Writer<'_>> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
                op: "write",
            });
        }
        let token = thread_token();
        if self.owner.load(Ordering::Relaxed) == token {
            return Err(Error::Reentrant {
                path: self.path.clone(),
            });
        }
        // Checked before the mutex: another thread may hold it while it waits for the file
        // lock that this thread holds through another handle.
        if self.file_owner.load(Ordering::Relaxed) == token {
            return Err(Error::WouldDeadlock {
                path: self.path.clone(),
            });
        }
        let mutex = self.lock_writer();
        self.locker.lock(Lock::Exclusive)?;
        self.owner.store(token, Ordering::Relaxed);
        self.file_owner.store(token, Ordering::Relaxed);
        let writer = Writer {
            db: self,
            _mutex: mutex,
        };
        self.refresh()?;
        {
            let guard = self.read_mapped();
            if guard.map.load_u64(OFF_JOURNAL_STATE, Ordering::Acquire)? != 0 {
                recover(&guard.map, &self.geo, &guard.table)?;
            }
        }
        Ok(writer)
    }

    /// Inserts or replaces the record under `key`; returns whether it replaced one. Shorter
    /// keys and values are padded with zeros.
    ///
    /// # Errors
    /// [`Error::KeySize`], [`Error::ValueSize`], [`Error::ReadOnly`], [`Error::Full`] when
    /// the table must grow and the file cannot, [`Error::CorruptSlot`] on a damaged probe path.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        self.lock_writes()?.put(key, value)
    }

    /// Deletes the record under `key`; returns whether there was one.
    ///
    /// # Errors
    /// [`Error::KeySize`], [`Error::ReadOnly`], [`Error::CorruptSlot`].
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.lock_writes()?.delete(key)
    }

    /// Shows every record to `f` under the writer lock, with a copy of its value that `f` may
    /// change; `f` says whether to keep, update or delete the record. Returns how many records
    /// were updated or deleted. A write to this `Db` from inside `f` is [`Error::Reentrant`].
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::CorruptSlot`].
    pub fn update_each(&self, f: impl FnMut(&[u8], &mut [u8]) -> Action) -> Result<u64> {
        self.lock_writes()?.update_each(f)
    }

    /// Replaces the user area with `data` followed by zeros.
    ///
    /// # Errors
    /// [`Error::UserAreaSize`] when `data` exceeds [`format::USER_AREA_SIZE`] bytes,
    /// [`Error::ReadOnly`].
    pub fn set_user_area(&self, data: &[u8]) -> Result<()> {
        self.lock_writes()?.set_user_area(data)
    }
}

impl Writer<'_> {
    /// As [`Db::put`], under the lock already held.
    ///
    /// # Errors
    /// As [`Db::put`].
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool> {
        let db = self.db;
        let geo = &db.geo;
        if value.len() > geo.value_size {
            return Err(Error::ValueSize {
                given: value.len(),
                expected: geo.value_size,
            });
        }
        let key = db.pad_key(key)?;
        let hash = format::hash_key(&key);
        let tag = format::tag_of(hash);
        let mut image = Buf::zeroed(geo.slot_size);
        image[SLOT_HEADER..][..geo.key_size].copy_from_slice(&key);
        image[geo.value_at()..][..value.len()].copy_from_slice(value);
        let crc = format::slot_crc(tag, &image[SLOT_HEADER..][..geo.key_size + geo.value_size]);
        image[8..12].copy_from_slice(&tag.to_le_bytes());
        image[12..16].copy_from_slice(&crc.to_le_bytes());
        loop {
            let guard = db.read_mapped();
            let (count, used, changes) = counters(&guard.map)?;
            match self.find(&guard, &key, hash)? {
                Find::Existing(idx, meta) => {
                    set_meta(&mut image, next_meta(meta, STATE_LIVE));
                    self.apply(&guard, idx, &image, [count, used, changes.wrapping_add(1)])?;
                    return Ok(true);
                }
                Find::Vacant(idx, meta) => {
                    let fresh = format::state_of(meta) == STATE_EMPTY;
                    let limit = guard.table.capacity / 4 * 3;
                    if !fresh || used.saturating_add(1) <= limit {
                        set_meta(&mut image, next_meta(meta, STATE_LIVE));
                        let counts = [
                            count.saturating_add(1),
                            used.saturating_add(u64::from(fresh)),
                            changes.wrapping_add(1),
                        ];
                        self.apply(&guard, idx, &image, counts)?;
                        return Ok(false);
                    }
                }
                Find::Full => {}
            }
            drop(guard);
            self.rebuild()?;
        }
    }

    /// As [`Db::delete`], under the lock already held.
    ///
    /// # Errors
    /// As [`Db::delete`].
    pub fn delete(&mut self, key: &[u8]) -> Result<bool> {
        let db = self.db;
        let key = db.pad_key(key)?;
        let hash = format::hash_key(&key);
        let guard = db.read_mapped();
        let Find::Existing(idx, meta) = self.find(&guard, &key, hash)? else {
            return Ok(false);
        };
        let mut image = Buf::zeroed(db.geo.slot_size);
        guard
            .map
            .read_at(guard.table.slot_at(&db.geo, idx), &mut image)?;
        set_meta(&mut image, next_meta(meta, STATE_TOMB));
        let (count, used, changes) = counters(&guard.map)?;
        self.apply(
            &guard,
            idx,
            &image,
            [count.saturating_sub(1), used, changes.wrapping_add(1)],
        )?;
        Ok(true)
    }

    /// As [`Db::get`] (reads need no lock; this is for convenience inside a batch).
    ///
    /// # Errors
    /// As [`Db::get`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key)
    }

    /// As [`Db::update_each`], under the lock already held.
    ///
    /// # Errors
    /// As [`Db::update_each`].
    pub fn update_each(&mut self, mut f: impl FnMut(&[u8], &mut [u8]) -> Action) -> Result<u64> {
        let db = self.db;
        let geo = &db.geo;
        let mut slot = Buf::zeroed(geo.slot_size);
        let mut value = vec![0u8; geo.value_size];
        let mut changed = 0;
        let capacity = db.read_mapped().table.capacity;
        for idx in 0..capacity {
            {
                // The table cannot change while the writer lock is held, so `idx` stays valid
                // across the callback, which runs with no map guard held.
                let guard = db.read_mapped();
                guard
                    .map
                    .read_at(guard.table.slot_at(geo, idx), &mut slot)?;
            }
            let meta = format::get_u64(&slot, 0);
            if is_writing(meta) {
                return Err(db.corrupt(idx, "left mid-write with no journal to finish it"));
            }
            if format::state_of(meta) != STATE_LIVE {
                continue;
            }
            db.check_crc(&slot, idx)?;
            let stored = &slot[geo.value_at()..][..geo.value_size];
            value.copy_from_slice(stored);
            let action = f(&slot[SLOT_HEADER..][..geo.key_size], &mut value);
            let guard = db.read_mapped();
            let (count, used, changes) = counters(&guard.map)?;
            match action {
                Action::Keep => continue,
                Action::Update if value == stored => continue,
                Action::Update => {
                    slot[geo.value_at()..][..geo.value_size].copy_from_slice(&value);
                    let tag = format::get_u32(&slot, 8);
                    let crc = format::slot_crc(
                        tag,
                        &slot[SLOT_HEADER..][..geo.key_size + geo.value_size],
                    );
                    slot[12..16].copy_from_slice(&crc.to_le_bytes());
                    set_meta(&mut slot, next_meta(meta, STATE_LIVE));
                    self.apply(&guard, idx, &slot, [count, used, changes.wrapping_add(1)])?;
                }
                Action::Delete => {
                    set_meta(&mut slot, next_meta(meta, STATE_TOMB));
                    let counts = [count.saturating_sub(1), used, changes.wrapping_add(1)];
                    self.apply(&guard, idx, &slot, counts)?;
                }
            }
            changed += 1;
        }
        Ok(changed)
    }

    /// As [`Db::set_user_area`], under the lock already held.
    ///
    /// # Errors
    /// As [`Db::set_user_area`].
    pub fn set_user_area(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > USER_AREA_SIZE {
            return Err(Error::UserAreaSize {
                given: data.len(),
                max: USER_AREA_SIZE,
            });
        }
        let guard = self.db.read_mapped();
        let map = &guard.map;
        let version = map
            .load_u64(OFF_USER_VERSION, Ordering::Acquire)?
            .wrapping_add(1);
        map.write_at(
            OFF_USER_AREA[(version & 1) as usize],
            &Buf::padded(data, USER_AREA_SIZE),
        )?;
        map.atomic_u64(OFF_USER_VERSION)?
            .store(version, Ordering::Release);
        map.atomic_u64(OFF_CHANGES)?.fetch_add(1, Ordering::Release);
        if self.db.sync_on_write {
            map.flush_range(0, format::PAGE as usize)?;
        }
        Ok(())
    }

    /// Walks `key`'s probe path. A live hint with another key's tag is skipped unread, as
    /// readers do; every other slot is judged by its meta word, the truth, not by its hint: a
    /// slot is taken only when its meta says empty or deleted, so a damaged hint can never let
    /// a write overwrite a live record. A hint found disagreeing with its slot is rewritten
    /// from it, so readers (who trust hints) find the slots this write passes and the one it
    /// fills. A slot in an unknown state is passed over, never taken.
    fn find(&self, m: &Mapped, key: &[u8], hash: u64) -> Result<Find> {
        let db = self.db;
        let table = m.table;
        let tag = format::tag_of(hash);
        let mut stored = Buf::zeroed(key.len());
        let mut idx = hash & table.mask();
        let mut first_tomb = None;
        for _ in 0..table.capacity {
            let hint = m.map.load_u32(table.hint_at(idx), Ordering::Relaxed)?;
            match u64::from(hint & 3) {
                STATE_LIVE if !format::hint_matches(hint, tag) => {}
                STATE_EMPTY | STATE_TOMB | STATE_LIVE => {
                    let meta = self.slot_meta(m, idx)?;
                    let at = table.slot_at(&db.geo, idx);
                    let slot_tag = m.map.load_u32(at + 8, Ordering::Relaxed)?;
                    let state = format::state_of(meta);
                    match state {
                        STATE_EMPTY => return Ok(Find::Vacant(idx, meta)),
                        STATE_TOMB => {
                            first_tomb.get_or_insert(idx);
                        }
                        STATE_LIVE if slot_tag == tag => {
                            m.map.read_at(at + SLOT_HEADER, &mut stored)?;
                            if *stored == *key {
                                self.repair_hint(m, idx, format::hint(state, slot_tag), hint)?;
                                return Ok(Find::Existing(idx, meta));
                            }
                        }
                        STATE_LIVE => {}
                        _ => {
                            idx = (idx + 1) & table.mask();
                            continue;
                        }
                    }
                    self.repair_hint(m, idx, format::hint(state, slot_tag), hint)?;
                }
                _ => return Err(db.corrupt(idx, "unknown hint state")),
            }
            idx = (idx + 1) & table.mask();
        }
        Ok(match first_tomb {
            Some(idx) => Find::Vacant(idx, self.slot_meta(m, idx)?),
            None => Find::Full,
        })
    }

    /// Stores `expected` as slot `idx`'s hint if it holds `found` instead (the slot is stable:
    /// the writer lock is held and its version is even).
    fn repair_hint(&self, m: &Mapped, idx: u64, expected: u32, found: u32) -> Result<()> {
        if expected != found {
            let at = m.table.hint_at(idx);
            m.map.atomic_u32(at)?.store(expected, Ordering::Release);
            if self.db.sync_on_write {
                m.map.flush_range(at, 4)?;
            }
        }
        Ok(())
    }

    /// A slot's meta word; one left mid-write (with the journal already replayed) is damage.
    fn slot_meta(&self, m: &Mapped, idx: u64) -> Result<u64> {
        let meta = m
            .map
            .load_u64(m.table.slot_at(&self.db.geo, idx), Ordering::Relaxed)?;
        if is_writing(meta) {
            return Err(self
                .db
                .corrupt(idx, "left mid-write with no journal to finish it"));
        }
        Ok(meta)
    }

    /// Journals, then applies, one slot write and the header counters that go with it.
    fn apply(&self, m: &Mapped, idx: u64, image: &[u8], counts: [u64; 3]) -> Result<()> {
        let db = self.db;
        let map = &m.map;
        let mut body = [0u8; JOURNAL_BODY_LEN];
        for (at, word) in [idx, m.table.generation, counts[0], counts[1], counts[2]]
            .iter()
            .enumerate()
        {
            body[at * 8..][..8].copy_from_slice(&word.to_le_bytes());
        }
        map.write_at(OFF_JOURNAL_BODY, &body)?;
        map.write_at(OFF_JOURNAL_IMAGE, image)?;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&body), image);
        map.write(OFF_JOURNAL_CRC, &u64::from(crc))?;
        let state = map.atomic_u64(OFF_JOURNAL_STATE)?;
        state.store(JOURNAL_ARMED, Ordering::Release);
        if db.sync_on_write {
            map.flush_range(0, db.geo.header_size as usize)?;
        }
        write_slot(map, &m.table, &db.geo, idx, image)?;
        store_counters(map, counts)?;
        if db.sync_on_write {
            // The slot and its hint reach the disk before the journal may be cleared there.
            // Clearing it needs no flush: a journal still armed on disk after a power loss is
            // this very operation, and replaying it is idempotent.
            map.flush_range(m.table.slot_at(&db.geo, idx), db.geo.slot_size)?;
            map.flush_range(m.table.hint_at(idx), 4)?;
        }
        state.store(0, Ordering::Release);
        Ok(())
    }

    /// Builds a new table (doubling while more than half would be full) in a fresh region and
    /// switches to it with one store of the generation. See `docs/pblockdb-format.md`.
    ///
    /// Only the remap (growing the file) excludes this handle's readers; the build itself runs
    /// beside them, as they keep reading the old table until the switch.
    fn rebuild(&self) -> Result<()> {
        let db = self.db;
        let geo = &db.geo;
        // The writer lock is held: nothing else changes the table or the file's length.
        // Every slot is classified before anything is written. A slot whose state bits say
        // live is carried over whatever its version's parity (a journal, if any, was replayed
        // when the lock was taken, so an odd version is damage, not a write in progress) and
        // whatever its checksum (a bad one stays reported). Tombstones, and empty slots left
        // mid-write, are dropped. A slot this cannot classify stops the rebuild, the table
        // untouched: state 3, or an empty slot holding bytes (slots become empty only in a
        // zeroed table), either of which may be a record with a damaged state.
        let (old, live) = {
            let guard = db.read_mapped();
            let old = guard.table;
            let mut live = 0u64;
            let mut rest = Buf::zeroed(geo.slot_size - 8);
            for idx in 0..old.capacity {
                let at = old.slot_at(geo, idx);
                let meta = guard.map.load_u64(at, Ordering::Relaxed)?;
                match format::state_of(meta) {
                    STATE_LIVE => live += 1,
                    STATE_TOMB => {}
                    STATE_EMPTY if is_writing(meta) => {}
                    STATE_EMPTY => {
                        guard.map.read_at(at + 8, &mut rest)?;
                        if rest.iter().any(|&b| b != 0) {
                            return Err(db.corrupt(idx, "empty slot holds a record"));
                        }
                    }
                    _ => return Err(db.corrupt(idx, "unknown slot state")),
                }
            }
            (old, live)
        };
        let mut capacity = old.capacity;
        while live.saturating_add(1).saturating_mul(2) > capacity {
            capacity = capacity.saturating_mul(2);
        }
        let full = |source: Error| Error::Full {
            path: db.path.clone(),
            capacity: old.capacity,
            source: Box::new(source),
        };
        let too_big = || Error::InvalidGeometry {
            what: "capacity",
            value: capacity,
            min: format::MIN_CAPACITY,
            max: format::MAX_CAPACITY,
        };
        if capacity > format::MAX_CAPACITY {
            return Err(full(too_big()));
        }
        let bytes = geo.table_bytes(capacity).ok_or_else(|| full(too_big()))?;
        // The old region (hints and slots) lies in the map, so this cannot overflow.
        let old_end =
            (old.offset as u64).saturating_add(geo.table_bytes(old.capacity).unwrap_or(u64::MAX));
        let offset = match geo.header_size.checked_add(bytes) {
            Some(end) if end <= old.offset as u64 => geo.header_size,
            _ => format::round_up(old_end, format::PAGE).ok_or_else(|| full(too_big()))?,
        };
        let end = offset.checked_add(bytes).ok_or_else(|| full(too_big()))?;
        let end = usize::try_from(end).map_err(|_| full(too_big()))?;
        let offset = offset as usize; // < end, which fits.

        let old_len = {
            let mut guard = db.write_mapped();
            // Bytes past this handle's view are not fresh zeros when another process died in
            // a rebuild after extending the file: see the whole file so that they are zeroed.
            guard.map.refresh()?;
            let old_len = guard.map.len();
            if end > old_len {
                guard.map.grow(end).map_err(|e| full(e.into()))?;
            }
            old_len
        };

        let guard = db.read_mapped();
        let map = &guard.map;
        // Order the earlier generation switch before every store into a reused region, so a
        // reader that sees one of them also sees the generation move on and retries.
        fence(Ordering::SeqCst);
        let zeros = vec![0u8; 1 << 16];
        let mut at = offset;
        while at < end.min(old_len) {
            let n = zeros.len().min(end.min(old_len) - at);
            map.write_at(at, &zeros[..n])?;
            at += n;
        }

        let new = Table::new(old.generation.wrapping_add(1), offset, capacity);
        let mut slot = Buf::zeroed(geo.slot_size);
        for idx in 0..old.capacity {
            map.read_at(old.slot_at(geo, idx), &mut slot)?;
            let meta = format::get_u64(&slot, 0);
            if format::state_of(meta) != STATE_LIVE {
                continue;
            }
            if is_writing(meta) {
                let even = format::version_of(meta).wrapping_add(1);
                set_meta(&mut slot, format::meta(even, STATE_LIVE));
            }
            let hash = format::hash_key(&slot[SLOT_HEADER..][..geo.key_size]);
            let mut probe = hash & new.mask();
            // `live < capacity / 2`, so an empty slot exists and this ends.
            while map.load_u32(new.hint_at(probe), Ordering::Relaxed)? != 0 {
                probe = (probe + 1) & new.mask();
            }
            map.write_at(new.slot_at(geo, probe), &slot)?;
            let hint = format::hint(STATE_LIVE, format::get_u32(&slot, 8));
            map.write(new.hint_at(probe), &hint)?;
        }

        let desc = OFF_DESC[(new.generation & 1) as usize];
        map.write(desc, &(offset as u64))?;
        map.write(desc + 8, &capacity)?;
        map.write(
            desc + 16,
            &format::descriptor_crc(offset as u64, capacity, new.generation),
        )?;
        if db.sync_on_write {
            map.flush()?;
        }
        map.atomic_u64(OFF_GENERATION)?
            .store(new.generation, Ordering::Release);
        fence(Ordering::SeqCst);
        map.atomic_u64(OFF_COUNT)?.store(live, Ordering::Release);
        map.atomic_u64(OFF_USED)?.store(live, Ordering::Release);
        if db.sync_on_write {
            map.flush_range(0, format::PAGE as usize)?;
        }
        drop(guard);
        // Readers that saw the switch already moved this handle on; if none did, do it now.
        db.refresh()
    }
}

fn counters(map: &SharedMap) -> Result<(u64, u64, u64)> {
    Ok((
        map.load_u64(OFF_COUNT, Ordering::Relaxed)?,
        map.load_u64(OFF_USED, Ordering::Relaxed)?,
        map.load_u64(OFF_CHANGES, Ordering::Relaxed)?,
    ))
}

fn store_counters(map: &SharedMap, counts: [u64; 3]) -> Result<()> {
    map.atomic_u64(OFF_COUNT)?
        .store(counts[0], Ordering::Release);
    map.atomic_u64(OFF_USED)?
        .store(counts[1], Ordering::Release);
    map.atomic_u64(OFF_CHANGES)?
        .store(counts[2], Ordering::Release);
    Ok(())
}

fn next_meta(meta: u64, state: u64) -> u64 {
    format::meta(format::version_of(meta).wrapping_add(2) & !1, state)
}

fn set_meta(image: &mut [u8], meta: u64) {
    image[..8].copy_from_slice(&meta.to_le_bytes());
}

/// Seqlock write of a whole slot: an odd version first, then the bytes, then the image's
/// (even) meta word with release ordering; then the slot's hint.
fn write_slot(
    map: &SharedMap,
    table: &Table,
    geo: &Geometry,
    idx: u64,
    image: &[u8],
) -> Result<()> {
    let at = table.slot_at(geo, idx);
    let new_meta = format::get_u64(image, 0);
    let word = map.atomic_u64(at)?;
    let old = word.load(Ordering::Relaxed);
    let writing = format::meta(
        format::version_of(new_meta).wrapping_sub(1),
        format::state_of(old),
    );
    word.store(writing, Ordering::Relaxed);
    fence(Ordering::Release);
    map.write_at(at + 8, &image[8..])?;
    word.store(new_meta, Ordering::Release);
    let hint = format::hint(format::state_of(new_meta), format::get_u32(image, 8));
    map.atomic_u32(table.hint_at(idx))?
        .store(hint, Ordering::Release);
    Ok(())
}

/// Whether a journal's `image` (live or tombstone, even version) belongs in slot `idx`, as
/// every image a writer journals does; a crc only proves the journal was written whole, not
/// that it was written by a writer. Checked: the image's tag is its key's, and a live image's
/// checksum holds; slot `idx` is in a known state and, if it holds a live record (even
/// mid-write: a writer rewrites a live slot only for its own key, so the key bytes stay),
/// holds this key; `idx` lies on the key's probe path before any empty slot (a writer's slot
/// always does: it stops at the first); and a live image's key is live in no other slot of
/// that path. The walk ends at the first empty slot, so its work is bounded by the run of
/// non-empty slots, which the file must really hold.
fn image_fits(
    map: &SharedMap,
    geo: &Geometry,
    table: &Table,
    idx: u64,
    image: &[u8],
) -> Result<bool> {
    let key = &image[SLOT_HEADER..][..geo.key_size];
    let hash = format::hash_key(key);
    let tag = format::get_u32(image, 8);
    let live = format::state_of(format::get_u64(image, 0)) == STATE_LIVE;
    let body = &image[SLOT_HEADER..][..geo.key_size + geo.value_size];
    if tag != format::tag_of(hash)
        || (live && format::get_u32(image, 12) != format::slot_crc(tag, body))
    {
        return Ok(false);
    }
    let mut stored = Buf::zeroed(geo.key_size);
    let same_key = |at: usize, stored: &mut [u8]| -> Result<bool> {
        map.read_at(at + SLOT_HEADER, stored)?;
        Ok(*stored == *key)
    };
    let at = table.slot_at(geo, idx);
    match format::state_of(map.load_u64(at, Ordering::Relaxed)?) {
        STATE_LIVE if !same_key(at, &mut stored)? => return Ok(false),
        STATE_EMPTY | STATE_TOMB | STATE_LIVE => {}
        _ => return Ok(false),
    }
    let mut probe = hash & table.mask();
    let mut reached = false;
    for _ in 0..table.capacity {
        examined(1);
        if probe == idx {
            reached = true;
            if !live {
                return Ok(true);
            }
        } else {
            let at = table.slot_at(geo, probe);
            let meta = map.load_u64(at, Ordering::Relaxed)?;
            match format::state_of(meta) {
                STATE_EMPTY => return Ok(reached),
                STATE_LIVE
                    if map.load_u32(at + 8, Ordering::Relaxed)? == tag
                        && same_key(at, &mut stored)? =>
                {
                    return Ok(false);
                }
                _ => {}
            }
        }
        probe = (probe + 1) & table.mask();
    }
    Ok(reached)
}

thread_local!(static EXAMINED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });

/// Notes that the calling thread read `n` slots' words while opening or recovering a file.
pub(crate) fn examined(n: u64) {
    EXAMINED.with(|count| count.set(count.get().wrapping_add(n)));
}

/// How many slots the calling thread has examined while opening or recovering files (the
/// recount of the header counters and the journal's replay checks), so tests can show that
/// opening does bounded work on any file. Not part of the API.
#[doc(hidden)]
pub fn slots_examined() -> u64 {
    EXAMINED.with(std::cell::Cell::get)
}

/// The largest table (in slots, and in bytes of its region) whose header counters
/// [`recover`] recounts by a scan when they are out of range. Past it the recount is left to
/// the next rebuild, which scans the table anyway, so opening a file does bounded work
/// whatever table its header claims (a few KB of sparse file can claim 2^32 slots).
const RECOUNT_MAX_SLOTS: u64 = 1 << 20;
const RECOUNT_MAX_BYTES: u64 = 256 << 20;

/// Under the writer lock: replays a complete journal (or drops an incomplete one), then
/// recounts if the header counters are out of range (see [`RECOUNT_MAX_SLOTS`]).
pub(crate) fn recover(map: &SharedMap, geo: &Geometry, table: &Table) -> Result<()> {
    let state = map.load_u64(OFF_JOURNAL_STATE, Ordering::Acquire)?;
    if state != 0 {
        if state == JOURNAL_ARMED {
            let mut body = [0u8; JOURNAL_BODY_LEN];
            map.read_at(OFF_JOURNAL_BODY, &mut body)?;
            let mut image = Buf::zeroed(geo.slot_size);
            map.read_at(OFF_JOURNAL_IMAGE, &mut image)?;
            let crc = map.load_u64(OFF_JOURNAL_CRC, Ordering::Relaxed)?;
            let valid = crc == u64::from(crc32c::crc32c_append(crc32c::crc32c(&body), &image));
            let idx = format::get_u64(&body, 0);
            let generation = format::get_u64(&body, 8);
            let meta = format::get_u64(&image, 0);
            let state_ok = matches!(format::state_of(meta), STATE_LIVE | STATE_TOMB);
            if valid
                && generation == table.generation
                && idx < table.capacity
                && state_ok
                && !is_writing(meta)
                && image_fits(map, geo, table, idx, &image)?
            {
                write_slot(map, table, geo, idx, &image)?;
                let word = |i: usize| format::get_u64(&body, 16 + 8 * i);
                store_counters(map, [word(0), word(1), word(2)])?;
            }
        }
        map.atomic_u64(OFF_JOURNAL_STATE)?
            .store(0, Ordering::Release);
    }
    let (count, used, changes) = counters(map)?;
    if count > used || used > table.capacity {
        let affordable = table.capacity <= RECOUNT_MAX_SLOTS
            && geo
                .table_bytes(table.capacity)
                .is_some_and(|bytes| bytes <= RECOUNT_MAX_BYTES);
        if !affordable {
            // `used = capacity` makes the next insert into an empty slot rebuild the table, and
            // the rebuild counts both exactly; until then `count` is only clamped.
            let counts = [count.min(table.capacity), table.capacity, changes];
            return store_counters(map, counts);
        }
        let (mut live, mut dead) = (0u64, 0u64);
        for idx in 0..table.capacity {
            examined(1);
            let meta = map.load_u64(table.slot_at(geo, idx), Ordering::Relaxed)?;
            match format::state_of(meta) {
                STATE_LIVE => live += 1,
                STATE_TOMB => dead += 1,
                _ => {}
            }
        }
        store_counters(map, [live, live + dead, changes])?;
    }
    Ok(())
}
