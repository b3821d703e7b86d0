//! The storages of a handle (`DbOptions::storage`): `Storage::Write` reads through a read-only
//! mapping and commits by positioned writes; handles of either choice, and read-only handles,
//! share one file through commits, rebuilds, history growth and snapshots. `Storage::Unmapped`
//! maps nothing, reads a memory copy and is alone with the file; what it wrote opens in every
//! storage, and it opens what they wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use std::time::Duration;

use pblockdb::{Db, DbOptions, Durability, Error, Storage};
use pmap::testing::{ChildExit, fork_and_run, wait_child};

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
                handle
                    .iter()
                    .unwrap()
                    .collect::<Result<BTreeMap<_, _>, _>>()
                    .unwrap(),
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
    assert_eq!(
        db.iter()
            .unwrap()
            .collect::<Result<BTreeMap<_, _>, _>>()
            .unwrap(),
        model
    );
}

/// Whether this process maps `path` (a line of `/proc/self/maps` names it).
fn mapped_here(path: &std::path::Path) -> bool {
    let canonical = path.canonicalize().unwrap();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .any(|line| line.ends_with(canonical.to_str().unwrap()))
}

/// One transaction of `round`: 20 puts and 5 deletes, mirrored in `model`.
fn commit_round(db: &Db, round: u64, model: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
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
}

#[test]
fn unmapped_storage_maps_nothing_and_its_file_opens_in_every_storage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unmapped.db");
    let options = DbOptions::new(16, 24).capacity(16).history(64);
    let mut model = BTreeMap::new();
    {
        let db = options
            .clone()
            .storage(Storage::Unmapped)
            .durability(Durability::Synced)
            .open(&path)
            .unwrap();
        assert!(!mapped_here(&path), "an unmapped handle maps its file");
        // Past rebuilds (capacity 16 -> 512) and a history growth, with an aborted and a
        // nested transaction on the way.
        for round in 0..12u64 {
            commit_round(&db, round, &mut model);
            assert_eq!(
                db.iter()
                    .unwrap()
                    .collect::<Result<BTreeMap<_, _>, _>>()
                    .unwrap(),
                model
            );
        }
        let mut txn = db.begin_write().unwrap();
        txn.put(b"aborted", b"never").unwrap();
        txn.abort();
        db.write(|txn| {
            txn.put(b"parent", b"p")?;
            let mut child = txn.nested();
            child.put(b"child", b"c")?;
            child.commit();
            let mut dropped = txn.nested();
            dropped.put(b"dropped", b"d")?;
            dropped.abort();
            Ok(())
        })
        .unwrap();
        model.insert(b"parent".to_vec(), b"p".to_vec());
        model.insert(b"child".to_vec(), b"c".to_vec());
        assert!(db.table_generation().unwrap() >= 2, "no rebuild happened");
        db.set_user_area(b"from a memory copy").unwrap();
        db.verify().unwrap();
        assert!(!mapped_here(&path), "an unmapped handle mapped its file");
    }
    // The file holds it all: a mapped handle reads it and writes on.
    {
        let db = Db::open(&path).unwrap();
        db.verify().unwrap();
        assert_eq!(
            db.iter()
                .unwrap()
                .collect::<Result<BTreeMap<_, _>, _>>()
                .unwrap(),
            model
        );
        assert_eq!(&db.user_area().unwrap()[..18], b"from a memory copy");
        commit_round(&db, 12, &mut model);
    }
    // And an unmapped reader (sizes adopted) reads what the mapped one wrote.
    let reader = DbOptions::existing()
        .storage(Storage::Unmapped)
        .open_read_only(&path)
        .unwrap();
    assert!(!mapped_here(&path));
    assert_eq!(
        reader
            .iter()
            .unwrap()
            .collect::<Result<BTreeMap<_, _>, _>>()
            .unwrap(),
        model
    );
    assert!(matches!(
        reader.put(b"k", b"v"),
        Err(Error::ReadOnly { .. })
    ));
}

#[test]
fn an_unmapped_handle_is_alone_with_its_file_and_a_second_handle_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alone.db");
    let unmapped = DbOptions::new(16, 24).storage(Storage::Unmapped);
    let db = unmapped.open(&path).unwrap();
    db.put(b"k", b"v").unwrap();
    // Every other handle, in this thread, is refused at once rather than waiting or reading a
    // file it would not see change.
    assert!(matches!(Db::open(&path), Err(Error::InUse { .. })));
    assert!(matches!(
        Db::open_read_only(&path),
        Err(Error::InUse { .. })
    ));
    assert!(matches!(unmapped.open(&path), Err(Error::InUse { .. })));
    assert!(matches!(
        DbOptions::new(16, 24).storage(Storage::Write).open(&path),
        Err(Error::InUse { .. })
    ));
    drop(db);
    // And the other way round.
    let mapped = Db::open(&path).unwrap();
    assert!(matches!(unmapped.open(&path), Err(Error::InUse { .. })));
    assert!(matches!(
        DbOptions::existing()
            .storage(Storage::Unmapped)
            .open_read_only(&path),
        Err(Error::InUse { .. })
    ));
    assert_eq!(mapped.get(b"k").unwrap(), Some(b"v".to_vec()));
    drop(mapped);
    let db = unmapped.open(&path).unwrap();
    assert_eq!(db.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn unmapped_snapshots_hold_an_invariant_while_another_thread_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sum.db");
    let db = DbOptions::new(8, 8)
        .history(4096)
        .storage(Storage::Unmapped)
        .open(&path)
        .unwrap();
    let amount = |v: Option<Vec<u8>>| u64::from_le_bytes(v.unwrap().try_into().unwrap());
    db.write(|txn| {
        txn.put(b"a", &500u64.to_le_bytes())?;
        txn.put(b"b", &500u64.to_le_bytes())
    })
    .unwrap();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            // Moves one unit from one key to the other in each transaction.
            for i in 0..2_000u64 {
                db.write(|txn| {
                    let a = amount(txn.get(b"a")?);
                    let b = amount(txn.get(b"b")?);
                    let (a, b) = if i % 2 == 0 {
                        (a - 1, b + 1)
                    } else {
                        (a + 1, b - 1)
                    };
                    txn.put(b"a", &a.to_le_bytes())?;
                    txn.put(b"b", &b.to_le_bytes())
                })
                .unwrap();
            }
        });
        let mut reads = 0u64;
        while !writer.is_finished() || reads < 1000 {
            let txn = db.begin_read().unwrap();
            let sum = amount(txn.get(b"a").unwrap()) + amount(txn.get(b"b").unwrap());
            assert_eq!(sum, 1000, "a read transaction saw a mixed state");
            reads += 1;
        }
    });
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(
        amount(db.get(b"a").unwrap()) + amount(db.get(b"b").unwrap()),
        1000
    );
}

#[test]
fn an_unmapped_handle_refuses_to_write_in_a_forked_child_and_the_parent_writes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forked.db");
    let db = DbOptions::new(16, 24)
        .storage(Storage::Unmapped)
        .open(&path)
        .unwrap();
    db.put(b"before", b"fork").unwrap();
    let pid = fork_and_run(|| {
        // The child reads its copy of the state as of the fork; its writes are refused.
        let read = db.get(b"before").ok().flatten() == Some(b"fork".to_vec());
        let refused = matches!(db.put(b"child", b"x"), Err(Error::UnmappedForked { .. }));
        match (read, refused) {
            (true, true) => 0,
            (false, _) => 1,
            (true, false) => 2,
        }
    })
    .unwrap();
    let exit = wait_child(pid, Duration::from_secs(30)).unwrap();
    assert_eq!(exit, Some(ChildExit::Code(0)));
    db.put(b"after", b"fork").unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(db.get(b"child").unwrap(), None);
    assert_eq!(db.get(b"after").unwrap(), Some(b"fork".to_vec()));
}

#[test]
fn a_mapped_handle_writes_in_a_forked_child_and_the_parent_reads_what_it_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forked_mapped.db");
    let db = DbOptions::new(16, 24).capacity(64).open(&path).unwrap();
    db.put(b"before", b"fork").unwrap();
    let pid = fork_and_run(|| {
        let read = db.get(b"before").ok().flatten() == Some(b"fork".to_vec());
        let wrote = db
            .write(|txn| {
                txn.put(b"child", b"x")?;
                txn.delete(b"before")?;
                Ok(())
            })
            .is_ok();
        match (read, wrote) {
            (true, true) => 0,
            (false, _) => 1,
            (true, false) => 2,
        }
    })
    .unwrap();
    let exit = wait_child(pid, Duration::from_secs(30)).unwrap();
    assert_eq!(exit, Some(ChildExit::Code(0)));
    // The child's transaction is in the shared file: the parent's handle reads it.
    assert_eq!(db.get(b"child").unwrap(), Some(b"x".to_vec()));
    assert_eq!(db.get(b"before").unwrap(), None);
    db.put(b"after", b"fork").unwrap();
    db.verify().unwrap();
}

/// A fork while another thread of the parent holds the handle's write transaction: that thread
/// does not exist in the child, so the handle's writer mutex, locked at the fork, is never
/// unlocked there. The child's write is refused with a typed error instead of waiting forever.
#[test]
fn a_forked_child_refuses_to_write_when_a_parent_thread_held_the_write_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forked_holder.db");
    let db = std::sync::Arc::new(DbOptions::new(16, 24).capacity(64).open(&path).unwrap());
    db.put(b"before", b"fork").unwrap();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut txn = db.begin_write().unwrap();
            txn.put(b"parent", b"1").unwrap();
            held_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            txn.commit().unwrap();
        })
    };
    held_rx.recv().unwrap();
    let pid = fork_and_run(|| {
        let refused = matches!(
            db.put(b"child", b"z"),
            Err(Error::ForkedWhileWriting { .. })
        );
        // Reads need no writer: they go on.
        let read = db.get(b"before").ok().flatten() == Some(b"fork".to_vec());
        match (refused, read) {
            (true, true) => 0,
            (false, _) => 1,
            (true, false) => 2,
        }
    })
    .unwrap();
    // A hung child is killed after the timeout and reported as `None`.
    let exit = wait_child(pid, Duration::from_secs(20)).unwrap();
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(exit, Some(ChildExit::Code(0)));
    assert_eq!(db.get(b"parent").unwrap(), Some(b"1".to_vec()));
    assert_eq!(db.get(b"child").unwrap(), None);
    db.verify().unwrap();
}

/// A fork inside a write transaction: the child's copy of the transaction is the parent's, so
/// committing it there would apply the transaction twice, and dropping it there would release
/// the writer lock the parent still holds (its word, and its mark on the shared open file
/// description). The child's commit is refused, its drop releases nothing, and another writer
/// waits for the parent's commit.
#[test]
fn a_write_transaction_inherited_by_a_forked_child_neither_commits_nor_unlocks_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forked_txn.db");
    let db = DbOptions::new(16, 24).capacity(64).open(&path).unwrap();
    let mut txn = db.begin_write().unwrap();
    txn.put(b"parent", b"1").unwrap();
    let mut inherited = Some(txn);
    let pid = fork_and_run(|| {
        let Some(mut txn) = inherited.take() else {
            return 3;
        };
        let staged = txn.put(b"child", b"2").is_ok();
        // Refused, and dropped on the way out (the drop must release nothing).
        let refused = matches!(txn.commit(), Err(Error::ForkedWhileWriting { .. }));
        match (staged, refused) {
            (true, true) => 0,
            (false, _) => 1,
            (true, false) => 2,
        }
    })
    .unwrap();
    let exit = wait_child(pid, Duration::from_secs(30)).unwrap();
    assert_eq!(exit, Some(ChildExit::Code(0)));
    // Another process's writer must still find the lock held: its put cannot finish while the
    // parent's transaction is open (the child is killed when the wait runs out).
    let intruder = fork_an_intruding_writer(&path);
    let intruded = wait_child(intruder, Duration::from_secs(2)).unwrap();
    assert_eq!(intruded, None, "a writer took the lock the parent holds");
    let Some(txn) = inherited.take() else {
        unreachable!("the parent's transaction is its own");
    };
    txn.commit().unwrap();
    assert_eq!(db.get(b"parent").unwrap(), Some(b"1".to_vec()));
    assert_eq!(db.get(b"child").unwrap(), None);
    assert_eq!(db.get(b"intruder").unwrap(), None);
    assert_eq!(db.verify().unwrap().commits, 1);
}

/// Forks, from a thread of its own (one that holds no lock, so that the child is any other
/// writer), a process that opens `path` and puts one key; its pid.
fn fork_an_intruding_writer(path: &std::path::Path) -> u32 {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                fork_and_run(|| {
                    let Ok(other) = Db::open(path) else {
                        return 1;
                    };
                    if other.put(b"intruder", b"3").is_ok() {
                        0
                    } else {
                        2
                    }
                })
            })
            .join()
            .unwrap()
    })
    .unwrap()
}

/// A forked child that drops its copy of a handle (returning through its destructors) shares
/// the parent's open file descriptions: an unlock there would release the parent's liveness
/// mark, and a writer elsewhere would then take the parent's writer word as a dead writer's
/// and roll back its commit under it.
#[test]
fn a_forked_child_dropping_its_copy_of_the_handle_leaves_the_parents_writer_lock_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forked_drop.db");
    let mut copy = Some(DbOptions::new(16, 24).capacity(64).open(&path).unwrap());
    let pid = fork_and_run(|| {
        drop(copy.take());
        0
    })
    .unwrap();
    assert_eq!(
        wait_child(pid, Duration::from_secs(30)).unwrap(),
        Some(ChildExit::Code(0))
    );
    let Some(db) = copy else {
        unreachable!("the parent's handle is its own");
    };
    let mut txn = db.begin_write().unwrap();
    txn.put(b"parent", b"1").unwrap();
    let intruder = fork_an_intruding_writer(&path);
    let intruded = wait_child(intruder, Duration::from_secs(2)).unwrap();
    assert_eq!(intruded, None, "a writer took the lock the parent holds");
    txn.commit().unwrap();
    assert_eq!(db.get(b"parent").unwrap(), Some(b"1".to_vec()));
    assert_eq!(db.get(b"intruder").unwrap(), None);
    db.verify().unwrap();
}

/// A child writing through an inherited handle must hold a liveness mark of its own: the
/// parent's mark dies with the parent's handle (its drop releases it, in the parent's process),
/// and a writer word naming a dead mark is taken over, and its commit rolled back, by the next
/// writer. Here the parent closes its handle while the child holds a transaction.
#[test]
fn a_forked_child_writing_after_its_parent_closed_the_handle_keeps_its_lock() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forked_parent_closes.db");
    let mut handle = Some(DbOptions::new(16, 24).capacity(64).open(&path).unwrap());
    let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();
    let pid = fork_and_run(|| {
        let Some(db) = handle.as_ref() else {
            return 1;
        };
        let Ok(mut txn) = db.begin_write() else {
            return 2;
        };
        if txn.put(b"child", b"1").is_err() {
            return 3;
        }
        // Holding the lock: tell the parent, and wait until it says go on.
        let mut go = [0u8];
        if child_end.write_all(b"h").is_err() || child_end.read_exact(&mut go).is_err() {
            return 4;
        }
        if txn.commit().is_err() { 5 } else { 0 }
    })
    .unwrap();
    let mut held = [0u8];
    parent_end.read_exact(&mut held).unwrap();
    drop(handle.take());
    let intruder = fork_an_intruding_writer(&path);
    let intruded = wait_child(intruder, Duration::from_secs(2)).unwrap();
    parent_end.write_all(b"g").unwrap();
    let exit = wait_child(pid, Duration::from_secs(30)).unwrap();
    assert_eq!(intruded, None, "a writer took the lock the child holds");
    assert_eq!(exit, Some(ChildExit::Code(0)));
    let db = Db::open(&path).unwrap();
    assert_eq!(db.get(b"child").unwrap(), Some(b"1".to_vec()));
    assert_eq!(db.get(b"intruder").unwrap(), None);
    db.verify().unwrap();
}
