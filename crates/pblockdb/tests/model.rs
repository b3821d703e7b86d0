//! Random operation sequences against a `HashMap` model: single operations, transactions
//! committed and aborted, nested transactions, snapshots read later, reopens and growth in the
//! middle; the handle that writes uses any storage (`Storage::Mapped`, `Storage::Write` or
//! `Storage::Unmapped`), the one that takes snapshots the default (an unmapped handle is alone
//! with its file, so with it no snapshots are taken here: `tests/storage.rs` holds its
//! snapshots to account).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use pblockdb::{Db, DbOptions, Storage, WriteTxn};
use proptest::prelude::*;

type Model = HashMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Get(u8),
    Delete(u8),
    Iterate,
    Reopen,
    /// A transaction of these changes, then a nested child of those, each committed or not.
    Txn {
        changes: Vec<(u8, Option<u8>)>,
        child: Vec<(u8, Option<u8>)>,
        commit_child: bool,
        commit: bool,
    },
    /// Take a snapshot now; it is checked against the model of now at the end.
    Snapshot,
}

fn change() -> impl Strategy<Value = (u8, Option<u8>)> {
    (0u8..80, proptest::option::of(any::<u8>()))
}

fn op() -> impl Strategy<Value = Op> {
    // Keys from a small range so replaces, deletes of present keys and tombstone reuse happen.
    prop_oneof![
        6 => (0u8..80, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        3 => (0u8..80).prop_map(Op::Get),
        3 => (0u8..80).prop_map(Op::Delete),
        1 => Just(Op::Iterate),
        1 => Just(Op::Reopen),
        2 => (
            proptest::collection::vec(change(), 0..12),
            proptest::collection::vec(change(), 0..6),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(changes, child, commit_child, commit)| Op::Txn {
                changes,
                child,
                commit_child,
                commit,
            }),
        1 => Just(Op::Snapshot),
    ]
}

/// Keys of different lengths, including the empty key and one that is another plus a zero.
fn key(k: u8) -> Vec<u8> {
    match k {
        0 => Vec::new(),
        1 => vec![2, 0],
        _ => vec![k; 1 + usize::from(k % 5)],
    }
}

fn value(k: u8, v: u8) -> Vec<u8> {
    vec![v, k, v ^ k][..usize::from(v % 4)].to_vec()
}

fn apply(txn: &mut WriteTxn<'_>, model: &mut Model, changes: &[(u8, Option<u8>)]) {
    for &(k, v) in changes {
        match v {
            Some(v) => {
                let replaced = txn.put(&key(k), &value(k, v)).unwrap();
                assert_eq!(replaced, model.insert(key(k), value(k, v)).is_some());
            }
            None => {
                let removed = txn.delete(&key(k)).unwrap();
                assert_eq!(removed, model.remove(&key(k)).is_some());
            }
        }
        assert_eq!(txn.get(&key(k)).unwrap(), model.get(&key(k)).cloned());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn matches_a_hashmap(
        ops in proptest::collection::vec(op(), 1..300),
        storage in prop_oneof![Just(Storage::Mapped), Just(Storage::Write), Just(Storage::Unmapped)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        // Capacity 1: the table starts at 16 slots and must grow (and rebuild) mid-sequence.
        // A large history, so every snapshot taken stays readable.
        let options = DbOptions::new(6, 3).capacity(1).history(1 << 14).storage(storage);
        let mut db = options.open(&path).unwrap();
        let mut model = Model::new();
        // Snapshots through a second handle, which is never reopened (none beside an
        // unmapped handle, which is alone with the file).
        let reader = (storage != Storage::Unmapped).then(|| Db::open(&path).unwrap());
        let mut snapshots = Vec::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let replaced = db.put(&key(k), &value(k, v)).unwrap();
                    prop_assert_eq!(replaced, model.insert(key(k), value(k, v)).is_some());
                }
                Op::Get(k) => {
                    prop_assert_eq!(db.get(&key(k)).unwrap(), model.get(&key(k)).cloned());
                }
                Op::Delete(k) => {
                    let removed = db.delete(&key(k)).unwrap();
                    prop_assert_eq!(removed, model.remove(&key(k)).is_some());
                }
                Op::Iterate => {
                    let got: Model = db.iter().unwrap().collect::<Result<_, _>>().unwrap();
                    prop_assert_eq!(&got, &model);
                }
                Op::Reopen => {
                    drop(db);
                    db = options.open(&path).unwrap();
                }
                Op::Txn { changes, child, commit_child, commit } => {
                    let mut txn = db.begin_write().unwrap();
                    let mut inner = model.clone();
                    apply(&mut txn, &mut inner, &changes);
                    {
                        let mut nested = txn.nested();
                        let mut child_model = inner.clone();
                        apply(&mut nested, &mut child_model, &child);
                        if commit_child {
                            nested.commit();
                            inner = child_model;
                        } else {
                            nested.abort();
                        }
                    }
                    let seen: Model = txn.iter().unwrap().collect::<Result<_, _>>().unwrap();
                    prop_assert_eq!(&seen, &inner);
                    if commit {
                        txn.commit().unwrap();
                        model = inner;
                    } else {
                        txn.abort();
                    }
                }
                Op::Snapshot => {
                    if let Some(reader) = &reader {
                        let generation = reader.table_generation().unwrap();
                        snapshots.push((reader.begin_read().unwrap(), generation, model.clone()));
                    }
                }
            }
            prop_assert_eq!(db.len(), model.len());
        }
        // Every snapshot still reads the state it was taken at, key by key and whole. Once two
        // rebuilds passed since, it may have aged out (unless the table built at its clock is
        // still there): then every read says so, and none reads a mixed state.
        let generation = db.table_generation().unwrap();
        for (snapshot, taken_at, then) in &snapshots {
            let got = match snapshot.iter().and_then(|pairs| pairs.collect::<pblockdb::Result<Model>>()) {
                Ok(pairs) => pairs,
                Err(pblockdb::Error::SnapshotTooOld { .. }) if generation >= taken_at + 2 => {
                    let again = snapshot.get(&key(3));
                    prop_assert!(matches!(again, Err(pblockdb::Error::SnapshotTooOld { .. })), "{:?}", again);
                    continue;
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            };
            prop_assert_eq!(&got, then);
            for k in 0..80u8 {
                prop_assert_eq!(snapshot.get(&key(k)).unwrap(), then.get(&key(k)).cloned());
            }
        }
        drop(snapshots);
        drop(reader);
        let stats = db.verify().unwrap();
        prop_assert_eq!(stats.live as usize, model.len());
        drop(db);
        let db = Db::open_read_only(&path).unwrap();
        let got: Model = db.iter().unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got, model);
    }
}
