//! Recovering the reservation counter at a read-write open, after a power loss left the header
//! page on disk older than ring pages written after it (docs/plog-format.md, "Durability").

use std::sync::atomic::Ordering;

use crate::Result;
use crate::claim::{self, Claim};
use crate::format::WRITE_LIMIT;
use crate::log::LogState;
use crate::reader::Slot;

/// Rings of at most this many bytes are scanned whole at every read-write open: exact whatever
/// order the pages reached the disk in, and about 10 ms at this size with the file in the page
/// cache (docs/plog-format.md, "Recovering the counter").
pub(crate) const FULL_SCAN_BYTES: u64 = 128 << 20;

/// Blocks past the counter probed in a larger ring before deciding whether to scan it whole:
/// at least this many, and at least two pages' worth.
const PROBE_BLOCKS: u64 = 64;
const PROBE_BYTES: u64 = 8192;

/// What recovery found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// The counter when recovery started.
    pub before: u64,
    /// The end (position + blocks) of the newest valid record at or past `before`, if any.
    pub newest_end: Option<u64>,
    /// Whether the whole ring was scanned (rather than only the probe after the counter).
    pub scanned_ring: bool,
    /// Claim words released on the full scan: busy claims of dead processes, and claims
    /// naming a position at or past the counter (no writer was granted it: garbage, or the
    /// remains of a reservation whose record a power loss did not keep).
    pub released: u64,
}

impl LogState {
    /// Raises the reservation counter to the end of the newest fully valid record in the ring
    /// when the counter is behind it; never lowers it. Other processes may already be writing:
    /// their records lie below the live counter, and the raise is a `fetch_max`.
    pub(crate) fn recover_counter(&self) -> Result<Recovery> {
        self.recover_counter_with(FULL_SCAN_BYTES)
    }

    /// [`Self::recover_counter`], scanning the whole ring at once only when it has at most
    /// `full_scan_bytes`; a larger one is scanned only when the probe after the counter finds a
    /// valid record there.
    fn recover_counter_with(&self, full_scan_bytes: u64) -> Result<Recovery> {
        let before = self.next(Ordering::SeqCst);
        let probe_len = PROBE_BLOCKS
            .max(PROBE_BYTES >> self.block_shift)
            .min(self.blocks);
        let full = self.geometry.ring_bytes() <= full_scan_bytes;
        let mut newest_end = None;
        if !full {
            newest_end = self.newest_end_from(before, probe_len);
        }
        let scanned_ring = full || newest_end.is_some();
        if scanned_ring {
            newest_end = self.newest_end_from(before, self.blocks);
        }
        if let Some(end) = newest_end
            && end > before
        {
            self.map
                .atomic_u64(self.counter_off())?
                .fetch_max(end, Ordering::SeqCst);
            // A follower parked at the old counter learns of the recovered records at once.
            self.wake_followers()?;
        }
        let released = if scanned_ring {
            self.release_stale_claims()?
        } else {
            0
        };
        Ok(Recovery {
            before,
            newest_end,
            scanned_ring,
            released,
        })
    }

    /// Releases (to [`Claim::Empty`]) the claim words no live writer can own: busy words of
    /// dead processes, and published words naming a position at or past the counter (read
    /// after the word: a writer publishes only positions it reserved, so such a word was never
    /// written by a writer of this life of the file). Without this, a block whose word names a
    /// future position would turn every writer away from it until the counter passed it.
    fn release_stale_claims(&self) -> Result<u64> {
        let mut released = 0;
        for slot in 0..self.blocks {
            let word = self.claim_word(slot)?;
            let current = word.load(Ordering::Acquire);
            let stale = match Claim::decode(current) {
                Claim::Empty => false,
                Claim::Busy { .. } => {
                    released += u64::from(claim::release_dead(word));
                    false
                }
                Claim::Start(at) | Claim::Cont(at) | Claim::Pad(at) => {
                    at >= self.next(Ordering::SeqCst)
                }
            };
            if stale
                && word
                    .compare_exchange(current, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                released += 1;
            }
        }
        Ok(released)
    }

    /// Looks at the `count` blocks from position `from` on (each ring slot at most once) and
    /// returns the end of the newest record or padding starting at or past `from` that passes
    /// the reader's full validation.
    ///
    /// Only the commit word of each block is loaded; a block is validated only when its commit
    /// word names a position in that block's slot, at or past both `from` and the newest end
    /// found so far, and below [`WRITE_LIMIT`]. Scanning forward from the counter meets the
    /// records of a counter less than a lap behind in increasing order, so each is validated
    /// once and the scan is O(count).
    fn newest_end_from(&self, from: u64, count: u64) -> Option<u64> {
        let mut newest: Option<u64> = None;
        let mut arena = crate::reader::Arena::default();
        for pos in from..from.saturating_add(count.min(self.blocks)) {
            let Ok(word) = self.map.load_u64(self.block_offset(pos), Ordering::Acquire) else {
                continue;
            };
            let Claim::Start(id) = Claim::decode(word) else {
                continue;
            };
            let floor = newest.unwrap_or(from);
            if id < floor || id >= WRITE_LIMIT || self.slot_of(id) != self.slot_of(pos) {
                continue;
            }
            let blocks = match self.probe_slot(id, &mut arena) {
                Slot::Record(_, blocks) => blocks,
                // Torn: writers have since reserved a lap past it, so it cannot be ahead.
                Slot::Pad(_) | Slot::Invalid | Slot::Torn => continue,
            };
            newest = Some(id + blocks);
        }
        newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Level, LogOptions};

    fn log_with(blocks: u64, records: u64) -> (tempfile::TempDir, crate::Log) {
        let dir = tempfile::tempdir().unwrap();
        let log = LogOptions::new()
            .blocks(blocks)
            .block_size(64)
            .open(dir.path().join("r.plog"))
            .unwrap();
        for i in 0..records {
            log.write(Level::Info, "t", format!("{i}")).unwrap();
        }
        (dir, log)
    }

    fn set_counter(log: &crate::Log, value: u64) {
        log.inner
            .map
            .write(crate::format::NEXT_OFF, &value)
            .unwrap();
    }

    #[test]
    fn full_scan_finds_the_newest_record() {
        let (_dir, log) = log_with(256, 300);
        set_counter(&log, 100);
        let recovery = log.inner.recover_counter().unwrap();
        assert_eq!(
            recovery,
            Recovery {
                before: 100,
                newest_end: Some(300),
                scanned_ring: true,
                released: 0,
            }
        );
        assert_eq!(log.inner.next(Ordering::SeqCst), 300);
        // Nothing newer: the counter stays.
        assert_eq!(log.inner.recover_counter().unwrap().newest_end, None);
        assert_eq!(log.inner.next(Ordering::SeqCst), 300);
    }

    #[test]
    fn large_ring_scans_only_when_the_probe_finds_the_counter_behind() {
        let (_dir, log) = log_with(1024, 1500);
        // Not behind: only the probe runs.
        let recovery = log.inner.recover_counter_with(0).unwrap();
        assert_eq!((recovery.newest_end, recovery.scanned_ring), (None, false));
        // Behind by more than the probe's reach: the probe sees the first records past the
        // counter, and the whole ring is scanned.
        set_counter(&log, 1000);
        let recovery = log.inner.recover_counter_with(0).unwrap();
        assert_eq!(
            (recovery.newest_end, recovery.scanned_ring),
            (Some(1500), true)
        );
        assert_eq!(log.inner.next(Ordering::SeqCst), 1500);
    }

    #[test]
    fn large_ring_probe_misses_a_lost_run_after_the_counter() {
        // The documented limit of the probe: when none of the blocks it looks at reached the
        // disk, newer records after them are not found.
        let (_dir, log) = log_with(1024, 1500);
        set_counter(&log, 1000);
        for pos in 1000..1000 + PROBE_BLOCKS.max(PROBE_BYTES >> 6) {
            log.inner
                .map
                .write(log.inner.block_offset(pos), &0u64)
                .unwrap();
        }
        let recovery = log.inner.recover_counter_with(0).unwrap();
        assert_eq!((recovery.newest_end, recovery.scanned_ring), (None, false));
        assert_eq!(log.inner.next(Ordering::SeqCst), 1000);
        // The full scan finds them.
        assert_eq!(log.inner.recover_counter().unwrap().newest_end, Some(1500));
    }
}
