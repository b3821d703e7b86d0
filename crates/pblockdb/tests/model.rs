//! Random operation sequences against a `HashMap` model, with reopens and growth in the middle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use pblockdb::{Action, Db, DbOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Get(u8),
    Delete(u8),
    Iterate,
    Reopen,
    BumpOdd,
}

fn op() -> impl Strategy<Value = Op> {
    // Keys from a small range so replaces, deletes of present keys and tombstone reuse happen.
    prop_oneof![
        6 => (0u8..80, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        3 => (0u8..80).prop_map(Op::Get),
        3 => (0u8..80).prop_map(Op::Delete),
        1 => Just(Op::Iterate),
        1 => Just(Op::Reopen),
        1 => Just(Op::BumpOdd),
    ]
}

fn key(k: u8) -> Vec<u8> {
    // Short keys: the database pads them; the model stores them padded.
    vec![k; 1 + usize::from(k % 5)]
}

fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.resize(len, 0);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn matches_a_hashmap(ops in proptest::collection::vec(op(), 1..300)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        // Capacity 1: the table starts at 16 slots and must grow (and rebuild) mid-sequence.
        let mut db = DbOptions::new(6, 3).capacity(1).open(&path).unwrap();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut changes = 0u64;
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let value = vec![v, k, v ^ k];
                    let replaced = db.put(&key(k), &value).unwrap();
                    prop_assert_eq!(replaced, model.insert(padded(&key(k), 6), value).is_some());
                    changes += 1;
                }
                Op::Get(k) => {
                    prop_assert_eq!(db.get(&key(k)).unwrap(), model.get(&padded(&key(k), 6)).cloned());
                }
                Op::Delete(k) => {
                    let removed = db.delete(&key(k)).unwrap();
                    prop_assert_eq!(removed, model.remove(&padded(&key(k), 6)).is_some());
                    changes += u64::from(removed);
                }
                Op::Iterate => {
                    let got: HashMap<Vec<u8>, Vec<u8>> = db.iter().unwrap().collect();
                    prop_assert_eq!(&got, &model);
                }
                Op::Reopen => {
                    drop(db);
                    db = Db::open_existing(&path).unwrap();
                }
                Op::BumpOdd => {
                    // In-place update through the iteration API: bump values of odd keys.
                    let n = db.update_each(|k, v| {
                        if k[0] % 2 == 1 { v[0] = v[0].wrapping_add(1); Action::Update } else { Action::Keep }
                    }).unwrap();
                    let mut expect = 0;
                    for (k, v) in model.iter_mut() {
                        if k[0] % 2 == 1 { v[0] = v[0].wrapping_add(1); expect += 1; }
                    }
                    prop_assert_eq!(n, expect);
                    changes += expect;
                }
            }
            prop_assert_eq!(db.len(), model.len());
        }
        prop_assert_eq!(db.change_count(), changes);
        let stats = db.verify().unwrap();
        prop_assert_eq!(stats.live as usize, model.len());
        drop(db);
        let db = Db::open_read_only(&path).unwrap();
        let got: HashMap<Vec<u8>, Vec<u8>> = db.iter().unwrap().collect();
        prop_assert_eq!(got, model);
    }
}
