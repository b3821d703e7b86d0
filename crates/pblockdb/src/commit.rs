//! Committing a transaction's changes, and rolling back one a dead writer left unfinished. The
//! protocol and its crash argument are in `docs/pblockdb-format.md` ("Commits").
//!
//! A commit of `n` slot changes, with the history head `h` equal to the commit clock:
//! 1. history entries `h .. h + n` get the versions the commit replaces, sorted by slot;
//!    the head moves to `h + n`;
//! 2. each slot is rewritten (a seqlock write) with clock `h + n` and a pointer to its entry;
//! 3. the count record for `h + n` is written, then `commit = h + n` publishes it all.
//!
//! A crash before 3 leaves `head > commit`: the next writer puts every saved version back.

use std::collections::HashSet;
use std::sync::atomic::{Ordering, fence};

use pmap::SharedMap;

use crate::buf::Buf;
use crate::format::{
    self, COUNTS_LEN, Counts, Geometry, NO_UNDO, OFF_COMMIT, OFF_COUNTS, OFF_GENERATION,
    OFF_HISTORY_HEAD, OFF_RING_GENERATION, OFF_RINGS, OFF_TABLES, STATE_EMPTY, STATE_LIVE,
    STATE_TOMB, SlotHeader,
};
use crate::history::{Entry, read_entry, write_entry};
use crate::lock::WriteLock;
use crate::staged::{Change, Staged};
use crate::storage::Backend;
use crate::testing::StallPoint;
use crate::view::{Table, View};
use crate::{Db, Durability, Error, Result};

/// One slot a commit rewrites.
struct Planned<'a> {
    slot: u64,
    key: &'a [u8],
    value: Option<&'a [u8]>,
}

/// Where a writer's probe for a key ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Existing(u64),
    /// A slot to take: `fresh` when it was empty (it adds to `used`).
    Vacant {
        slot: u64,
        fresh: bool,
    },
    Full,
}

/// The counts of the committed state `clock`: the valid record of that clock with the higher
/// sequence.
pub(crate) fn counts_at(map: &SharedMap, clock: u64) -> Result<Option<(usize, Counts)>> {
    let mut best: Option<(usize, Counts)> = None;
    for (i, at) in OFF_COUNTS.iter().enumerate() {
        // The clock is the record's first word: a record of another commit is passed over
        // without its checksum (whole or not, `decode` would give it another clock or none).
        if map.load_u64(*at, Ordering::Relaxed)? != clock {
            continue;
        }
        let mut bytes = [0u8; COUNTS_LEN];
        map.read_at(*at, &mut bytes)?;
        if let Some(counts) = Counts::decode(&bytes) {
            if counts.clock == clock && best.is_none_or(|(_, b)| counts.sequence > b.sequence) {
                best = Some((i, counts));
            }
        }
    }
    Ok(best)
}

/// The last commit's clock and its count record, read together without the writer lock: the
/// clock, the records, the clock again, until it did not move (two commits replace both
/// records, which alternate). `None` for the record when the clock held still and no record
/// is for it: damage.
pub(crate) fn counts_now(map: &SharedMap) -> Result<(u64, Option<Counts>)> {
    loop {
        let clock = map.load_u64(OFF_COMMIT, Ordering::Acquire)?;
        let counts = counts_at(map, clock)?;
        if map.load_u64(OFF_COMMIT, Ordering::Acquire)? == clock {
            return Ok((clock, counts.map(|(_, counts)| counts)));
        }
    }
}

/// Writes `counts` into the record that does not hold the current state (`current`).
fn store_counts(view: &View, current: usize, counts: &Counts) -> Result<()> {
    view.put(OFF_COUNTS[1 - current], &counts.encode())
}

fn load(view: &View, at: usize) -> Result<u64> {
    Ok(view.map.load_u64(at, Ordering::Acquire)?)
}

fn store(view: &View, at: usize, value: u64) -> Result<()> {
    view.store_word(at, value, Ordering::Release)
}

/// Seqlock write of a whole slot (the writer lock is held): an odd version first, a release
/// fence, the bytes, then the image's even meta word with release ordering; then the hint.
pub(crate) fn write_slot(
    view: &View,
    table: &Table,
    geo: &Geometry,
    idx: u64,
    image: &[u8],
) -> Result<()> {
    write_slot_pausing(view, table, geo, idx, image, || {})
}

/// [`write_slot`], calling `inside` once the slot is marked mid-write (where a test stops the
/// writer: [`StallPoint::MidSlot`]).
fn write_slot_pausing(
    view: &View,
    table: &Table,
    geo: &Geometry,
    idx: u64,
    image: &[u8],
    inside: impl FnOnce(),
) -> Result<()> {
    let at = table.slot_at(geo, idx);
    let new_meta = format::get_u64(image, 0);
    let old = view.map.load_u64(at, Ordering::Relaxed)?;
    let writing = format::meta(
        format::version_of(new_meta).wrapping_sub(1),
        format::state_of(old),
    );
    view.storage
        .write_guarded(&view.map, at, (writing, new_meta), &[&image[8..]], inside)?;
    let hint = format::hint(
        format::state_of(new_meta),
        format::get_u32(image, format::SLOT_TAG),
    );
    view.store_hint(table.hint_at(idx), hint)
}

/// The next even version after `meta`'s.
fn next_version(meta: u64) -> u64 {
    format::version_of(meta).wrapping_add(2) & !1
}

fn flush_if(view: &View, durability: Durability) -> Result<()> {
    if durability == Durability::Synced {
        view.sync()?;
    }
    Ok(())
}

/// Commits `changes` atomically (the writer lock is held). Deleting an absent key changes
/// nothing; a transaction that changes nothing commits nothing.
pub(crate) fn commit(lock: &WriteLock<'_>, changes: &Staged, durability: Durability) -> Result<()> {
    lock.held_here()?;
    let db = lock.db;
    let geo = db.geo;
    loop {
        let view = db.read_view();
        let table = view.active;
        let clock = load(&view, OFF_COMMIT)?;
        let Some((current, counts)) = counts_at(&view.map, clock)? else {
            return Err(db.header_error("counts", clock));
        };
        let mut plan = Vec::with_capacity(changes.len());
        let mut taken = Taken::new(table.capacity, changes.len());
        let (mut count, mut used) = (counts.count, counts.used);
        let mut full = false;
        let mut scratch = Buf::zeroed(geo.slot_size);
        let probed = changes.generation() == table.generation;
        let max_used = table.capacity / format::MAX_LOAD.1 * format::MAX_LOAD.0;
        for change in changes.iter() {
            let staged = if probed {
                still_found(&view, &table, &geo, &change, &taken, &mut scratch)?
            } else {
                None
            };
            let found = match staged {
                Some(found) => found,
                None => find(
                    db,
                    &view,
                    &table,
                    change.key,
                    change.hash,
                    |slot| taken.contains(&slot),
                    &mut scratch,
                )?,
            };
            match found {
                Found::Existing(slot) => {
                    if change.value.is_none() {
                        count = count.saturating_sub(1);
                    }
                    taken.insert(slot);
                    plan.push(Planned {
                        slot,
                        key: change.key,
                        value: change.value,
                    });
                }
                Found::Vacant { .. } if change.value.is_none() => {}
                Found::Vacant { slot, fresh } => {
                    count = count.saturating_add(1);
                    used = used.saturating_add(u64::from(fresh));
                    taken.insert(slot);
                    plan.push(Planned {
                        slot,
                        key: change.key,
                        value: change.value,
                    });
                }
                Found::Full => full = true,
            }
            // The table will be rebuilt first: planning on would only make each later probe
            // longer (the slots taken count as occupied), quadratic in a large transaction.
            if full || used > max_used {
                break;
            }
        }
        if full || used > max_used {
            drop(view);
            let inserts = changes.iter().filter(|c| c.value.is_some()).count() as u64;
            rebuild(lock, counts.count.saturating_add(inserts), durability)?;
            continue;
        }
        if plan.is_empty() {
            return Ok(());
        }
        let n = plan.len() as u64;
        if view.ring.entries < n.saturating_mul(2).max(db.history_min) {
            drop(view);
            grow_ring(lock, n.saturating_mul(2).max(db.history_min), durability)?;
            continue;
        }
        plan.sort_by_key(|p| p.slot);
        let head = load(&view, OFF_HISTORY_HEAD)?;
        let new_clock = head + n;
        let mut image = Buf::zeroed(geo.slot_size);
        // 1. Save every version this commit replaces, before touching any.
        for (k, p) in plan.iter().enumerate() {
            view.map.read_at(table.slot_at(&geo, p.slot), &mut image)?;
            write_entry(
                &view,
                &view.ring,
                &geo,
                head + k as u64,
                p.slot,
                table.generation,
                &image,
            )?;
        }
        store(&view, OFF_HISTORY_HEAD, new_clock)?;
        flush_if(&view, durability)?;
        crate::testing::reached(StallPoint::AfterHistory);
        // 2. Rewrite the slots.
        let mut new = Buf::zeroed(geo.slot_size);
        for (k, p) in plan.iter().enumerate() {
            let meta = view
                .map
                .load_u64(table.slot_at(&geo, p.slot), Ordering::Relaxed)?;
            format::build_image(
                &mut new,
                &geo,
                p.key,
                p.value,
                new_clock,
                head + k as u64,
                next_version(meta),
            );
            write_slot_pausing(&view, &table, &geo, p.slot, &new, || {
                crate::testing::reached(StallPoint::MidSlot(k as u64));
            })?;
        }
        crate::testing::reached(StallPoint::BeforePublish);
        // 3. Publish.
        let next = Counts {
            clock: new_clock,
            sequence: counts.sequence.wrapping_add(1),
            count,
            used,
            commits: counts.commits.wrapping_add(1),
        };
        store_counts(&view, current, &next)?;
        flush_if(&view, durability)?;
        store(&view, OFF_COMMIT, new_clock)?;
        return Ok(());
    }
}

/// Walks `key`'s probe path in the active table for a writer. A live hint with another key's
/// tag is skipped unread, as readers do; every other slot is judged by its meta word, not its
/// hint, so a damaged hint never lets a write overwrite a live record; a hint found disagreeing
/// with its slot is rewritten from it. Slots `taken` by this commit count as occupied.
fn find(
    db: &Db,
    view: &View,
    table: &Table,
    key: &[u8],
    hash: u64,
    taken: impl Fn(u64) -> bool,
    image: &mut [u8],
) -> Result<Found> {
    let geo = db.geo;
    let tag = format::tag_of(hash);
    let mut idx = hash & table.mask();
    let mut first_tomb = None;
    for _ in 0..table.capacity {
        let hint = view.map.load_u32(table.hint_at(idx), Ordering::Relaxed)?;
        let skip = u64::from(hint & 3) == STATE_LIVE && !format::hint_matches(hint, tag);
        if !skip {
            let at = table.slot_at(&geo, idx);
            view.map.read_at(at, image)?;
            let header = SlotHeader::read(image);
            if format::is_writing(header.meta) {
                return Err(db.corrupt(idx, "left mid-write with no history entry to roll it back"));
            }
            let expected = format::hint(header.state(), header.tag);
            if expected != hint && header.state() <= STATE_TOMB {
                view.store_hint(table.hint_at(idx), expected)?;
            }
            match header.state() {
                // An empty slot holds nothing after its meta word; one that does is a record or
                // tombstone whose state was damaged. It is never taken (that would overwrite the
                // record), nor passed over: a record placed past it could not be found, since a
                // reader's probe stops at a slot that says empty. The write is refused (the
                // rebuild and `verify` report it too).
                STATE_EMPTY if image[8..].iter().any(|&b| b != 0) => {
                    return Err(db.corrupt(idx, "empty slot holds a record"));
                }
                STATE_EMPTY if !taken(idx) => {
                    return Ok(match first_tomb {
                        Some(slot) => Found::Vacant { slot, fresh: false },
                        None => Found::Vacant {
                            slot: idx,
                            fresh: true,
                        },
                    });
                }
                STATE_TOMB if !taken(idx) => {
                    first_tomb.get_or_insert(idx);
                }
                STATE_LIVE if header.tag == tag && format::key_of(image, &geo) == Some(key) => {
                    return Ok(Found::Existing(idx));
                }
                // State 3 is no state a writer writes: damage, which may be a record. Not
                // passed over, for the reason above.
                state if state > STATE_TOMB => {
                    return Err(db.corrupt(idx, "unknown slot state"));
                }
                _ => {}
            }
        }
        idx = (idx + 1) & table.mask();
    }
    Ok(match first_tomb {
        Some(slot) => Found::Vacant { slot, fresh: false },
        None => Found::Full,
    })
}

/// A write transaction's probe for `key` (hashed to `hash`) in the active table, before its
/// commit: where the key is, or the slot an insert of it would take. Staged with the change
/// ([`Staged`]) so that the commit need not probe again.
pub(crate) fn probe(
    db: &Db,
    view: &View,
    key: &[u8],
    hash: u64,
    image: &mut [u8],
) -> Result<Found> {
    find(db, view, &view.active, key, hash, |_| false, image)
}

/// The staged probe's answer for `change`, if it still holds: under the writer lock only this
/// transaction's own commit moves slots, but the commit checks each slot it relies on anyway
/// (a slot another change of this commit has taken, or damage since, sends it to [`find`]).
fn still_found(
    view: &View,
    table: &Table,
    geo: &Geometry,
    change: &Change<'_>,
    taken: &Taken,
    image: &mut [u8],
) -> Result<Option<Found>> {
    let slot = match change.probe {
        Found::Existing(slot) | Found::Vacant { slot, .. } => slot,
        Found::Full => return Ok(None),
    };
    if slot >= table.capacity || taken.contains(&slot) {
        return Ok(None);
    }
    view.map.read_at(table.slot_at(geo, slot), image)?;
    let header = SlotHeader::read(image);
    if format::is_writing(header.meta) {
        return Ok(None);
    }
    let holds = match change.probe {
        Found::Existing(_) => {
            header.state() == STATE_LIVE
                && header.tag == format::tag_of(change.hash)
                && format::key_of(image, geo) == Some(change.key)
        }
        Found::Vacant { fresh: true, .. } => {
            header.state() == STATE_EMPTY && image[8..].iter().all(|&b| b == 0)
        }
        Found::Vacant { fresh: false, .. } => header.state() == STATE_TOMB,
        Found::Full => false,
    };
    Ok(holds.then_some(change.probe))
}

/// The slots a commit's plan has taken so far: a bitmap when the table is small enough for one
/// to be cheap (a commit's probes ask about every vacant slot they pass), else a set.
enum Taken {
    /// Up to [`FEW`] slots, on the stack: most transactions change a key or a few, and their
    /// commit should not allocate a bitmap or a set for them.
    Few([u64; FEW], usize),
    Bits(Vec<u64>),
    Set(HashSet<u64>),
}

/// The most slots [`Taken::Few`] holds (searched linearly).
const FEW: usize = 16;

impl Taken {
    fn new(capacity: u64, changes: usize) -> Self {
        if changes <= FEW {
            return Taken::Few([0; FEW], 0);
        }
        // A bitmap costs capacity / 8 bytes to clear; worth it while that is no more than a
        // few bytes per change.
        if capacity / 64 <= (changes as u64).saturating_mul(8).max(1024) {
            Taken::Bits(vec![0; (capacity as usize).div_ceil(64)])
        } else {
            Taken::Set(HashSet::with_capacity(changes))
        }
    }

    fn insert(&mut self, slot: u64) {
        match self {
            Taken::Few(slots, len) => {
                if *len < FEW {
                    slots[*len] = slot;
                    *len += 1;
                } else {
                    // More inserts than the changes it was made for (cannot happen: one a
                    // change): carry on in a set rather than lose one.
                    let mut set: HashSet<u64> = slots.iter().copied().collect();
                    set.insert(slot);
                    *self = Taken::Set(set);
                }
            }
            Taken::Bits(bits) => bits[(slot / 64) as usize] |= 1 << (slot % 64),
            Taken::Set(set) => {
                set.insert(slot);
            }
        }
    }

    fn contains(&self, slot: &u64) -> bool {
        match self {
            Taken::Few(slots, len) => slots[..*len].contains(slot),
            Taken::Bits(bits) => bits[(*slot / 64) as usize] & (1 << (*slot % 64)) != 0,
            Taken::Set(set) => set.contains(slot),
        }
    }
}

/// The lowest page-aligned offset after the header where `bytes` fit without overlapping any
/// of the `busy` regions (`(offset, bytes)`).
fn place(busy: &[(u64, u64)], bytes: u64) -> Option<u64> {
    let mut candidates = vec![format::HEADER_SIZE];
    for (offset, len) in busy {
        candidates.push(format::round_up(offset.checked_add(*len)?, format::PAGE)?);
    }
    candidates.sort_unstable();
    candidates.into_iter().find(|&start| {
        start.checked_add(bytes).is_some_and(|end| {
            busy.iter()
                .all(|&(offset, len)| end <= offset || start >= offset.saturating_add(len))
        })
    })
}

/// Grows the file to `end` (seeing the whole file first) and zeroes `[offset, end)` where it
/// lay inside the old length: a writer that died in an earlier rebuild may have left bytes
/// there. Returns the guard-free view afterwards through `db`.
fn prepare_region(
    db: &Db,
    offset: u64,
    end: u64,
    capacity_err: impl Fn(Error) -> Error,
) -> Result<()> {
    let end = usize::try_from(end).map_err(|_| {
        let path = db.path.clone();
        capacity_err(
            pmap::Error::TooLarge {
                path,
                requested: end,
            }
            .into(),
        )
    })?;
    let offset = offset as usize;
    let old_len = {
        let mut guard = db.write_view();
        guard.map.refresh()?;
        let old_len = guard.map.len();
        if end > old_len {
            let View { map, storage, .. } = &mut *guard;
            storage.grow(map, end).map_err(|e| capacity_err(e.into()))?;
        }
        old_len
    };
    let view = db.read_view();
    // Order the descriptor's invalidation (by the caller) before every store into the region.
    fence(Ordering::SeqCst);
    let zeros = vec![0u8; 1 << 16];
    let mut at = offset;
    while at < end.min(old_len) {
        let n = zeros.len().min(end.min(old_len) - at);
        view.put(at, &zeros[..n])?;
        at += n;
    }
    Ok(())
}

/// Builds a new table (doubling while more than half would be full after `records`) in a
/// free region and switches to it; the table it replaces stays for older snapshots until the
/// rebuild after this one. See `docs/pblockdb-format.md` ("Rebuild").
pub(crate) fn rebuild(lock: &WriteLock<'_>, records: u64, durability: Durability) -> Result<()> {
    let db = lock.db;
    let geo = db.geo;
    let (old, live, busy) = {
        let view = db.read_view();
        let old = view.active;
        // Every slot is classified before anything is written (no commit is in flight: the
        // lock's recovery rolled back any). A slot whose state says live is carried over
        // whatever its checksum (a bad one stays reported); tombstones are dropped; a slot
        // this cannot classify stops the rebuild with the table untouched: state 3, or an
        // empty slot holding bytes, either of which may be a record whose state was damaged.
        let mut live = 0u64;
        let mut image = vec![0u8; geo.slot_size];
        for idx in 0..old.capacity {
            view.map.read_at(old.slot_at(&geo, idx), &mut image)?;
            match format::state_of(format::get_u64(&image, 0)) {
                STATE_LIVE => live += 1,
                STATE_TOMB => {}
                STATE_EMPTY if image[8..].iter().any(|&b| b != 0) => {
                    return Err(db.corrupt(idx, "empty slot holds a record"));
                }
                STATE_EMPTY => {}
                _ => return Err(db.corrupt(idx, "unknown slot state")),
            }
        }
        let mut busy = vec![
            (old.offset as u64, old.bytes),
            (view.ring.offset as u64, view.ring.bytes),
        ];
        if let Some(ring) = view.previous_ring {
            busy.push((ring.offset as u64, ring.bytes));
        }
        (old, live, busy)
    };
    let wanted = records.max(live);
    let mut capacity = old.capacity;
    while wanted.saturating_add(1).saturating_mul(2) > capacity {
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
    let offset = place(&busy, bytes).ok_or_else(|| full(too_big()))?;
    let generation = old.generation.wrapping_add(1);
    {
        // The descriptor slot the new table takes still describes the table before the old
        // one, whose region may be the one reused: invalidate it first.
        let view = db.read_view();
        view.store_word(
            OFF_TABLES[(generation & 1) as usize],
            u64::MAX,
            Ordering::Relaxed,
        )?;
    }
    prepare_region(db, offset, offset + bytes, full)?;
    let view = db.read_view();
    let hints = format::hint_bytes(capacity).unwrap_or(0);
    let new = Table {
        generation,
        offset: offset as usize,
        slots: (offset + hints) as usize,
        capacity,
        since: load(&view, OFF_COMMIT)?,
        bytes,
    };
    let mut image = vec![0u8; geo.slot_size];
    for idx in 0..old.capacity {
        view.map.read_at(old.slot_at(&geo, idx), &mut image)?;
        if format::state_of(format::get_u64(&image, 0)) != STATE_LIVE {
            continue;
        }
        format::put_u64(&mut image, 0, format::meta(2, STATE_LIVE));
        if format::image_is_sound(&image, &geo) {
            // The versions before it stay with the old table, for snapshots older than this.
            format::put_u64(&mut image, format::SLOT_UNDO, NO_UNDO);
            let crc = format::slot_crc(&image, &geo).unwrap_or(0);
            format::put_u32(&mut image, format::SLOT_CRC, crc);
        }
        let key = format::key_of(&image, &geo).unwrap_or(&[]);
        let mut probe = format::hash_key(key) & new.mask();
        // `live < capacity / 2`, so an empty slot exists and this ends.
        while view.map.load_u32(new.hint_at(probe), Ordering::Relaxed)? != 0 {
            probe = (probe + 1) & new.mask();
        }
        view.put(new.slot_at(&geo, probe), &image)?;
        let hint = format::hint(STATE_LIVE, format::get_u32(&image, format::SLOT_TAG));
        view.store_hint(new.hint_at(probe), hint)?;
    }
    write_table_descriptor(&view.storage, &view.map, &new)?;
    flush_if(&view, durability)?;
    store(&view, OFF_GENERATION, generation)?;
    fence(Ordering::SeqCst);
    let clock = new.since;
    let Some((current, counts)) = counts_at(&view.map, clock)? else {
        return Err(db.header_error("counts", clock));
    };
    let next = Counts {
        sequence: counts.sequence.wrapping_add(1),
        count: live,
        used: live,
        ..counts
    };
    store_counts(&view, current, &next)?;
    flush_if(&view, durability)?;
    drop(view);
    db.refresh()
}

/// Writes a table descriptor's fields, then its generation word with release ordering (its
/// readers' seqlock), into the descriptor slot of its generation's parity.
pub(crate) fn write_table_descriptor(
    storage: &Backend,
    map: &SharedMap,
    table: &Table,
) -> Result<()> {
    let desc = format::TableDescriptor {
        generation: table.generation,
        offset: table.offset as u64,
        capacity: table.capacity,
        since: table.since,
    };
    let at = OFF_TABLES[(table.generation & 1) as usize];
    for (i, word) in [desc.offset, desc.capacity, desc.since, desc.crc()]
        .iter()
        .enumerate()
    {
        storage.write(map, at + 8 + i * 8, &word.to_le_bytes())?;
    }
    storage.store_u64(map, at, table.generation, Ordering::Release)
}

/// Writes a ring descriptor, as [`write_table_descriptor`].
pub(crate) fn write_ring_descriptor(
    storage: &Backend,
    map: &SharedMap,
    ring: &format::RingDescriptor,
) -> Result<()> {
    let at = OFF_RINGS[(ring.generation & 1) as usize];
    for (i, word) in [ring.offset, ring.entries, ring.base, ring.crc()]
        .iter()
        .enumerate()
    {
        storage.write(map, at + 8 + i * 8, &word.to_le_bytes())?;
    }
    storage.store_u64(map, at, ring.generation, Ordering::Release)
}

/// Moves the history to a new ring of at least `entries` entries (the writer lock is held and
/// no commit is in flight). The old ring stays readable until the growth after this one.
pub(crate) fn grow_ring(lock: &WriteLock<'_>, entries: u64, durability: Durability) -> Result<()> {
    let db = lock.db;
    let geo = db.geo;
    let (ring, busy, head) = {
        let view = db.read_view();
        let mut busy = vec![
            (view.active.offset as u64, view.active.bytes),
            (view.ring.offset as u64, view.ring.bytes),
        ];
        if let Some(table) = view.previous {
            busy.push((table.offset as u64, table.bytes));
        }
        (view.ring, busy, load(&view, OFF_HISTORY_HEAD)?)
    };
    let entries = entries
        .max(ring.entries.saturating_mul(2))
        .next_power_of_two();
    let full = |source: Error| Error::Full {
        path: db.path.clone(),
        capacity: ring.entries,
        source: Box::new(source),
    };
    let too_big = || Error::InvalidGeometry {
        what: "history",
        value: entries,
        min: format::MIN_HISTORY,
        max: format::MAX_HISTORY,
    };
    if entries > format::MAX_HISTORY {
        return Err(full(too_big()));
    }
    let bytes = geo.ring_bytes(entries).ok_or_else(|| full(too_big()))?;
    let offset = place(&busy, bytes).ok_or_else(|| full(too_big()))?;
    let generation = ring.generation.wrapping_add(1);
    {
        let view = db.read_view();
        view.store_word(
            OFF_RINGS[(generation & 1) as usize],
            u64::MAX,
            Ordering::Relaxed,
        )?;
    }
    prepare_region(db, offset, offset + bytes, full)?;
    let view = db.read_view();
    write_ring_descriptor(
        &view.storage,
        &view.map,
        &format::RingDescriptor {
            generation,
            offset,
            entries,
            base: head,
        },
    )?;
    flush_if(&view, durability)?;
    store(&view, OFF_RING_GENERATION, generation)?;
    flush_if(&view, durability)?;
    drop(view);
    db.refresh()
}

thread_local!(static EXAMINED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });

/// Notes that the calling thread read `n` slots' words while opening or recovering a file.
pub(crate) fn examined(n: u64) {
    EXAMINED.with(|count| count.set(count.get().wrapping_add(n)));
}

/// How many slots the calling thread has examined while opening or recovering files, so tests
/// can show that opening does bounded work on any file. Not part of the API.
#[doc(hidden)]
pub fn slots_examined() -> u64 {
    EXAMINED.with(std::cell::Cell::get)
}

/// The largest table (in slots, and in bytes of its region) whose counts [`recover`]
/// recounts by a scan when they are missing or out of range. Past it the recount is left to
/// the next rebuild, which scans the table anyway, so opening does bounded work whatever table
/// the header claims (a few KB of sparse file can claim 2^32 slots).
const RECOUNT_MAX_SLOTS: u64 = 1 << 20;
const RECOUNT_MAX_BYTES: u64 = 256 << 20;

/// Whether the commit between the words `commit` and `head` (entries `commit .. head`) reached
/// the file whole, lacking only its commit word: every slot its history entries name holds the
/// image it wrote (not mid-write, stamped with clock `head`, its undo number the entry's, whole)
/// under a matching hint, and the count record of clock `head` is there; that record and its
/// index then. A synced commit returns after the sync that follows its slots and count record,
/// before its commit word is durable, so a power loss after it returned leaves exactly this
/// (docs/pblockdb-format.md, "Durability"); recovery rolls such a commit forward, and readers
/// read it as committed. Bounded: at most the ring's entries are read.
pub(crate) fn finished_commit(
    view: &View,
    geo: &Geometry,
    table: &Table,
    commit: u64,
    head: u64,
) -> Result<Option<(usize, Counts)>> {
    if head <= commit || head - commit > view.ring.entries {
        return Ok(None);
    }
    let Some(found) = counts_at(&view.map, head)? else {
        return Ok(None);
    };
    let mut entry = Buf::zeroed(geo.slot_size);
    let mut now = Buf::zeroed(geo.slot_size);
    for number in commit..head {
        let Entry::Found { slot, generation } = read_entry(view, geo, number, &mut entry)? else {
            return Ok(None);
        };
        if generation != table.generation || slot >= table.capacity {
            return Ok(None);
        }
        view.map.read_at(table.slot_at(geo, slot), &mut now)?;
        let header = SlotHeader::read(&now);
        if format::is_writing(header.meta)
            || header.commit != head
            || header.undo != number
            || !format::image_is_sound(&now, geo)
        {
            return Ok(None);
        }
        let hint = view.map.load_u32(table.hint_at(slot), Ordering::Acquire)?;
        if hint != format::hint(header.state(), header.tag) {
            return Ok(None);
        }
    }
    Ok(Some(found))
}

/// Under the writer lock: finishes a commit a dead writer (or a power loss) left without its
/// commit word but otherwise whole, or rolls back one it left unfinished; then checks the
/// counts of the committed state, recounting them when that is affordable.
pub(crate) fn recover(lock: &WriteLock<'_>) -> Result<()> {
    let db = lock.db;
    let geo = db.geo;
    let view = db.read_view();
    let table = view.active;
    let commit = load(&view, OFF_COMMIT)?;
    let head = load(&view, OFF_HISTORY_HEAD)?;
    if head < commit {
        return Err(db.header_error("history_head", head));
    }
    let Some((current, counts)) = counts_at(&view.map, commit)? else {
        return recount(db, &view, &table, commit, 0, Counts::default());
    };
    if head > commit {
        if head - commit > view.ring.entries {
            return Err(db.header_error("history_head", head));
        }
        if let Some((index, forward)) = finished_commit(&view, &geo, &table, commit, head)? {
            // Only the commit word is missing: publish it (all or nothing, and this is all).
            store(&view, OFF_COMMIT, head)?;
            flush_if(&view, db.durability)?;
            if forward.count > forward.used || forward.used > table.capacity {
                return recount(db, &view, &table, head, index, forward);
            }
            return Ok(());
        }
        let mut pre = vec![0u8; geo.slot_size];
        let mut now = vec![0u8; geo.slot_size];
        for number in (commit..head).rev() {
            if let Entry::Found { slot, generation } = read_entry(&view, &geo, number, &mut pre)? {
                if generation == table.generation
                    && slot < table.capacity
                    && restorable(&view, &geo, &table, slot, commit, &pre, &mut now)?
                {
                    let meta = view
                        .map
                        .load_u64(table.slot_at(&geo, slot), Ordering::Relaxed)?;
                    let state = format::state_of(format::get_u64(&pre, 0));
                    format::put_u64(&mut pre, 0, format::meta(next_version(meta), state));
                    write_slot(&view, &table, &geo, slot, &pre)?;
                }
            }
        }
        flush_if(&view, db.durability)?;
        // Publish the rolled-back state under the head's clock, so that entry numbers are
        // never reused.
        let next = Counts {
            clock: head,
            sequence: counts.sequence.wrapping_add(1),
            ..counts
        };
        store_counts(&view, current, &next)?;
        flush_if(&view, db.durability)?;
        store(&view, OFF_COMMIT, head)?;
        flush_if(&view, db.durability)?;
        if next.count > next.used || next.used > table.capacity {
            return recount(db, &view, &table, head, 1 - current, next);
        }
        return Ok(());
    }
    if counts.count > counts.used || counts.used > table.capacity {
        return recount(db, &view, &table, commit, current, counts);
    }
    Ok(())
}

/// Whether the saved version `pre` may go back into slot `slot`, as every version a writer
/// saved would: empty (all zeros), or whole (lengths, checksum and tag) and no newer than the
/// committed state; and if it is a record, the slot still holds its key (a writer rewrites a
/// live slot only for its own key). A checksum proves only that the entry was written whole,
/// not that a writer wrote it.
fn restorable(
    view: &View,
    geo: &Geometry,
    table: &Table,
    slot: u64,
    commit: u64,
    pre: &[u8],
    now: &mut [u8],
) -> Result<bool> {
    let header = SlotHeader::read(pre);
    match header.state() {
        STATE_EMPTY => return Ok(pre.iter().all(|&b| b == 0)),
        STATE_LIVE | STATE_TOMB => {}
        _ => return Ok(false),
    }
    if !format::image_is_sound(pre, geo)
        || header.commit > commit
        || format::is_writing(header.meta)
    {
        return Ok(false);
    }
    if header.state() == STATE_LIVE {
        view.map.read_at(table.slot_at(geo, slot), now)?;
        if format::key_of(now, geo) != format::key_of(pre, geo) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Recounts live records and tombstones when affordable, else sets `used = capacity` (the
/// next insert into an empty slot rebuilds the table, whose scan counts both exactly) and
/// clamps `count`; then stores the counts for `clock`.
fn recount(
    db: &Db,
    view: &View,
    table: &Table,
    clock: u64,
    current: usize,
    counts: Counts,
) -> Result<()> {
    let geo = db.geo;
    let affordable = table.capacity <= RECOUNT_MAX_SLOTS
        && geo
            .table_bytes(table.capacity)
            .is_some_and(|bytes| bytes <= RECOUNT_MAX_BYTES);
    let (count, used) = if affordable {
        let (mut live, mut dead) = (0u64, 0u64);
        for idx in 0..table.capacity {
            examined(1);
            let meta = view
                .map
                .load_u64(table.slot_at(&geo, idx), Ordering::Relaxed)?;
            match format::state_of(meta) {
                STATE_LIVE => live += 1,
                STATE_TOMB => dead += 1,
                _ => {}
            }
        }
        (live, live + dead)
    } else {
        (counts.count.min(table.capacity), table.capacity)
    };
    let next = Counts {
        clock,
        sequence: counts.sequence.wrapping_add(1),
        count,
        used,
        commits: counts.commits,
    };
    store_counts(view, current, &next)
}
