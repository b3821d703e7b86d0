//! Which chunks of a table a handle's scans found sound, and at which commit: so that a scan
//! checks each record's checksum once per state of the table, not once per read.
//!
//! The argument (`docs/pblockdb-format.md`, "Snapshots"): a chunk scanned on the unchanged
//! path (the history head equal to the snapshot's clock before and after the copies) was read
//! from bytes no writer touched during the scan; every writer (a commit, a recovery) stores a
//! new history head before it touches a slot of a published table, and the head never comes
//! back to an old value; a rebuild writes only a table of a new generation. So while the head
//! still equals that clock and the table's generation is the same, the chunk's bytes are the
//! ones whose checksums passed, and a later scan on the unchanged path may trust them.
//! Bytes changed behind pounds' back (another program writing into the file) are outside that
//! argument: a handle's scans find them after the next commit, lookups at once.

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
