//! Which chunks of a table a handle's scans found sound, and at which commit: so that a scan
//! checks each record's checksum once per state of the table, not once per read.
//!
//! The argument (`docs/pblockdb-format.md`, "Snapshots"): a chunk scanned on the unchanged
//! path (the history head equal to the snapshot's clock before and after the copies) was read
//! from bytes no writer touched during the scan; every writer (a commit, a recovery) stores a
//! new history head before it touches a slot of a published table, and the head never comes
//! back to an old value; a rebuild writes only a table of a new generation. So while the head
//! still equals that clock and the table's generation is the same, the chunk's bytes are the
//! ones whose checksums passed, and a later scan on the unchanged path may trust them. After
//! commits, the marks move to the new clock but for the chunks the commits' history entries
//! name ([`CheckedChunks::advance`]).
//! Bytes changed behind pounds' back (another program writing into the file) are outside that
//! argument: a handle's scans find them after the next commit to their chunk, lookups at
//! once.

use crate::Result;
use crate::buf::Buf;
use crate::format::Geometry;
use crate::history::{Entry, read_entry};
use crate::view::View;

/// Slots a scan reads at a time, and a mark covers.
pub(crate) const CHUNK_SLOTS: u64 = 4096;

/// The most history entries [`CheckedChunks::advance`] reads to carry marks forward; past it
/// the marks are dropped (checking the table again costs less than reading so many entries,
/// at about 50 ns an entry against a few ns a slot).
const MOST_ENTRIES: u64 = 1024;

/// The chunks of one table found sound at one clock, as a bit set; marks for another table or
/// clock replace them all.
#[derive(Debug, Default)]
pub(crate) struct CheckedChunks {
    /// The table generation and the clock (equal to the history head then) the marks hold for.
    at: Option<(u64, u64)>,
    /// Bit `c % 64` of word `c / 64`: chunk `c` was found sound.
    sound: Vec<u64>,
}

impl CheckedChunks {
    /// Whether chunk `chunk` of table `generation` was found sound at `clock`.
    pub(crate) fn holds(&self, generation: u64, clock: u64, chunk: u64) -> bool {
        self.at == Some((generation, clock))
            && usize::try_from(chunk / 64)
                .ok()
                .and_then(|word| self.sound.get(word))
                .is_some_and(|word| word & (1 << (chunk % 64)) != 0)
    }

    /// Carries the marks of table `generation` forward to the later `clock`: the slots the
    /// commits since rewrote are the ones their history entries name (a commit saves an entry
    /// for every slot it rewrites before it touches any, numbered by the clock it moves
    /// through, and a recovery restores only slots the entries of the commit it rolls back
    /// name), so the marks of their chunks are dropped and the rest still hold. Every marked
    /// entry must be read whole and belong to this table: one that is gone (the ring lapped
    /// it), damaged or of another table drops every mark, as do more than [`MOST_ENTRIES`].
    /// The entries below `clock` are all whole once `clock` is committed (a commit publishes
    /// after its entries). Marks of another table, or of a later clock, are left as they are.
    pub(crate) fn advance(
        &mut self,
        view: &View,
        geo: &Geometry,
        generation: u64,
        clock: u64,
    ) -> Result<()> {
        let Some((marked_generation, marked_clock)) = self.at else {
            return Ok(());
        };
        if marked_generation != generation || clock <= marked_clock {
            return Ok(());
        }
        if clock - marked_clock > MOST_ENTRIES {
            self.forget();
            return Ok(());
        }
        let mut image = Buf::zeroed(geo.slot_size);
        for number in marked_clock..clock {
            match read_entry(view, geo, number, &mut image)? {
                Entry::Found {
                    slot,
                    generation: of,
                } if of == generation => {
                    self.unmark(slot / CHUNK_SLOTS);
                }
                Entry::Found { .. } | Entry::Gone | Entry::Damaged => {
                    self.forget();
                    return Ok(());
                }
            }
        }
        self.at = Some((generation, clock));
        Ok(())
    }

    /// Drops every mark.
    fn forget(&mut self) {
        self.at = None;
        self.sound.clear();
    }

    /// Drops the mark of chunk `chunk`.
    fn unmark(&mut self, chunk: u64) {
        if let Some(word) = usize::try_from(chunk / 64)
            .ok()
            .and_then(|word| self.sound.get_mut(word))
        {
            *word &= !(1 << (chunk % 64));
        }
    }

    /// Marks chunk `chunk` of table `generation` found sound at `clock`, forgetting the marks
    /// of any other table or clock.
    pub(crate) fn mark(&mut self, generation: u64, clock: u64, chunk: u64) {
        if self.at != Some((generation, clock)) {
            self.at = Some((generation, clock));
            self.sound.clear();
        }
        let Ok(word) = usize::try_from(chunk / 64) else {
            return;
        };
        if self.sound.len() <= word {
            self.sound.resize(word + 1, 0);
        }
        self.sound[word] |= 1 << (chunk % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::CheckedChunks;

    #[test]
    fn marks_hold_for_their_table_and_clock_only() {
        let mut checked = CheckedChunks::default();
        assert!(!checked.holds(1, 5, 0));
        checked.mark(1, 5, 0);
        checked.mark(1, 5, 130);
        assert!(checked.holds(1, 5, 0) && checked.holds(1, 5, 130));
        assert!(!checked.holds(1, 5, 1) && !checked.holds(1, 5, 129));
        assert!(!checked.holds(1, 6, 0), "another clock");
        assert!(!checked.holds(2, 5, 0), "another table");
        checked.mark(1, 6, 1);
        assert!(checked.holds(1, 6, 1));
        assert!(
            !checked.holds(1, 5, 0) && !checked.holds(1, 6, 0),
            "older marks forgotten"
        );
    }
}
