//! `pblockdb_file`: any bytes as a database file; `pblockdb_model`: operation sequences against
//! a `HashMap`, with reopens.

use std::collections::HashMap;

use crate::bytes::Bytes;

/// Writes `data` as a database file and opens it read-only (verify, iterate, look keys up),
/// then read-write (which may recover or refuse it), then puts, reads back and verifies. Typed
/// errors are fine; a panic, a hang, or a put that reads back wrong is a failure.
pub fn pblockdb_file(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.pdb");
    std::fs::write(&path, data).unwrap();
    if let Ok(db) = pblockdb::Db::open_read_only(&path) {
        let _ = db.verify();
        if let Ok(iter) = db.iter() {
            for (key, _) in iter.take(1 << 16).map_while(Result::ok) {
                let _ = db.get(&key);
            }
        }
        let _ = db.for_each(|_, _| {});
        let _ = db.get(b"k");
        let _ = db.info();
    }
    if let Ok(db) = pblockdb::Db::open(&path) {
        let key = &b"fuzz-key"[..db.key_size().min(8)];
        let value = &b"fuzz-value"[..db.value_size().min(10)];
        if db.put(key, value).is_ok() {
            assert_eq!(
                db.get(key).ok().flatten().as_deref(),
                Some(value),
                "a put read back"
            );
        }
        let _ = db.verify();
        let _ = db.iter().map(|iter| iter.count());
    }
}

/// Keys are one byte of a small alphabet, so that operations collide.
const KEYS: u8 = 24;

/// Interprets `data` as puts, deletes, reads, nested transactions, commits, aborts, snapshots
/// and reopens on a small database (a tiny table and history, so rebuilds and history growth
/// happen often), checked against a `HashMap` model after every step; every snapshot is checked
/// against the model of its moment when it is read.
pub fn pblockdb_model(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pdb");
    let options = pblockdb::DbOptions::new(2, 6).capacity(4).history(64);
    let mut db = options.open(&path).unwrap();
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut bytes = Bytes::new(data);
    let mut ops = 0;
    while !bytes.is_empty() && ops < 256 {
        ops += 1;
        match bytes.byte() % 6 {
            // One put or delete in its own transaction.
            0 | 1 => {
                let key = vec![bytes.byte() % KEYS];
                if bytes.byte() % 3 == 0 {
                    let existed = db.delete(&key).unwrap();
                    assert_eq!(existed, model.remove(&key).is_some(), "delete");
                } else {
                    let value = bytes.slice(6).to_vec();
                    let replaced = db.put(&key, &value).unwrap();
                    assert_eq!(replaced, model.insert(key, value).is_some(), "put");
                }
            }
            // A transaction of several changes, with nested children committed or aborted,
            // committed or aborted whole.
            2 => {
                let mut txn = db.begin_write().unwrap();
                let mut staged = model.clone();
                for _ in 0..bytes.byte() % 8 {
                    let mut child = txn.nested();
                    let mut child_staged = staged.clone();
                    for _ in 0..bytes.byte() % 6 {
                        let key = vec![bytes.byte() % KEYS];
                        if bytes.byte() % 3 == 0 {
                            let existed = child.delete(&key).unwrap();
                            assert_eq!(
                                existed,
                                child_staged.remove(&key).is_some(),
                                "nested delete"
                            );
                        } else {
                            let value = bytes.slice(6).to_vec();
                            let replaced = child.put(&key, &value).unwrap();
                            assert_eq!(
                                replaced,
                                child_staged.insert(key, value).is_some(),
                                "nested put"
                            );
                        }
                    }
                    let key = vec![bytes.byte() % KEYS];
                    assert_eq!(
                        child.get(&key).unwrap(),
                        child_staged.get(&key).cloned(),
                        "nested get"
                    );
                    if bytes.byte() % 2 == 0 {
                        child.commit();
                        staged = child_staged;
                    } else {
                        child.abort();
                    }
                }
                if bytes.byte() % 3 == 0 {
                    txn.abort();
                } else {
                    txn.commit().unwrap();
                    model = staged;
                }
            }
            // A snapshot, written over, then read: it still sees its moment.
            3 => {
                let before = model.clone();
                let snapshot = db.begin_read().unwrap();
                let key = vec![bytes.byte() % KEYS];
                let value = bytes.slice(6).to_vec();
                db.put(&key, &value).unwrap();
                model.insert(key, value);
                for k in 0..KEYS {
                    match snapshot.get(&[k]) {
                        Ok(got) => assert_eq!(got, before.get(&vec![k]).cloned(), "snapshot get"),
                        Err(pblockdb::Error::SnapshotTooOld { .. }) => {}
                        Err(e) => panic!("snapshot read: {e}"),
                    }
                }
            }
            // Reopen.
            4 => {
                drop(db);
                db = pblockdb::Db::open(&path).unwrap();
            }
            // Check everything, iteration included.
            _ => {
                let mut seen: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
                db.for_each(|k, v| {
                    assert!(seen.insert(k.to_vec(), v.to_vec()).is_none(), "a key twice");
                })
                .unwrap();
                assert_eq!(seen, model, "iteration");
                assert_eq!(db.len(), model.len(), "len");
            }
        }
        for k in 0..KEYS {
            assert_eq!(
                db.get(&[k]).unwrap(),
                model.get(&vec![k]).cloned(),
                "get {k}"
            );
        }
    }
    db.verify().unwrap();
}
