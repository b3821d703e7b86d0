//! A model of the ring predicts which records survive any sequence of writes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use plog::{Error, Level, LogOptions};
use proptest::prelude::*;

/// The writer's placement rule, single-threaded: reserve `blocks`; if that would straddle the
/// ring's end, the reservation becomes padding and the writer reserves again.
struct Model {
    blocks: u64,
    next: u64,
    records: Vec<(u64, Vec<u8>)>,
}

impl Model {
    fn write(&mut self, need: u64, payload: Vec<u8>) -> u64 {
        loop {
            let pos = self.next;
            self.next += need;
            if pos % self.blocks + need <= self.blocks {
                self.records.push((pos, payload));
                return pos;
            }
        }
    }

    fn survivors(&self) -> Vec<(u64, Vec<u8>)> {
        let oldest = self.next.saturating_sub(self.blocks);
        self.records
            .iter()
            .filter(|(pos, _)| *pos >= oldest)
            .cloned()
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_model_predicts_survivors(
        blocks in 2u64..40,
        shift in 6u32..8,
        sizes in prop::collection::vec(0usize..600, 1..120),
        from in 0u64..400,
    ) {
        let block_size = 1u32 << shift;
        let dir = tempfile::tempdir().unwrap();
        let log = LogOptions::new().blocks(blocks).block_size(block_size).open(dir.path().join("m")).unwrap();
        let mut model = Model { blocks, next: 0, records: vec![] };
        // Format 2: every block starts with an 8-byte claim word; a record's content (its
        // 32 header bytes after the first claim word, tag, payload) fills the rest of each.
        let room = block_size as usize - 8;
        let max_content = (blocks / 2) as usize * room;
        for (i, size) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..*size).map(|j| (i * 31 + j) as u8).collect();
            let need = (32 + size).div_ceil(room) as u64;
            match log.write(Level::Info, "", &payload) {
                Ok(id) => {
                    prop_assert!(32 + size <= max_content);
                    prop_assert_eq!(id, model.write(need, payload));
                }
                Err(Error::MessageTooLarge { size: s, max }) => {
                    prop_assert!(32 + size > max_content);
                    prop_assert_eq!((s, max), (*size, max_content - 32));
                }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
        }
        let got: Vec<(u64, Vec<u8>)> = log.reader().map(|r| (r.id, r.payload)).collect();
        prop_assert_eq!(&got, &model.survivors());
        prop_assert_eq!(log.stats().next_id, model.next);
        prop_assert_eq!(log.stats().oldest_id, model.survivors().first().map(|r| r.0));
        let expected_from: Vec<u64> = model.survivors().iter().map(|r| r.0).filter(|&id| id >= from).collect();
        prop_assert_eq!(log.reader_from(from).map(|r| r.id).collect::<Vec<_>>(), expected_from);
    }
}
