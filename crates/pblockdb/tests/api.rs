//! Unit tests of every operation and every error of the public API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pblockdb::codec::{U64, ZeroCopy};
use pblockdb::{Db, DbOptions, Durability, Error, TypedDb};

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    (dir, path)
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.to_le_bytes());
    k[8..].copy_from_slice(b"key-pad!");
    k
}

fn value(i: u64, round: u64) -> [u8; 64] {
    let mut v = [0u8; 64];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v[8..16].copy_from_slice(&round.to_le_bytes());
    v
}

fn write_bytes(path: &Path, at: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn put_get_replace_delete() {
    let (_dir, path) = temp();
    let db = DbOptions::new(16, 64).capacity(10).open(&path).unwrap();
    assert!(db.is_empty());
    assert_eq!(db.get(&key(1)).unwrap(), None);
    assert!(!db.put(&key(1), &value(1, 0)).unwrap());
    assert!(db.put(&key(1), &value(1, 1)).unwrap());
    assert_eq!(db.get(&key(1)).unwrap().unwrap(), value(1, 1));
    assert!(db.contains(&key(1)).unwrap());
    assert_eq!(db.len(), 1);
    assert_eq!(db.get_with(&key(1), |v| v[8]).unwrap(), Some(1));
    assert_eq!(db.get_with(&key(2), |v| v[8]).unwrap(), None);
    assert!(db.delete(&key(1)).unwrap());
    assert!(!db.delete(&key(1)).unwrap());
    assert!(!db.contains(&key(1)).unwrap());
    assert_eq!(db.len(), 0);
    // A deleted key can come back (into its tombstone).
    assert!(!db.put(&key(1), &value(1, 2)).unwrap());
    assert_eq!(db.get(&key(1)).unwrap().unwrap(), value(1, 2));
    assert_eq!(
        db.commit_count(),
        4,
        "a delete that found nothing commits nothing"
    );
    db.flush().unwrap();
    assert_eq!(db.verify().unwrap().live, 1);
}

/// Keys and values come back exactly as stored: `"a"`, `"a\0"` and the empty key are three
/// keys (format 1 padded them into one).
#[test]
fn keys_and_values_round_trip_exactly_long_ones_refused() {
    let (_dir, path) = temp();
    let db = DbOptions::new(8, 4).open(&path).unwrap();
    db.put(b"a", b"xy").unwrap();
    db.put(b"a\0", b"").unwrap();
    db.put(b"", b"e\0").unwrap();
    assert_eq!(db.get(b"a").unwrap().unwrap(), b"xy");
    assert_eq!(db.get(b"a\0").unwrap().unwrap(), b"");
    assert_eq!(db.get(b"").unwrap().unwrap(), b"e\0");
    assert_eq!(db.get(b"a\0\0").unwrap(), None);
    assert_eq!(db.len(), 3);
    let mut keys: Vec<Vec<u8>> = db.iter().unwrap().map(|r| r.unwrap().0).collect();
    keys.sort();
    assert_eq!(keys, vec![b"".to_vec(), b"a".to_vec(), b"a\0".to_vec()]);
    db.put(b"12345678", b"1234").unwrap();
    assert_eq!(db.get(b"12345678").unwrap().unwrap(), b"1234");
    assert!(matches!(
        db.put(b"123456789", b"v"),
        Err(Error::KeySize {
            given: 9,
            expected: 8
        })
    ));
    assert!(matches!(
        db.put(b"k", b"12345"),
        Err(Error::ValueSize {
            given: 5,
            expected: 4
        })
    ));
    assert!(matches!(db.get(b"123456789"), Err(Error::KeySize { .. })));
    assert!(matches!(
        db.delete(b"123456789"),
        Err(Error::KeySize { .. })
    ));
    assert_eq!(db.len(), 4, "failed writes stored nothing");
    db.verify().unwrap();
}

#[test]
fn zero_sized_values_make_a_set() {
    let (_dir, path) = temp();
    let db = DbOptions::new(4, 0).open(&path).unwrap();
    db.put(b"one", b"").unwrap();
    assert_eq!(db.get(b"one").unwrap(), Some(vec![]));
    assert!(db.contains(b"one").unwrap());
    assert!(!db.contains(b"two").unwrap());
    assert_eq!(db.iter().unwrap().map(Result::unwrap).count(), 1);
}

#[test]
fn reopen_adopts_geometry_and_rejects_a_different_one() {
    let (_dir, path) = temp();
    {
        let db = DbOptions::new(16, 64).capacity(100).open(&path).unwrap();
        db.put(&key(7), &value(7, 0)).unwrap();
    }
    let db = Db::open(&path).unwrap();
    assert_eq!((db.key_size(), db.value_size()), (16, 64));
    assert_eq!(db.get(&key(7)).unwrap().unwrap(), value(7, 0));
    let cap = db.capacity().unwrap();
    // Same geometry, a different capacity: adopts the file's capacity.
    let again = DbOptions::new(16, 64)
        .capacity(100_000)
        .open(&path)
        .unwrap();
    assert_eq!(again.capacity().unwrap(), cap);
    match DbOptions::new(16, 32).open(&path) {
        Err(Error::GeometryMismatch {
            asked_key: 16,
            asked_value: 32,
            found_key: 16,
            found_value: 64,
            ..
        }) => {}
        other => panic!("expected a geometry mismatch, got {other:?}"),
    }
}

#[test]
fn invalid_geometry_is_refused() {
    let (_dir, path) = temp();
    assert!(matches!(
        DbOptions::new(0, 8).open(&path),
        Err(Error::InvalidGeometry {
            what: "key_size",
            ..
        })
    ));
    assert!(matches!(
        DbOptions::new(8, pblockdb::MAX_VALUE_SIZE + 1).open(&path),
        Err(Error::InvalidGeometry {
            what: "value_size",
            ..
        })
    ));
    assert!(matches!(
        DbOptions::new(8, 8).capacity(u64::MAX).open(&path),
        Err(Error::InvalidGeometry {
            what: "capacity",
            ..
        })
    ));
    assert!(!path.exists(), "nothing created");
}

#[test]
fn missing_directory_and_read_only_errors() {
    let (dir, path) = temp();
    assert!(matches!(
        Db::open(&path),
        Err(Error::Map(pmap::Error::NotFound { .. }))
    ));
    assert!(matches!(
        Db::open_read_only(&path),
        Err(Error::Map(pmap::Error::NotFound { .. }))
    ));
    assert!(matches!(
        DbOptions::new(8, 8).open(dir.path()),
        Err(Error::Map(pmap::Error::IsDirectory { .. }))
    ));
    let db = DbOptions::new(8, 8).open(&path).unwrap();
    db.put(b"k", b"v").unwrap();
    db.set_user_area(b"hello").unwrap();
    drop(db);
    let ro = Db::open_read_only(&path).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.get(b"k").unwrap().unwrap(), b"v");
    assert_eq!(&ro.user_area().unwrap()[..5], b"hello");
    assert!(matches!(ro.put(b"k", b"w"), Err(Error::ReadOnly { .. })));
    assert!(matches!(ro.delete(b"k"), Err(Error::ReadOnly { .. })));
    assert!(matches!(
        ro.set_user_area(b"x"),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(ro.begin_write(), Err(Error::ReadOnly { .. })));
    assert_eq!(ro.verify().unwrap().live, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        // Root ignores permissions; only check when the file really is unwritable.
        if std::fs::OpenOptions::new().write(true).open(&path).is_err() {
            assert!(matches!(Db::open(&path), Err(Error::Map(_))));
        }
        assert!(matches!(
            DbOptions::new(8, 8).open(&path),
            Err(Error::Map(pmap::Error::ReadOnlyFile { .. }))
        ));
        assert!(Db::open_read_only(&path).is_ok());
    }
}

#[test]
fn foreign_truncated_and_damaged_files_are_typed_errors() {
    let (dir, _) = temp();
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, vec![b'#'; 8192]).unwrap();
    assert!(matches!(Db::open(&foreign), Err(Error::BadMagic { .. })));
    assert!(matches!(
        DbOptions::new(8, 8).open(&foreign),
        Err(Error::BadMagic { .. })
    ));
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        vec![b'#'; 8192],
        "foreign file untouched"
    );

    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, b"\x89PBD").unwrap();
    assert!(matches!(Db::open(&tiny), Err(Error::Truncated { .. })));
    assert_eq!(
        std::fs::read(&tiny).unwrap().len(),
        4,
        "short file not extended"
    );

    let zeros = dir.path().join("zeros");
    std::fs::write(&zeros, vec![0u8; 4096]).unwrap();
    assert!(matches!(Db::open(&zeros), Err(Error::Uninitialized { .. })));
    let db = DbOptions::new(8, 8).open(&zeros).unwrap();
    db.put(b"k", b"v").unwrap();
    drop(db);

    let (_d, path) = temp();
    DbOptions::new(8, 8)
        .open(&path)
        .unwrap()
        .put(b"k", b"v")
        .unwrap();
    let pristine = std::fs::read(&path).unwrap();
    let damaged = |at: usize, bytes: &[u8]| {
        std::fs::write(&path, &pristine).unwrap();
        write_bytes(&path, at as u64, bytes);
        Db::open(&path)
    };
    // Text-mode damage: CRLF -> LF shifts everything.
    let mut text = pristine.clone();
    text.remove(4);
    std::fs::write(&path, &text).unwrap();
    assert!(matches!(Db::open(&path), Err(Error::BadMagic { .. })));
    // A format 1 file (or any other version) is refused by name, untouched.
    assert!(matches!(
        damaged(8, &1u32.to_le_bytes()),
        Err(Error::UnsupportedVersion {
            found: 1,
            supported: 2,
            ..
        })
    ));
    assert!(matches!(
        damaged(16, &9u32.to_le_bytes()),
        Err(Error::CorruptHeader {
            field: "geometry_crc",
            ..
        })
    ));
    assert!(matches!(
        damaged(88, &3u64.to_le_bytes()),
        Err(Error::CorruptHeader {
            field: "table_crc",
            ..
        })
    ));
    // Truncate the table away.
    std::fs::write(&path, &pristine[..5000]).unwrap();
    assert!(matches!(Db::open(&path), Err(Error::Truncated { .. })));
    // Damaged counts are recounted by a writable open.
    std::fs::write(&path, &pristine).unwrap();
    write_bytes(&path, 320, &[0xEE; 96]);
    assert!(matches!(
        Db::open_read_only(&path),
        Err(Error::CorruptHeader {
            field: "counts",
            ..
        })
    ));
    let db = Db::open(&path).unwrap();
    assert_eq!(db.len(), 1);
    db.verify().unwrap();
}

/// A creator killed inside initialisation, before the magic, leaves a header whose magic is
/// zero but whose other fields are not: that is an unfinished file, not a foreign one, and
/// opening it with options initialises it again. A database that was committed to and then
/// lost its magic is still refused, and left as it was.
#[test]
fn crash_during_creation_leaves_a_file_that_open_initialises_again() {
    let (_dir, path) = temp();
    drop(DbOptions::new(16, 64).capacity(100).open(&path).unwrap());
    write_bytes(&path, 0, &[0; 8]);
    // Garbage in the table region, as if the file had held something before.
    write_bytes(&path, 4096, &[0xAB; 256]);
    assert!(matches!(Db::open(&path), Err(Error::Uninitialized { .. })));
    assert!(matches!(
        Db::open_read_only(&path),
        Err(Error::Uninitialized { .. })
    ));
    let db = DbOptions::new(8, 8).open(&path).unwrap();
    assert_eq!((db.key_size(), db.value_size(), db.len()), (8, 8, 0));
    db.put(b"k", b"v").unwrap();
    assert_eq!(db.verify().unwrap().live, 1);
    drop(db);

    let used = std::fs::read(&path).unwrap();
    write_bytes(&path, 0, &[0; 8]);
    let damaged = std::fs::read(&path).unwrap();
    assert!(matches!(
        DbOptions::new(8, 8).open(&path),
        Err(Error::BadMagic { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "data overwritten");
    assert_ne!(used, damaged);
}

#[test]
fn growth_keeps_every_record_and_other_handles_follow() {
    let (_dir, path) = temp();
    let db = DbOptions::new(16, 64).capacity(10).open(&path).unwrap();
    let other = Db::open(&path).unwrap();
    let start = db.capacity().unwrap();
    for i in 0..2000 {
        db.put(&key(i), &value(i, 0)).unwrap();
    }
    assert!(db.capacity().unwrap() > start);
    assert_eq!(db.len(), 2000);
    for i in 0..2000 {
        assert_eq!(other.get(&key(i)).unwrap().unwrap(), value(i, 0), "key {i}");
    }
    assert_eq!(other.capacity().unwrap(), db.capacity().unwrap());
    // The other handle writes after growth it did not do.
    other.put(&key(5000), &value(5000, 1)).unwrap();
    assert_eq!(db.get(&key(5000)).unwrap().unwrap(), value(5000, 1));
    let stats = db.verify().unwrap();
    assert_eq!(stats.live, 2001);
}

#[test]
fn tombstone_churn_does_not_grow_the_file_without_bound() {
    let (_dir, path) = temp();
    let db = DbOptions::new(16, 64).capacity(100).open(&path).unwrap();
    for i in 0..20_000 {
        db.put(&key(i), &value(i, 0)).unwrap();
        if i >= 50 {
            assert!(db.delete(&key(i - 50)).unwrap());
        }
    }
    assert_eq!(db.len(), 50);
    let len = std::fs::metadata(&path).unwrap().len();
    // Two tables of 256 slots and the history ring, whatever the churn.
    let slot = 40 + 16 + 64;
    let bound = 4096 + 2 * (1024 + 256 * slot) + 4096 * (32 + slot) + 3 * 4096;
    assert!(len < bound as u64, "file grew to {len}");
    db.verify().unwrap();
    for i in 19_950..20_000 {
        assert!(db.contains(&key(i)).unwrap());
    }
}

#[test]
fn iterate_find_and_update_in_place() {
    let (_dir, path) = temp();
    let db = DbOptions::new(16, 64).open(&path).unwrap();
    for i in 0..100 {
        db.put(&key(i), &value(i, 0)).unwrap();
    }
    let mut seen: Vec<u64> = db
        .iter()
        .unwrap()
        .map(|record| {
            let (k, v) = record.unwrap();
            assert_eq!(v, value(u64::from_le_bytes(k[..8].try_into().unwrap()), 0));
            u64::from_le_bytes(k[..8].try_into().unwrap())
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    assert_eq!(db.iter().unwrap().map(Result::unwrap).count(), 100);
    let mut count = 0;
    db.for_each(|k, v| {
        assert_eq!(&k[..8], &v[..8]);
        count += 1;
    })
    .unwrap();
    assert_eq!(count, 100);
    let (k, _) = db.find(|k, _| k[0] == 42).unwrap().unwrap();
    assert_eq!(k, key(42));
    assert!(db.find(|k, _| k[0] == 200).unwrap().is_none());

    let before = db.commit_count();
    // What `update_each` did, as one transaction.
    let changed = db
        .write(|txn| {
            let mut changed = 0;
            for record in txn.iter()? {
                let (k, mut v) = record?;
                match k[0] % 3 {
                    0 => {
                        txn.delete(&k)?;
                        changed += 1;
                    }
                    1 => {
                        v[8] = 9;
                        txn.put(&k, &v)?;
                        changed += 1;
                    }
                    _ => {}
                }
            }
            Ok(changed)
        })
        .unwrap();
    assert_eq!(changed, 34 + 33);
    assert_eq!(db.commit_count(), before + 1, "one transaction");
    assert_eq!(db.len(), 66);
    for i in 0..100 {
        let got = db.get(&key(i)).unwrap();
        match i % 3 {
            0 => assert_eq!(got, None),
            1 => assert_eq!(got.unwrap(), value(i, 9)),
            _ => assert_eq!(got.unwrap(), value(i, 0)),
        }
    }
    db.verify().unwrap();
}

#[test]
fn user_area_and_commit_counter_persist() {
    let (_dir, path) = temp();
    let db = DbOptions::new(4, 4).open(&path).unwrap();
    assert_eq!(db.user_area().unwrap(), vec![0u8; pblockdb::USER_AREA_SIZE]);
    db.set_user_area(b"first").unwrap();
    db.set_user_area(b"2nd").unwrap();
    assert!(matches!(
        db.set_user_area(&[1u8; pblockdb::USER_AREA_SIZE + 1]),
        Err(Error::UserAreaSize {
            given: 257,
            max: 256
        })
    ));
    db.put(b"a", b"b").unwrap();
    assert_eq!(db.commit_count(), 1);
    drop(db);
    let db = Db::open(&path).unwrap();
    let area = db.user_area().unwrap();
    assert_eq!(&area[..5], b"2nd\0\0", "the shorter write zero-fills");
    assert_eq!(db.commit_count(), 1);
}

#[test]
fn transactions_and_synced_commits() {
    let (_dir, path) = temp();
    let db = DbOptions::new(8, 8)
        .capacity(4)
        .durability(Durability::Synced)
        .open(&path)
        .unwrap();
    assert_eq!(db.durability(), Durability::Synced);
    {
        let mut txn = db.begin_write().unwrap();
        for i in 0u64..100 {
            assert!(!txn.put(&i.to_le_bytes(), &i.to_le_bytes()).unwrap());
        }
        assert!(txn.delete(&3u64.to_le_bytes()).unwrap());
        assert_eq!(
            txn.get(&4u64.to_le_bytes()).unwrap().unwrap(),
            4u64.to_le_bytes()
        );
        assert_eq!(db.len(), 0, "nothing visible before the commit");
        txn.commit().unwrap();
    }
    assert_eq!(db.len(), 99);
    let mut txn = db.begin_write().unwrap();
    txn.set_durability(Durability::Buffered);
    txn.put(b"gone", b"x").unwrap();
    txn.abort();
    assert!(!db.contains(b"gone").unwrap());
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(db.len(), 99);
    db.verify().unwrap();
}

#[test]
fn threads_share_one_handle() {
    let (_dir, path) = temp();
    let db = DbOptions::new(16, 64).capacity(16).open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let db = &db;
            s.spawn(move || {
                for i in 0..500 {
                    let id = t * 10_000 + i;
                    db.put(&key(id), &value(id, t)).unwrap();
                    assert_eq!(db.get(&key(id)).unwrap().unwrap(), value(id, t));
                }
            });
        }
    });
    assert_eq!(db.len(), 2000);
    db.verify().unwrap();
}

/// `verify` on a read-only handle while another handle writes: it waits for the writer
/// between operations instead of reading slots mid-write and calling them corrupt.
#[test]
fn concurrent_verify_on_a_read_only_handle_sees_a_still_table() {
    let (_dir, path) = temp();
    let db = DbOptions::new(16, 64).capacity(64).open(&path).unwrap();
    for i in 0..40 {
        db.put(&key(i), &value(i, 0)).unwrap();
    }
    let ro = Db::open_read_only(&path).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut round = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..40 {
                    db.put(&key(i), &value(i, round)).unwrap();
                }
                round += 1;
            }
        });
        for _ in 0..300 {
            let stats = ro.verify();
            if stats.is_err() {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            assert_eq!(stats.unwrap().live, 40);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// The header count is only a hint to readers: damaged after the handle opened, it must not
/// size an allocation.
#[test]
fn a_count_damaged_after_open_does_not_break_iteration() {
    let (_dir, path) = temp();
    let db = TypedDb::<U64, U64>::new(DbOptions::new(8, 8).open(&path).unwrap());
    db.put(&1, &10).unwrap();
    db.put(&2, &20).unwrap();
    // Both count records: the count the reader would trust says 2^64 - 1.
    for at in [320 + 16, 368 + 16] {
        write_bytes(&path, at, &u64::MAX.to_le_bytes());
    }
    let mut entries = db.entries().unwrap();
    entries.sort_unstable();
    assert_eq!(entries, vec![(1, 10), (2, 20)]);
    assert_eq!(db.db().iter().unwrap().count(), 2);
}

#[test]
fn typed_records() {
    #[derive(
        Clone,
        Copy,
        Debug,
        PartialEq,
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::Immutable,
        zerocopy::KnownLayout,
    )]
    #[repr(C)]
    struct Lease {
        owner: u32,
        expires: u32,
    }
    let (_dir, path) = temp();
    let db = TypedDb::<U64, ZeroCopy<Lease>>::new(DbOptions::new(8, 8).open(&path).unwrap());
    assert!(db.is_empty());
    let lease = |owner, expires| Lease { owner, expires };
    assert!(!db.put(&1, &lease(7, 100)).unwrap());
    db.put(&2, &lease(8, 200)).unwrap();
    assert_eq!(db.get(&1).unwrap(), Some(lease(7, 100)));
    db.db()
        .write(|txn| {
            for id in [1, 2] {
                let mut l = db.get_in_write(txn, &id)?.unwrap();
                l.expires += 1;
                db.put_in(txn, &id, &l)?;
            }
            Ok(())
        })
        .unwrap();
    let mut all = db.entries().unwrap();
    all.sort_by_key(|(k, _)| *k);
    assert_eq!(all, vec![(1, lease(7, 101)), (2, lease(8, 201))]);
    let snapshot = db.db().begin_read().unwrap();
    assert!(db.delete(&1).unwrap());
    assert_eq!(db.len(), 1);
    assert_eq!(db.get_in(&snapshot, &1).unwrap(), Some(lease(7, 101)));
    // Bytes of another type are a codec error, not garbage.
    db.db().put(&3u64.to_le_bytes(), b"abc").unwrap();
    assert!(matches!(db.get(&3), Err(Error::Codec(_))));
}

#[test]
fn db_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Db>();
    check::<TypedDb<U64, U64>>();
}

#[test]
fn writes_from_inside_a_write_transaction_are_refused_not_deadlocked() {
    let (_dir, path) = temp();
    let db = DbOptions::new(8, 8).open(&path).unwrap();
    db.put(b"a", b"1").unwrap();
    let txn = db.begin_write().unwrap();
    assert!(matches!(db.put(b"b", b"2"), Err(Error::Reentrant { .. })));
    assert!(matches!(db.begin_write(), Err(Error::Reentrant { .. })));
    assert_eq!(db.get(b"a").unwrap().unwrap(), b"1", "reads still work");
    drop(txn);
    assert!(db.delete(b"a").unwrap());
    // Another thread simply waits for the lock.
    let txn = db.begin_write().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| db.put(b"c", b"3").unwrap());
        std::thread::yield_now();
        drop(txn);
        assert!(!waiter.join().unwrap());
    });
}

/// Two handles on one file in one thread: while one holds the writer lock, a write through
/// another handle would wait for a lock this very thread holds. Each is `Error::WouldDeadlock`
/// naming the file. Opening a third handle, and a read-only `verify`, wait for no lock, so they
/// simply work. Run in a thread with a deadline, so
/// a hang fails the test instead of stalling it.
#[test]
fn two_handles_in_one_thread_are_a_typed_error_not_a_deadlock() {
    let (_dir, path) = temp();
    let a = DbOptions::new(8, 8).open(&path).unwrap();
    let b = Db::open(&path).unwrap();
    let ro = Db::open_read_only(&path).unwrap();
    let (done, results) = std::sync::mpsc::channel();
    let thread_path = path.clone();
    std::thread::spawn(move || {
        let batch = a.begin_write().unwrap();
        let put = b.put(b"k", b"v").map(drop);
        let delete = b.delete(b"k").map(drop);
        let batch_b = b.begin_write().map(drop);
        let verify = ro.verify().map(drop);
        let open = Db::open(&thread_path).map(|db| db.get(b"k").map(drop));
        // Another thread queued inside `b` holds its mutex while it waits for the file lock:
        // this thread must not wait for that mutex either.
        let (queued, waiter) = std::thread::scope(|s| {
            let waiter = s.spawn(|| b.put(b"w", b"1"));
            std::thread::sleep(std::time::Duration::from_millis(50));
            let queued = b.put(b"q", b"2").map(drop);
            drop(batch);
            (queued, waiter.join().map_err(|_| ()))
        });
        let after = b.put(b"k", b"v");
        let refused = [put, delete, batch_b, queued];
        let _ = done.send((refused, open, verify, waiter, after));
    });
    let ([put, delete, batch_b, queued], open, verify, waiter, after) = results
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("deadlocked: a second handle waited for the lock its own thread holds");
    for (what, result) in [
        ("put", put),
        ("delete", delete),
        ("begin_write", batch_b),
        ("put beside a queued thread", queued),
    ] {
        assert!(
            matches!(&result, Err(Error::WouldDeadlock { path: p }) if *p == path),
            "{what}: {result:?}"
        );
    }
    assert!(matches!(open, Ok(Ok(()))), "open: {open:?}");
    assert!(verify.is_ok(), "read-only verify: {verify:?}");
    assert!(
        !waiter.unwrap().unwrap(),
        "the queued thread writes once the lock is free"
    );
    assert!(
        !after.unwrap(),
        "once the lock is released the other handle writes"
    );
    let db = Db::open(&path).unwrap();
    assert_eq!(db.get(b"k").unwrap().unwrap(), b"v");
    assert_eq!(db.len(), 2);
}

/// A backup of a table of several chunks (the snapshot is read, and the copy written, a chunk
/// at a time) holds every record once, equal to the source's.
#[test]
fn backup_of_a_table_of_several_chunks_holds_every_record() {
    let (dir, path) = temp();
    let db = DbOptions::new(16, 64).capacity(10_000).open(&path).unwrap();
    db.write(|txn| {
        for i in 0..10_000 {
            txn.put(&key(i), &value(i, 3))?;
        }
        Ok(())
    })
    .unwrap();
    assert!(
        db.capacity().unwrap() > 2 * 4096,
        "the table spans several chunks"
    );
    let dest = dir.path().join("chunks.db");
    assert_eq!(db.backup_to(&dest).unwrap(), 10_000);
    let copy = Db::open(&dest).unwrap();
    copy.verify().unwrap();
    let source: BTreeMap<_, _> = db.iter().unwrap().map(Result::unwrap).collect();
    let copied: BTreeMap<_, _> = copy.iter().unwrap().map(Result::unwrap).collect();
    assert_eq!(copied.len(), 10_000);
    assert_eq!(copied, source);
}

/// A hot backup while a writer moves value between keys in transactions: each backup opens,
/// verifies, and holds one commit (the sum is whole); a backup onto an existing file is
/// refused.
#[test]
fn backup_of_a_live_database_is_one_commit() {
    let (dir, path) = temp();
    let db = DbOptions::new(8, 8).history(1 << 14).open(&path).unwrap();
    db.write(|txn| {
        for i in 0u64..100 {
            txn.put(&i.to_le_bytes(), &100u64.to_le_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = pounds_testkit::Rng::new(7);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b) = (rng.below(100), rng.below(100));
                db.write(|txn| {
                    let get = |txn: &pblockdb::WriteTxn<'_>, k: u64| -> pblockdb::Result<u64> {
                        let v = txn.get(&k.to_le_bytes())?.unwrap();
                        Ok(u64::from_le_bytes(v.try_into().unwrap()))
                    };
                    let from = get(txn, a)?;
                    txn.put(&a.to_le_bytes(), &(from - from / 2).to_le_bytes())?;
                    let to = get(txn, b)?;
                    txn.put(&b.to_le_bytes(), &(to + from / 2).to_le_bytes())?;
                    Ok(())
                })
                .unwrap();
            }
        });
        for round in 0..5 {
            let dest = dir.path().join(format!("backup{round}.db"));
            assert_eq!(db.backup_to(&dest).unwrap(), 100);
            let copy = Db::open(&dest).unwrap();
            copy.verify().unwrap();
            let sum: u64 = copy
                .iter()
                .unwrap()
                .map(|record| u64::from_le_bytes(record.unwrap().1.try_into().unwrap()))
                .sum();
            assert_eq!(sum, 100 * 100, "backup {round} mixes commits");
            assert!(matches!(
                db.backup_to(&dest),
                Err(Error::BackupExists { .. })
            ));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// `for_each` hands records out a chunk of slots at a time and may use the handle meanwhile:
/// a rebuild in the middle (by another handle, from inside the callback) leaves the iteration
/// going on in the table it started in, so each key of the snapshot comes exactly once; two
/// rebuilds (the first table's region reused) end it with `SnapshotTooOld`, never with a
/// record twice (seen failing with SnapshotTooOld after one rebuild, when the iteration looked
/// for the snapshot's table afresh instead of going on in the one its records came from).
/// A database of keys 0..6000 (values `value(i, 0)`) and a second handle on its file, for the
/// tests of iteration through rebuilds.
fn six_thousand_keys(path: &Path) -> (Db, Db) {
    let db = DbOptions::new(16, 64).capacity(6000).open(path).unwrap();
    db.write(|txn| {
        for i in 0..6000 {
            txn.put(&key(i), &value(i, 0))?;
        }
        Ok(())
    })
    .unwrap();
    (db, Db::open(path).unwrap())
}

/// Rebuilds a table by inserting fresh keys (from 1,000,000 on, values `value(i, 1)`).
#[derive(Default)]
struct Rebuilder {
    inserted: u64,
}

impl Rebuilder {
    /// One more key than `other`'s table takes at 7/8 load, in one transaction, so the rebuild
    /// it starts with comes at the snapshot's own clock: the new table then holds that snapshot
    /// too, and is not where an iteration's records came from.
    fn insert_until_rebuilt(&mut self, other: &Db) {
        let before = other.table_generation().unwrap();
        let inserts = other.capacity().unwrap() / 8 * 7 + 1 - other.len() as u64;
        other
            .write(|txn| {
                for _ in 0..inserts {
                    let i = 1_000_000 + self.inserted;
                    txn.put(&key(i), &value(i, 1))?;
                    self.inserted += 1;
                }
                Ok(())
            })
            .unwrap();
        assert_ne!(other.table_generation().unwrap(), before);
    }
}

/// `iter` reads a chunk of the table at a time, as `for_each` does: writers may commit (and
/// rebuild the table) between two of its items, and it goes on in the table its records came
/// from, each key once; two rebuilds end it in `SnapshotTooOld`, after the keys it gave.
#[test]
fn iter_reads_a_chunk_at_a_time_through_a_rebuild_and_never_hands_a_key_out_twice() {
    let (_dir, path) = temp();
    let (db, other) = six_thousand_keys(&path);
    let mut rebuilder = Rebuilder::default();
    let mut insert_until_rebuilt = |other: &Db| rebuilder.insert_until_rebuilt(other);
    let mut seen = std::collections::HashSet::new();
    for record in db.iter().unwrap() {
        let (k, v) = record.unwrap();
        let i = u64::from_le_bytes(k[..8].try_into().unwrap());
        assert!(i < 6000, "a key from after the snapshot: {i}");
        assert_eq!(v, value(i, 0));
        assert!(seen.insert(i), "key {i} handed out twice");
        if seen.len() == 1 {
            insert_until_rebuilt(&other);
        }
    }
    assert_eq!(seen.len(), 6000);

    let mut seen = std::collections::HashSet::new();
    let mut end = None;
    for record in db.iter().unwrap() {
        match record {
            Ok((k, _)) => {
                let i = u64::from_le_bytes(k[..8].try_into().unwrap());
                assert!(end.is_none(), "a record after the error");
                assert!(seen.insert(i), "key {i} handed out twice");
                if seen.len() == 1 {
                    insert_until_rebuilt(&other);
                    insert_until_rebuilt(&other);
                }
            }
            Err(e) => {
                assert!(end.is_none(), "a second error");
                end = Some(e);
            }
        }
    }
    assert!(
        matches!(end, Some(Error::SnapshotTooOld { .. })),
        "{end:?} after {} keys",
        seen.len()
    );
    assert!(!seen.is_empty() && seen.len() < 12_000);
}

#[test]
fn for_each_goes_on_through_a_rebuild_and_never_hands_a_key_out_twice() {
    let (_dir, path) = temp();
    let (db, other) = six_thousand_keys(&path);
    let first = db.table_generation().unwrap();
    let mut rebuilder = Rebuilder::default();
    let mut insert_until_rebuilt = |other: &Db| rebuilder.insert_until_rebuilt(other);
    let mut seen = std::collections::HashSet::new();
    db.for_each(|k, v| {
        let i = u64::from_le_bytes(k[..8].try_into().unwrap());
        assert!(i < 6000, "a key from after the snapshot: {i}");
        assert_eq!(v, value(i, 0));
        assert!(seen.insert(i), "key {i} handed out twice");
        if seen.len() == 1 {
            insert_until_rebuilt(&other);
        }
    })
    .unwrap();
    assert_eq!(seen.len(), 6000);
    assert!(db.table_generation().unwrap() > first);

    // Two rebuilds under one iteration: the first table is gone.
    let mut seen = std::collections::HashSet::new();
    let result = db.for_each(|k, _| {
        let i = u64::from_le_bytes(k[..8].try_into().unwrap());
        assert!(seen.insert(i), "key {i} handed out twice");
        if seen.len() == 1 {
            insert_until_rebuilt(&other);
            insert_until_rebuilt(&other);
        }
    });
    assert!(
        matches!(result, Err(Error::SnapshotTooOld { .. })),
        "{result:?}"
    );
}

/// Iteration passes over slots whose hint says tombstone when nothing changed since the
/// snapshot, and must notice when something did while it read: a writer thread toggles keys
/// (deletes leave tombstones, puts revive them) while a reader iterates snapshots and compares
/// each with what point lookups in the same snapshot see. A key live at the snapshot but
/// deleted during the scan must still come back once.
#[test]
fn iteration_of_a_snapshot_keeps_keys_deleted_while_it_reads() {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_dir, path) = temp();
    let db = DbOptions::new(16, 64)
        .capacity(4_000)
        .history(1 << 16)
        .open(&path)
        .unwrap();
    let (stable, churn) = (0..1_000u64, 1_000..2_000u64);
    db.write(|txn| {
        for i in stable.clone().chain(churn.clone()) {
            txn.put(&key(i), &value(i, 0))?;
        }
        Ok(())
    })
    .unwrap();
    let done = AtomicBool::new(false);
    /// Stops the writer however the reader ends, a failed assertion included.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let mut compared = 0;
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&done);
        scope.spawn(|| {
            let mut round = 0u64;
            while !done.load(Ordering::Relaxed) {
                for i in churn.clone().step_by(7) {
                    if !done.load(Ordering::Relaxed) {
                        if round % 2 == 0 {
                            db.delete(&key(i)).unwrap();
                        } else {
                            db.put(&key(i), &value(i, round)).unwrap();
                        }
                    }
                }
                round += 1;
            }
        });
        while compared < 200 {
            let txn = db.begin_read().unwrap();
            // The scan first, while the head is likely still at the snapshot (the fast path);
            // the lookups after it see the same snapshot whatever the writer did meanwhile.
            let mut got = Vec::new();
            let iterated = txn.for_each(|k, _| got.push(<[u8; 16]>::try_from(k).unwrap()));
            let expected: Result<BTreeSet<[u8; 16]>, Error> = stable
                .clone()
                .chain(churn.clone())
                .filter_map(|i| match txn.contains(&key(i)) {
                    Ok(true) => Some(Ok(key(i))),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect();
            match (expected, iterated) {
                (Ok(expected), Ok(())) => {
                    let unique: BTreeSet<[u8; 16]> = got.iter().copied().collect();
                    assert_eq!(unique.len(), got.len(), "a key came back twice");
                    let missing = expected.difference(&unique).count();
                    let extra = unique.difference(&expected).count();
                    assert!(
                        missing == 0 && extra == 0,
                        "iteration and lookups in one snapshot disagree: {missing} keys missing, \
                         {extra} extra"
                    );
                    compared += 1;
                }
                // The history lapped this snapshot: a typed error, never a mixed view.
                (Err(Error::SnapshotTooOld { .. }), _) | (_, Err(Error::SnapshotTooOld { .. })) => {
                }
                (Err(e), _) | (_, Err(e)) => panic!("{e}"),
            }
        }
    });
}

/// A read-only open (and `Db::info`) checks the counts record of the commit it read; a writer
/// committing twice
/// meanwhile replaces both records (they alternate), which is no damage: the open reads the
/// clock again and checks the counts of the newer commit (seen failing as
/// `CorruptHeader { field: "counts" }` in a reader process of
/// `concurrent_processes_readers_never_see_torn_values`).
#[test]
fn read_only_opens_beside_a_busy_writer_never_report_damage() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_dir, path) = temp();
    let db = DbOptions::new(16, 64).capacity(1_000).open(&path).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                db.put(&key(i % 500), &value(i, 0)).unwrap();
                i += 1;
            }
        });
        // Each handle also reads the header's figures (`info`), which pair the clock with its
        // count record the same way.
        let opened = (0..3_000)
            .map(|_| Db::open_read_only(&path).and_then(|ro| ro.info().map(drop)))
            .find(Result::is_err);
        done.store(true, Ordering::Relaxed);
        if let Some(Err(e)) = opened {
            panic!("a read-only open beside a writer failed: {e}");
        }
    });
}

/// A write transaction stages into the buffers the last one left (no allocation for a small
/// one): nothing an aborted or committed transaction staged comes back in the next, whatever
/// their sizes.
#[test]
fn staging_buffers_reused_between_transactions_carry_nothing_over() {
    let dir = tempfile::tempdir().unwrap();
    let db = DbOptions::new(8, 8)
        .capacity(2048)
        .open(dir.path().join("reuse.db"))
        .unwrap();
    let mut txn = db.begin_write().unwrap();
    txn.put(b"aborted", b"1").unwrap();
    txn.put(b"gone", b"2").unwrap();
    txn.abort();
    db.write(|txn| {
        assert_eq!(txn.get(b"aborted")?, None);
        txn.put(b"kept", b"3")
    })
    .unwrap();
    // A large transaction (its buffers let go after), then small ones.
    db.write(|txn| {
        for i in 0..1000u32 {
            txn.put(&i.to_le_bytes(), b"big")?;
        }
        Ok(())
    })
    .unwrap();
    let mut txn = db.begin_write().unwrap();
    txn.delete(b"kept").unwrap();
    drop(txn);
    db.write(|txn| txn.put(b"last", b"4")).unwrap();
    assert_eq!(db.len(), 1002);
    assert_eq!(db.get(b"kept").unwrap(), Some(b"3".to_vec()));
    assert_eq!(db.get(b"aborted").unwrap(), None);
    assert_eq!(db.get(b"gone").unwrap(), None);
    assert_eq!(db.get(b"last").unwrap(), Some(b"4".to_vec()));
}
