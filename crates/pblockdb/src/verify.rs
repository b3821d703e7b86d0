//! [`Db::verify`]: every slot of the committed state checked against every rule of the format.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use crate::buf::Buf;
use crate::db::Stats;
use crate::format::{
    self, Counts, OFF_HISTORY_HEAD, STATE_EMPTY, STATE_LIVE, STATE_TOMB, SlotHeader,
};
use crate::snapshot::{self, SlotFailure, Step};
use crate::view::View;
use crate::{Db, Result};

/// How many times a read-only `verify` starts again when writers outran its snapshot.
const VERIFY_ATTEMPTS: u32 = 100;

impl Db {
    /// Checks the committed state: every slot's checksum, tag and lengths; every hint against
    /// its slot; that every empty slot holds nothing; that every record is reachable from its
    /// home slot and no key is stored twice; and the header's counts. A writable handle holds
    /// the writer lock, so writers wait until it returns, and a commit a dead writer left
    /// unfinished is rolled back first; a read-only handle takes no lock and checks the
    /// committed state beside writers (its snapshot).
    ///
    /// # Errors
    /// [`crate::Error::CorruptSlot`] or [`crate::Error::CorruptHeader`] describing the first
    /// problem found.
    pub fn verify(&self) -> Result<Stats> {
        if self.read_only {
            return self.verify_committed();
        }
        let lock = self.lock_writer()?;
        let stats = self.verify_committed();
        drop(lock);
        stats
    }

    /// Checks the last commit; beside writers (a read-only handle) a scan that outlives its
    /// snapshot's versions starts again at the newest commit, a bounded number of times.
    fn verify_committed(&self) -> Result<Stats> {
        for _ in 0..VERIFY_ATTEMPTS {
            if let Some(stats) = self.verify_once()? {
                return Ok(stats);
            }
        }
        Err(crate::Error::SnapshotTooOld {
            path: self.path.clone(),
        })
    }

    /// One scan of the last commit; `None` when its snapshot aged out under it.
    fn verify_once(&self) -> Result<Option<Stats>> {
        self.refresh()?;
        let view = self.read_view();
        let (clock, counts) = crate::commit::counts_now(&view.map)?;
        // A rebuild between the view's refresh and the clock: the view's table may end before
        // the clock.
        if !view.is_current()? {
            return Ok(None);
        }
        let head = view.map.load_u64(OFF_HISTORY_HEAD, Ordering::Acquire)?;
        if head < clock {
            return Err(self.header_error("history_head", head));
        }
        let Some(counts) = counts else {
            return Err(self.header_error("counts", clock));
        };
        self.verify_table(&view, clock, &counts)
    }

    fn verify_table(&self, view: &View, clock: u64, counts: &Counts) -> Result<Option<Stats>> {
        let geo = self.geo;
        let table = view.active;
        let slot_error = |failure: SlotFailure| match failure {
            SlotFailure::Slot(problem) => self.corrupt(problem.slot, problem.reason),
            SlotFailure::Other(e) => e,
        };
        let mut stats = Stats {
            capacity: table.capacity,
            history: view.ring.entries,
            clock,
            ..Stats::default()
        };
        let mut image = Buf::zeroed(geo.slot_size);
        let mut current = Buf::zeroed(geo.slot_size);
        let mut states = vec![0u8; usize::try_from(table.capacity).unwrap_or(usize::MAX)];
        let mut seen = HashSet::new();
        for idx in 0..table.capacity {
            let state = match snapshot::version_at(view, &geo, &table, idx, clock, &mut image)
                .map_err(slot_error)?
            {
                Step::Done(state) => state,
                Step::Retry | Step::TooOld => return Ok(None),
            };
            states[idx as usize] = state as u8;
            view.map.read_at(table.slot_at(&geo, idx), &mut current)?;
            let now = SlotHeader::read(&current);
            if !format::is_writing(now.meta) && now.commit <= clock {
                let hint = view.map.load_u32(table.hint_at(idx), Ordering::Acquire)?;
                // A writer beside a read-only verify stores the slot, then the hint: compare
                // only a hint read while the slot stayed as it was.
                let still = view
                    .map
                    .load_u64(table.slot_at(&geo, idx), Ordering::Acquire)?;
                if still == now.meta && hint != format::hint(now.state(), now.tag) {
                    return Err(self.corrupt(idx, "hint does not match the slot"));
                }
            }
            match state {
                STATE_EMPTY if image[8..].iter().any(|&b| b != 0) => {
                    return Err(self.corrupt(idx, "empty slot is not zeroed"));
                }
                STATE_EMPTY => stats.empty += 1,
                STATE_TOMB | STATE_LIVE => {
                    if !format::image_is_sound(&image, &geo) {
                        return Err(self.corrupt(idx, "checksum mismatch"));
                    }
                    if state == STATE_TOMB {
                        stats.tombstones += 1;
                        continue;
                    }
                    let key = format::key_of(&image, &geo).unwrap_or(&[]).to_vec();
                    if !seen.insert(key) {
                        return Err(self.corrupt(idx, "key stored twice"));
                    }
                    stats.live += 1;
                }
                _ => return Err(self.corrupt(idx, "unknown slot state")),
            }
        }
        // Reachable: no empty slot between a record's home slot and the record.
        for idx in 0..table.capacity {
            if u64::from(states[idx as usize]) != STATE_LIVE {
                continue;
            }
            let step = snapshot::version_at(view, &geo, &table, idx, clock, &mut image)
                .map_err(slot_error)?;
            match step {
                Step::Done(STATE_LIVE) => {}
                Step::Retry | Step::TooOld => return Ok(None),
                Step::Done(_) => {
                    return Err(self.corrupt(idx, "a record changed state within one snapshot"));
                }
            }
            let key = format::key_of(&image, &geo).unwrap_or(&[]);
            let mut probe = format::hash_key(key) & table.mask();
            while probe != idx {
                if u64::from(states[probe as usize]) == STATE_EMPTY {
                    return Err(self.corrupt(idx, "unreachable from its home slot"));
                }
                probe = (probe + 1) & table.mask();
            }
        }
        stats.commits = counts.commits;
        // Beside writers, a rebuild may have reused the table under the scan.
        std::sync::atomic::fence(Ordering::Acquire);
        if !table.still_valid(&view.map)? {
            return Ok(None);
        }
        if counts.count != stats.live {
            return Err(self.header_error("count", counts.count));
        }
        if counts.used < stats.live + stats.tombstones {
            return Err(self.header_error("used", counts.used));
        }
        Ok(Some(stats))
    }
}
