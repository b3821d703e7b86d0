//! The two storages of a writable handle (`DbOptions::storage`): `Storage::Write` reads through
//! a read-only mapping and commits by positioned writes; handles of either choice, and
//! read-only handles, share one file through commits, rebuilds, history growth and snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use pblockdb::{Db, DbOptions, Durability, Storage};

fn key(i: u64) -> Vec<u8> {
    format!("key{i}").into_bytes()
}

#[test]
fn write_storage_reads_through_a_read_only_map_and_shares_the_file_with_mapped_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let options = DbOptions::new(16, 24).capacity(16).history(64);
    let mapped = options
        .clone()
        .storage(Storage::Mapped)
        .open(&path)
        .unwrap();
    let write = options
        .storage(Storage::Write)
        .durability(Durability::Synced)
        .open(&path)
        .unwrap();
    let reader = Db::open_read_only(&path).unwrap();
    assert!(mapped.data_map_is_writable());
    assert!(!write.data_map_is_writable());
    assert!(!reader.data_map_is_writable());

    let mut model = BTreeMap::new();
    let snapshot = reader.begin_read().unwrap();
    // Each handle in turn commits a transaction of 20 puts and 5 deletes, past several
    // rebuilds (capacity 16 -> 512) and a history growth (a transaction of 25 changes in a
    // ring of 64 entries); after each, every handle reads the same records.
    for round in 0..12u64 {
        let db = if round % 2 == 0 { &write } else { &mapped };
        db.write(|txn| {
            for i in 0..20 {
                let k = round * 13 + i;
                let v = format!("{round}:{i}").into_bytes();
                txn.put(&key(k), &v)?;
                model.insert(key(k), v);
            }
            for i in 0..5 {
                let k = round * 7 + i;
                txn.delete(&key(k))?;
                model.remove(&key(k));
            }
            Ok(())
        })
        .unwrap();
        for handle in [&write, &mapped, &reader] {
            assert_eq!(
                handle.iter().unwrap().collect::<BTreeMap<_, _>>(),
                model,
                "round {round}"
            );
        }
    }
    assert!(
        write.table_generation().unwrap() >= 2,
        "no rebuild happened"
    );
    // The snapshot taken before any commit is empty, or has aged out: never a mix.
    match snapshot.len() {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert!(matches!(e, pblockdb::Error::SnapshotTooOld { .. }), "{e}"),
    }
    write.set_user_area(b"written by pwrite").unwrap();
    assert_eq!(&mapped.user_area().unwrap()[..17], b"written by pwrite");
    write.flush().unwrap();
    write.verify().unwrap();
    mapped.verify().unwrap();
    drop((write, mapped, reader));
    let db = Db::open(&path).unwrap();
    db.verify().unwrap();
    assert_eq!(db.iter().unwrap().collect::<BTreeMap<_, _>>(), model);
}
