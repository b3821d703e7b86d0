//! The reader's protocol: reading a slot as it was at a snapshot, without a lock and without
//! registering anywhere. The argument is in `docs/pblockdb-format.md` ("Snapshots").
//!
//! A snapshot is a commit clock `S`. A slot image carries the clock of the commit that wrote
//! it and the number of the history entry holding the version it replaced; the version a
//! snapshot sees is the newest image in that chain whose clock is at most `S`. A slot a writer
//! is inside (odd version) is read past through the entry the writer saved first, so a reader
//! never waits for a writer, live, descheduled or dead.

use std::sync::atomic::{Ordering, fence};

use pmap::ReadSpan;

use crate::Result;
use crate::format::{
    self, Geometry, NO_UNDO, OFF_COMMIT, OFF_HISTORY_HEAD, STATE_EMPTY, STATE_LIVE, SlotHeader,
};
use crate::history::{Entry, read_entry};
use crate::seqlock::Seqlock;
use crate::view::{Table, View};

/// How many times a reader re-reads a slot that a writer keeps changing under it before it
/// calls the slot damaged. Each round is a few loads: a live writer moves on in nanoseconds,
/// and a dead one left the history entry that the first round finds.
const MID_WRITE_ROUNDS: u32 = 10_000;

/// The result of a step that may have to start again.
#[derive(Debug)]
pub(crate) enum Step<T> {
    Done(T),
    /// The table was being reused, or the view is stale: catch up and start again.
    Retry,
    /// A version this snapshot needs is no longer kept.
    TooOld,
}

/// A problem with a slot, reported by the caller with its path.
#[derive(Debug)]
pub(crate) struct SlotProblem {
    pub slot: u64,
    pub reason: &'static str,
}

pub(crate) type SlotResult<T> = std::result::Result<T, SlotFailure>;

/// Why a slot read failed.
#[derive(Debug)]
pub(crate) enum SlotFailure {
    Slot(SlotProblem),
    Other(crate::Error),
}

impl From<crate::Error> for SlotFailure {
    fn from(e: crate::Error) -> Self {
        SlotFailure::Other(e)
    }
}

impl From<pmap::Error> for SlotFailure {
    fn from(e: pmap::Error) -> Self {
        SlotFailure::Other(e.into())
    }
}

fn problem(slot: u64, reason: &'static str) -> SlotFailure {
    SlotFailure::Slot(SlotProblem { slot, reason })
}

/// Reads slot `idx` of `table` as it was at clock `snapshot` into `image`; returns its state
/// then (empty, live or tombstone).
pub(crate) fn version_at(
    view: &View,
    geo: &Geometry,
    table: &Table,
    idx: u64,
    snapshot: u64,
    image: &mut [u8],
) -> SlotResult<Step<u64>> {
    let at = table.slot_at(geo, idx);
    let map = &view.map;
    let mut rounds = 0;
    loop {
        let word = map.load_word_u64(at)?;
        let meta = Seqlock::begin_read(&word);
        let read = if format::is_writing(meta) {
            in_flight_pre_image(view, geo, table, idx, image)?
        } else {
            map.read_at(at, image)?;
            Seqlock::unchanged(&word, meta)
        };
        if read {
            break;
        }
        rounds += 1;
        if rounds > MID_WRITE_ROUNDS {
            return Err(problem(
                idx,
                "left mid-write with no history entry to read past it",
            ));
        }
        std::hint::spin_loop();
    }
    resolve(view, geo, table, idx, snapshot, image)
}

/// Follows `image`'s chain of saved versions back to the one snapshot `snapshot` saw. Entry
/// numbers strictly decrease along a chain, so it ends after at most as many steps as the
/// rings hold entries.
fn resolve(
    view: &View,
    geo: &Geometry,
    table: &Table,
    idx: u64,
    snapshot: u64,
    image: &mut [u8],
) -> SlotResult<Step<u64>> {
    let mut newer = u64::MAX;
    let mut head = None;
    loop {
        let header = SlotHeader::read(image);
        if header.state() == STATE_EMPTY || header.commit <= snapshot {
            return Ok(Step::Done(header.state()));
        }
        // Every version was written by a commit the history knows of: its clock is at most
        // the head.
        let head = *head.get_or_insert(view.map.load_u64(OFF_HISTORY_HEAD, Ordering::Acquire)?);
        if header.commit > head {
            return Err(problem(
                idx,
                "written by a commit the history does not know",
            ));
        }
        if header.undo == NO_UNDO {
            // Written into an empty slot of this table, after the snapshot.
            return Ok(Step::Done(STATE_EMPTY));
        }
        if header.undo >= newer {
            return Err(problem(idx, "history chain does not go back in time"));
        }
        newer = header.undo;
        match read_entry(view, geo, header.undo, image)? {
            Entry::Found { slot, generation } if slot == idx && generation == table.generation => {}
            Entry::Found { .. } => {
                return Err(problem(idx, "history entry belongs to another slot"));
            }
            Entry::Gone => return Ok(Step::TooOld),
            Entry::Damaged => return Err(problem(idx, "history entry fails its checksum")),
        }
    }
}

/// For a slot a writer is inside: copies the version it replaces, which the writer saved in
/// the history first. A commit's entries lie between the `commit` and `history_head` words,
/// sorted by slot index, so a binary search finds it in at most 64 reads. `false` when it is
/// not there (the writer finished meanwhile: read the slot again).
fn in_flight_pre_image(
    view: &View,
    geo: &Geometry,
    table: &Table,
    idx: u64,
    image: &mut [u8],
) -> Result<bool> {
    let map = &view.map;
    let commit = map.load_u64(OFF_COMMIT, Ordering::Acquire)?;
    let head = map.load_u64(OFF_HISTORY_HEAD, Ordering::Acquire)?;
    let (mut low, mut high) = (commit, head.max(commit));
    while low < high {
        let mid = low + (high - low) / 2;
        match read_entry(view, geo, mid, image)? {
            Entry::Found { slot, generation } if generation == table.generation => {
                if slot == idx {
                    return Ok(true);
                }
                if slot < idx {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// Copies the slot at `at` in `slots` into `image` as a seqlock reader; its header when no
/// writer was inside it and none entered during the copy, `None` otherwise.
fn current_in_span(slots: &ReadSpan<'_>, at: usize, image: &mut [u8]) -> Option<SlotHeader> {
    let word = slots.word_u64(at)?;
    let meta = Seqlock::begin_read(&word);
    if format::is_writing(meta) || !slots.read_at(at, image) || !Seqlock::unchanged(&word, meta) {
        return None;
    }
    Some(SlotHeader::read(image))
}

/// Whether `image` is the live record of `key` (tag `tag`).
fn holds_key(image: &[u8], geo: &Geometry, key: &[u8], tag: u32) -> bool {
    format::get_u32(image, format::SLOT_TAG) == tag && format::key_of(image, geo) == Some(key)
}

/// Looks `key` up as of `snapshot`; on `Done(true)` its record is in `image`.
///
/// First the fast path: the probe trusts the hints (a miss usually reads no slot) and accepts
/// only slots no newer than the snapshot; it holds when, after an acquire fence, the history
/// head still equals the snapshot (no slot changed since) and the table is intact. Otherwise
/// every slot of the probe path is read as of the snapshot.
pub(crate) fn lookup(
    view: &View,
    geo: &Geometry,
    table: &Table,
    key: &[u8],
    snapshot: u64,
    image: &mut [u8],
) -> SlotResult<Step<bool>> {
    let hash = format::hash_key(key);
    if let Some(found) = lookup_current(view, geo, table, key, hash, snapshot, image)? {
        return Ok(Step::Done(found));
    }
    let tag = format::tag_of(hash);
    let mut idx = hash & table.mask();
    let mut found = false;
    for _ in 0..table.capacity {
        match version_at(view, geo, table, idx, snapshot, image)? {
            Step::Done(STATE_EMPTY) => break,
            Step::Done(STATE_LIVE) if holds_key(image, geo, key, tag) => {
                found = true;
                break;
            }
            Step::Done(_) => {}
            Step::Retry => return Ok(Step::Retry),
            Step::TooOld => return Ok(Step::TooOld),
        }
        idx = (idx + 1) & table.mask();
    }
    fence(Ordering::Acquire);
    if !table.still_valid(&view.map)? {
        return Ok(Step::Retry);
    }
    if found && !format::checksum_holds(image, geo) {
        return Err(problem(idx, "checksum mismatch"));
    }
    Ok(Step::Done(found))
}

/// The fast path of [`lookup`]; `None` when it cannot decide.
fn lookup_current(
    view: &View,
    geo: &Geometry,
    table: &Table,
    key: &[u8],
    hash: u64,
    snapshot: u64,
    image: &mut [u8],
) -> SlotResult<Option<bool>> {
    let map = &view.map;
    let tag = format::tag_of(hash);
    let mut idx = hash & table.mask();
    let mut found = false;
    // The lines of the home slot and of the one after it start loading while the hint is
    // loaded: a hit's two cache misses (hint, then slot) overlap instead of following each
    // other. The next slot too because a table sized for its records is up to 7/8 full
    // (100,000 in 131,072 slots in the benchmark) and keeps many keys a slot past home.
    // `get_n` with 100,000 keys, 9 runs of each build alternated: median 205.0 ns a get
    // against 219.5 with the home slot alone; a third slot was no better.
    let prefetched = if idx == table.mask() { 1 } else { 2 };
    map.prefetch(table.slot_at(geo, idx), prefetched * geo.slot_size);
    for _ in 0..table.capacity {
        let hint = map.load_u32(table.hint_at(idx), Ordering::Acquire)?;
        match u64::from(hint & 3) {
            STATE_EMPTY => break,
            STATE_LIVE if format::hint_matches(hint, tag) => {
                let at = table.slot_at(geo, idx);
                let word = map.load_word_u64(at)?;
                let meta = Seqlock::begin_read(&word);
                if format::is_writing(meta) {
                    return Ok(None);
                }
                map.read_at(at, image)?;
                if !Seqlock::unchanged(&word, meta)
                    || format::get_u64(image, format::SLOT_COMMIT) > snapshot
                {
                    return Ok(None);
                }
                if format::state_of(meta) == STATE_LIVE && holds_key(image, geo, key, tag) {
                    found = true;
                    break;
                }
            }
            _ => {}
        }
        idx = (idx + 1) & table.mask();
    }
    fence(Ordering::Acquire);
    if map.load_u64(OFF_HISTORY_HEAD, Ordering::Relaxed)? != snapshot || !table.still_valid(map)? {
        return Ok(None);
    }
    if found && !format::checksum_holds(image, geo) {
        return Err(problem(idx, "checksum mismatch"));
    }
    Ok(Some(found))
}

/// Whether a scan on the unchanged path checks the checksums of the records it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checksums {
    /// Check every record it hands out.
    Check,
    /// Trust the copies: this handle found the chunk sound at this clock in this table
    /// (`checked.rs` has the argument). A scan that leaves the unchanged path checks anyway.
    Trust,
}

/// How a [`scan_range`] read its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanPath {
    /// On the unchanged path throughout (the history head at the snapshot's clock before and
    /// after the copies), every record handed out checked or trusted: the chunk is sound at
    /// this clock.
    Unchanged,
    /// Slot by slot as a seqlock reader (a writer moved since the snapshot).
    ReadEach,
}

/// Appends every record live at `snapshot` in the slots `range` to `out`, in table order, as
/// the slot images they were read as ([`Scanned::records`] reads them back). Each slot is read
/// as of the snapshot, so each live key comes exactly once. Nothing is handed out before the
/// table is known to have been intact throughout.
pub(crate) fn scan_range(
    of: &ScanOf<'_>,
    range: std::ops::Range<u64>,
    checksums: Checksums,
    image: &mut [u8],
    out: &mut Scanned,
) -> SlotResult<Step<ScanPath>> {
    let ScanOf {
        view,
        geo,
        table,
        snapshot,
    } = *of;
    let map = &view.map;
    // When no slot changed since the snapshot (the history head still at its clock) the chunk
    // is copied without a seqlock round a slot (`scan_unchanged`). Whether nothing changed is
    // known only after the chunk: checked at its end, after a fence, and when something did
    // change the chunk is read again the slow way (`scan_reading_each`).
    let unchanged = map.load_u64(OFF_HISTORY_HEAD, Ordering::Acquire)? == snapshot;
    let end = range.end.min(table.capacity);
    let start = range.start.min(end);
    // The chunk's hints and slots are checked against the map once, as two spans (the hints'
    // from an even index, so that the span starts 8-aligned); the loop then indexes them.
    let first_hint = start & !1;
    let hints = map.read_span(table.hint_at(first_hint), (end - first_hint) as usize * 4)?;
    let slots = map.read_span(
        table.slot_at(geo, start),
        (end - start) as usize * geo.slot_size,
    )?;
    let chunk = Chunk {
        hints: &hints,
        first_hint,
        slots: &slots,
        start,
        end,
    };
    let first_new = out.len();
    let mut read_each = !unchanged;
    if unchanged {
        let unsound = match scan_unchanged(of, &chunk, checksums, image, out)? {
            Step::Done(unsound) => unsound,
            Step::Retry => return Ok(Step::Retry),
            Step::TooOld => return Ok(Step::TooOld),
        };
        fence(Ordering::Acquire);
        if map.load_u64(OFF_HISTORY_HEAD, Ordering::Relaxed)? != snapshot {
            // A writer moved during the chunk: its copies may be torn. They are dropped and
            // the chunk read again, every slot as a seqlock reader (the head never comes back,
            // so later chunks go that way at once).
            out.truncate(first_new);
            read_each = true;
        } else if let Some(idx) = unsound {
            if !table.still_valid(map)? {
                return Ok(Step::Retry);
            }
            return Err(problem(idx, "checksum mismatch"));
        }
    }
    if read_each {
        match scan_reading_each(of, &chunk, image, out)? {
            Step::Done(()) => {}
            Step::Retry => return Ok(Step::Retry),
            Step::TooOld => return Ok(Step::TooOld),
        }
    }
    fence(Ordering::Acquire);
    if !table.still_valid(map)? {
        return Ok(Step::Retry);
    }
    Ok(Step::Done(if read_each {
        ScanPath::ReadEach
    } else {
        ScanPath::Unchanged
    }))
}

/// The spans of one chunk of a scan: its hints (from the even index `first_hint`, so that the
/// span starts 8-aligned) and its slots (from slot `start`), for the slots `start..end`.
struct Chunk<'s, 'a> {
    hints: &'s ReadSpan<'a>,
    first_hint: u64,
    slots: &'s ReadSpan<'a>,
    start: u64,
    end: u64,
}

impl Chunk<'_, '_> {
    /// The hint of slot `idx` (in the chunk), loaded with `order`.
    fn hint(&self, idx: u64, order: Ordering) -> SlotResult<u32> {
        self.hints
            .load_u32((idx - self.first_hint) as usize * 4, order)
            .ok_or_else(|| problem(idx, "hint outside the table"))
    }
}

/// What a chunk of a scan is read from and as of when: a table of a view, at a snapshot.
pub(crate) struct ScanOf<'v> {
    pub view: &'v View,
    pub geo: &'v Geometry,
    pub table: &'v Table,
    pub snapshot: u64,
}

/// The chunk's records for a snapshot whose clock the history head held as the chunk began.
///
/// A writer moves the head before it touches any slot, and enters a slot with a release fence
/// after its mark (`Seqlock::begin_write`): so a copy that read any byte a writer stored since
/// the snapshot is followed, after the caller's acquire fence, by a head that moved, and the
/// caller then throws the chunk away. The slots are therefore copied as plain words, without
/// a seqlock round each, and a slot's state is its hint's: empty and tombstone hints are
/// passed over unread (the hint is stored after its slot, so an empty hint over a slot being
/// filled is a write newer than the snapshot, which moved the head). A copy whose own words
/// disagree (a writer's mark, a commit newer than the snapshot, a state other than live) is
/// read again through `version_at`, which decides it as of the snapshot. Returns the first
/// slot whose copy fails its checksum, if any (the scan stops there): torn if the head moved,
/// else damage, which only the caller's check after the chunk can tell. With
/// `Checksums::Trust` the copies are not checked (the handle found this chunk sound at this
/// clock, `checked.rs`), but for those read again through `version_at`.
fn scan_unchanged(
    of: &ScanOf<'_>,
    chunk: &Chunk<'_, '_>,
    checksums: Checksums,
    image: &mut [u8],
    out: &mut Scanned,
) -> SlotResult<Step<Option<u64>>> {
    // First the slots to read, without a branch a slot: at a table's load the hints of live
    // and empty slots alternate at random, and a branch on each mispredicts about as often as
    // a slot is empty. Hint states 1 (live) and 3 (unknown) are read; 0 (empty) and 2
    // (tombstone) are not.
    let mut to_read = std::mem::take(&mut out.to_read);
    to_read.clear();
    to_read.resize((chunk.end - chunk.start) as usize, 0);
    let mut count = 0;
    for idx in chunk.start..chunk.end {
        let hint = chunk.hint(idx, Ordering::Relaxed)?;
        to_read[count] = idx;
        count += (hint & 1) as usize;
    }
    to_read.truncate(count);
    let step = copy_slots(of, chunk, &to_read, checksums, image, out);
    out.to_read = to_read;
    step
}

/// `scan_unchanged`'s copies of the slots `to_read`.
fn copy_slots(
    of: &ScanOf<'_>,
    chunk: &Chunk<'_, '_>,
    to_read: &[u64],
    checksums: Checksums,
    image: &mut [u8],
    out: &mut Scanned,
) -> SlotResult<Step<Option<u64>>> {
    let ScanOf {
        view,
        geo,
        table,
        snapshot,
    } = *of;
    let slot_size = geo.slot_size;
    // Room for all of them at once: the records are copied to their places in turn, and one
    // that turns out not live is overwritten by the next.
    let room = out.room_for(to_read.len());
    let mut kept = 0;
    let mut places = room.chunks_exact_mut(slot_size);
    let mut place = places.next();
    for &idx in to_read {
        let Some(record) = place.as_deref_mut() else {
            break;
        };
        if !chunk
            .slots
            .read_at((idx - chunk.start) as usize * slot_size, record)
        {
            return Err(problem(idx, "slot outside the table"));
        }
        let meta = format::get_u64(record, format::SLOT_META);
        let commit = format::get_u64(record, format::SLOT_COMMIT);
        // A copy read again through `version_at` is checked whatever `checksums` says: its
        // bytes are not the ones a check at this clock saw.
        let mut check = checksums == Checksums::Check;
        if format::is_writing(meta) || commit > snapshot || format::state_of(meta) != STATE_LIVE {
            match version_at(view, geo, table, idx, snapshot, image)? {
                Step::Done(STATE_LIVE) => record.copy_from_slice(image),
                Step::Done(_) => continue,
                Step::Retry => return Ok(Step::Retry),
                Step::TooOld => return Ok(Step::TooOld),
            }
            check = true;
        }
        if check && !format::image_is_sound(record, geo) {
            return Ok(Step::Done(Some(idx)));
        }
        kept += 1;
        place = places.next();
    }
    out.keep_slots(kept);
    Ok(Step::Done(None))
}

/// The chunk's records for any snapshot: every slot whose hint is not empty is read as a
/// seqlock reader, and through `version_at` when a writer is inside it or its version is
/// newer than the snapshot.
fn scan_reading_each(
    of: &ScanOf<'_>,
    chunk: &Chunk<'_, '_>,
    image: &mut [u8],
    out: &mut Scanned,
) -> SlotResult<Step<()>> {
    let ScanOf {
        view,
        geo,
        table,
        snapshot,
    } = *of;
    for idx in chunk.start..chunk.end {
        if chunk.hint(idx, Ordering::Acquire)? == 0 {
            continue;
        }
        // The common case is read straight from the span into its place in `out`: no writer
        // inside, and a version no newer than the snapshot. Anything else goes through
        // `version_at`, which reads past a writer and back through the history.
        let record = out.next_slot();
        let at = (idx - chunk.start) as usize * geo.slot_size;
        let state = match current_in_span(chunk.slots, at, record) {
            Some(header) if header.commit <= snapshot => header.state(),
            _ => match version_at(view, geo, table, idx, snapshot, image)? {
                Step::Done(state) => {
                    record.copy_from_slice(image);
                    state
                }
                Step::Retry => return Ok(Step::Retry),
                Step::TooOld => return Ok(Step::TooOld),
            },
        };
        if state != STATE_LIVE {
            continue;
        }
        if !format::image_is_sound(record, geo) {
            fence(Ordering::Acquire);
            if !table.still_valid(&view.map)? {
                return Ok(Step::Retry);
            }
            return Err(problem(idx, "checksum mismatch"));
        }
        out.keep_slot();
    }
    Ok(Step::Done(()))
}

/// The records a [`scan_range`] read, as whole slot images laid end to end (their lengths and
/// checksums checked): a buffer reused from chunk to chunk, so that a scan copies each slot
/// once, from the map into its place here.
#[derive(Debug)]
pub(crate) struct Scanned {
    geo: Geometry,
    bytes: Vec<u8>,
    /// The bytes of `bytes` that hold records; the rest is room for the next.
    used: usize,
    /// Room for the slot numbers a chunk reads, kept from chunk to chunk.
    to_read: Vec<u64>,
}

impl Scanned {
    pub(crate) fn new(geo: Geometry) -> Self {
        Scanned {
            geo,
            bytes: Vec::new(),
            used: 0,
            to_read: Vec::new(),
        }
    }

    /// Forgets the records, keeping the room.
    pub(crate) fn clear(&mut self) {
        self.used = 0;
    }

    /// The room for the next record (its previous bytes are whatever was there): kept by
    /// [`Self::keep_slot`], overwritten by the next call otherwise.
    fn next_slot(&mut self) -> &mut [u8] {
        let slot_size = self.geo.slot_size;
        if self.bytes.len() < self.used + slot_size {
            // Room for many records at once: growing per record would zero per record.
            let len = (self.used + slot_size)
                .max(self.bytes.len() * 2)
                .max(64 * slot_size);
            self.bytes.resize(len, 0);
        }
        &mut self.bytes[self.used..self.used + slot_size]
    }

    /// Room for `count` more records after those kept, whose bytes are whatever was there;
    /// [`Self::keep_slots`] keeps the first of them.
    fn room_for(&mut self, count: usize) -> &mut [u8] {
        let needed = self.used + count * self.geo.slot_size;
        if self.bytes.len() < needed {
            let len = needed.max(self.bytes.len() * 2);
            self.bytes.resize(len, 0);
        }
        &mut self.bytes[self.used..needed]
    }

    /// Keeps the first `count` records of [`Self::room_for`]'s room.
    fn keep_slots(&mut self, count: usize) {
        self.used = (self.used + count * self.geo.slot_size).min(self.bytes.len());
    }

    /// Forgets the records from number `len` on.
    fn truncate(&mut self, len: usize) {
        self.used = self.used.min(len.saturating_mul(self.geo.slot_size));
    }

    /// Keeps the record [`Self::next_slot`] handed out.
    fn keep_slot(&mut self) {
        self.used += self.geo.slot_size;
    }

    /// How many records it holds.
    pub(crate) fn len(&self) -> usize {
        self.used / self.geo.slot_size
    }

    /// The `(key, value)` pairs it holds, in the order they were read.
    pub(crate) fn records(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.records_from(0)
    }

    /// As [`Self::records`], from record number `first`.
    pub(crate) fn records_from(&self, first: usize) -> impl Iterator<Item = (&[u8], &[u8])> {
        let geo = self.geo;
        let start = first.saturating_mul(geo.slot_size).min(self.used);
        self.bytes[start..self.used]
            .chunks_exact(geo.slot_size)
            .filter_map(move |image| format::record_of(image, &geo))
    }
}
