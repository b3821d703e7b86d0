//! Unit tests of every operation and every error of the public API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use pblockdb::{Action, Db, DbOptions, Error, TypedDb};

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
    let mut out = [0u8; 64];
    assert!(db.get_into(&key(1), &mut out).unwrap());
    assert_eq!(out, value(1, 1));
    assert!(!db.get_into(&key(2), &mut out).unwrap());
    assert_eq!(out, value(1, 1), "untouched on a miss");
    assert!(db.delete(&key(1)).unwrap());
    assert!(!db.delete(&key(1)).unwrap());
    assert!(!db.contains(&key(1)).unwrap());
    assert_eq!(db.len(), 0);
    // A deleted key can come back (into its tombstone).
    assert!(!db.put(&key(1), &value(1, 2)).unwrap());
    assert_eq!(db.get(&key(1)).unwrap().unwrap(), value(1, 2));
    assert_eq!(
        db.change_count(),
        4,
        "a delete that found nothing is no change"
    );
    db.flush().unwrap();
    assert_eq!(db.verify().unwrap().live, 1);
}

#[test]
fn short_keys_and_values_are_padded_long_ones_refused() {
    let (_dir, path) = temp();
    let db = DbOptions::new(8, 4).open(&path).unwrap();
    db.put(b"a", b"xy").unwrap();
    assert_eq!(db.get(b"a").unwrap().unwrap(), b"xy\0\0");
    assert_eq!(
        db.get(b"a\0\0").unwrap().unwrap(),
        b"xy\0\0",
        "padding is part of the key"
    );
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
    assert!(matches!(
        db.get_into(b"a", &mut [0u8; 3]),
        Err(Error::BufferSize {
            given: 3,
            expected: 4
        })
    ));
    assert_eq!(db.len(), 1, "failed writes stored nothing");
}

#[test]
fn zero_sized_values_make_a_set() {
    let (_dir, path) = temp();
    let db = DbOptions::new(4, 0).open(&path).unwrap();
    db.put(b"one", b"").unwrap();
    assert_eq!(db.get(b"one").unwrap(), Some(vec![]));
    assert!(db.contains(b"one").unwrap());
    assert!(!db.contains(b"two").unwrap());
    assert_eq!(db.iter().unwrap().count(), 1);
}

#[test]
fn reopen_adopts_geometry_and_rejects_a_different_one() {
    let (_dir, path) = temp();
    {
        let db = DbOptions::new(16, 64).capacity(100).open(&path).unwrap();
        db.put(&key(7), &value(7, 0)).unwrap();
    }
    let db = Db::open_existing(&path).unwrap();
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
        Db::open_existing(&path),
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
    assert_eq!(ro.get(b"k").unwrap().unwrap(), b"v\0\0\0\0\0\0\0");
    assert_eq!(&ro.user_area().unwrap()[..5], b"hello");
    assert!(matches!(ro.put(b"k", b"w"), Err(Error::ReadOnly { .. })));
    assert!(matches!(ro.delete(b"k"), Err(Error::ReadOnly { .. })));
    assert!(matches!(
        ro.set_user_area(b"x"),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        ro.update_each(|_, _| Action::Delete),
        Err(Error::ReadOnly { .. })
    ));
    assert_eq!(ro.verify().unwrap().live, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        // Root ignores permissions; only check when the file really is unwritable.
        if std::fs::OpenOptions::new().write(true).open(&path).is_err() {
            assert!(matches!(Db::open_existing(&path), Err(Error::Map(_))));
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
    assert!(matches!(
        Db::open_existing(&foreign),
        Err(Error::BadMagic { .. })
    ));
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
    assert!(matches!(
        Db::open_existing(&tiny),
        Err(Error::Truncated { .. })
    ));
    assert_eq!(
        std::fs::read(&tiny).unwrap().len(),
        4,
        "short file not extended"
    );

    let zeros = dir.path().join("zeros");
    std::fs::write(&zeros, vec![0u8; 4096]).unwrap();
    assert!(matches!(
        Db::open_existing(&zeros),
        Err(Error::Uninitialized { .. })
    ));
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
        Db::open_existing(&path)
    };
    // Text-mode damage: CRLF -> LF shifts everything.
    let mut text = pristine.clone();
    text.remove(4);
    std::fs::write(&path, &text).unwrap();
    assert!(matches!(
        Db::open_existing(&path),
        Err(Error::BadMagic { .. })
    ));
    assert!(matches!(
        damaged(8, &2u32.to_le_bytes()),
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1,
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
        damaged(80, &3u64.to_le_bytes()),
        Err(Error::CorruptHeader {
            field: "descriptor_crc",
            ..
        })
    ));
    // Truncate the table away.
    std::fs::write(&path, &pristine[..5000]).unwrap();
    assert!(matches!(
        Db::open_existing(&path),
        Err(Error::Truncated { .. })
    ));
    // Out-of-range counters are recounted by a writable open.
    std::fs::write(&path, &pristine).unwrap();
    write_bytes(&path, 128, &u64::MAX.to_le_bytes());
    assert!(matches!(
        Db::open_read_only(&path),
        Err(Error::CorruptHeader { field: "count", .. })
    ));
    let db = Db::open_existing(&path).unwrap();
    assert_eq!(db.len(), 1);
    db.verify().unwrap();
}

/// A creator killed inside initialisation, after the geometry and before the magic, leaves a
/// header whose magic is zero but whose other fields are not: that is an unfinished file, not
/// a foreign one, and opening it with options initialises it again. A database that was
/// written to and then lost its magic is still refused, and left as it was.
#[test]
fn crash_during_creation_leaves_a_file_that_open_initialises_again() {
    let (_dir, path) = temp();
    drop(DbOptions::new(16, 64).capacity(100).open(&path).unwrap());
    write_bytes(&path, 0, &[0; 8]);
    // Garbage in the table region, as if the file had held something before.
    write_bytes(&path, 4096, &[0xAB; 256]);
    assert!(matches!(
        Db::open_existing(&path),
        Err(Error::Uninitialized { .. })
    ));
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
    let other = Db::open_existing(&path).unwrap();
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
    assert!(len < 4096 + 3 * 256 * 96 + 8192, "file grew to {len}");
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
        .map(|(k, v)| {
            assert_eq!(v, value(u64::from_le_bytes(k[..8].try_into().unwrap()), 0));
            u64::from_le_bytes(k[..8].try_into().unwrap())
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    assert_eq!(db.iter().unwrap().len(), 100);
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

    let before = db.change_count();
    let changed = db
        .update_each(|k, v| match k[0] % 3 {
            0 => Action::Delete,
            1 => {
                v[8] = 9;
                Action::Update
            }
            _ => {
                v[8] = 7; // dropped: Keep
                Action::Keep
            }
        })
        .unwrap();
    assert_eq!(changed, 34 + 33);
    assert_eq!(db.change_count(), before + 67);
    assert_eq!(db.len(), 66);
    for i in 0..100 {
        let got = db.get(&key(i)).unwrap();
        match i % 3 {
            0 => assert_eq!(got, None),
            1 => assert_eq!(got.unwrap(), value(i, 9)),
            _ => assert_eq!(got.unwrap(), value(i, 0)),
        }
    }
    // An update that changes nothing is not a change.
    assert_eq!(db.update_each(|_, _| Action::Update).unwrap(), 0);
    db.verify().unwrap();
}

#[test]
fn user_area_and_change_counter_persist() {
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
    assert_eq!(db.change_count(), 3);
    drop(db);
    let db = Db::open_existing(&path).unwrap();
    let area = db.user_area().unwrap();
    assert_eq!(&area[..5], b"2nd\0\0", "the shorter write zero-fills");
    assert_eq!(db.change_count(), 3);
}

#[test]
fn batches_and_sync_on_write() {
    let (_dir, path) = temp();
    let db = DbOptions::new(8, 8)
        .capacity(4)
        .sync_on_write(true)
        .open(&path)
        .unwrap();
    {
        let mut batch = db.lock_writes().unwrap();
        for i in 0u64..100 {
            assert!(!batch.put(&i.to_le_bytes(), &i.to_le_bytes()).unwrap());
        }
        assert!(batch.delete(&3u64.to_le_bytes()).unwrap());
        assert_eq!(
            batch.get(&4u64.to_le_bytes()).unwrap().unwrap(),
            4u64.to_le_bytes()
        );
        batch.set_user_area(b"batch").unwrap();
        assert_eq!(
            batch
                .update_each(|k, _| if k[0] == 5 {
                    Action::Delete
                } else {
                    Action::Keep
                })
                .unwrap(),
            1
        );
    }
    assert_eq!(db.len(), 98);
    drop(db);
    let db = Db::open_existing(&path).unwrap();
    assert_eq!(db.len(), 98);
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
    let db = TypedDb::<u64, u64>::open(&path, 10).unwrap();
    db.put(&1, &10).unwrap();
    db.put(&2, &20).unwrap();
    write_bytes(&path, 128, &u64::MAX.to_le_bytes());
    let mut entries = db.entries().unwrap();
    entries.sort_unstable();
    assert_eq!(entries, vec![(1, 10), (2, 20)]);
    assert_eq!(db.db().iter().unwrap().count(), 2);
}

#[test]
fn typed_records() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Lease {
        owner: u32,
        expires: u32,
    }
    let (_dir, path) = temp();
    let db = TypedDb::<u64, Lease>::open(&path, 10).unwrap();
    assert!(db.is_empty());
    assert!(
        !db.put(
            &1,
            &Lease {
                owner: 7,
                expires: 100
            }
        )
        .unwrap()
    );
    db.put(
        &2,
        &Lease {
            owner: 8,
            expires: 200,
        },
    )
    .unwrap();
    assert_eq!(
        db.get(&1).unwrap(),
        Some(Lease {
            owner: 7,
            expires: 100
        })
    );
    assert!(db.contains(&2).unwrap());
    assert_eq!(
        db.find(|_, l| l.owner == 8).unwrap(),
        Some((
            2,
            Lease {
                owner: 8,
                expires: 200
            }
        ))
    );
    db.update_each(|_, l| {
        l.expires += 1;
        Action::Update
    })
    .unwrap();
    let mut all = db.entries().unwrap();
    all.sort_by_key(|(k, _)| *k);
    assert_eq!(
        all,
        vec![
            (
                1,
                Lease {
                    owner: 7,
                    expires: 101
                }
            ),
            (
                2,
                Lease {
                    owner: 8,
                    expires: 201
                }
            )
        ]
    );
    assert!(db.delete(&1).unwrap());
    assert_eq!(db.len(), 1);
    let raw = db.into_inner();
    assert!(matches!(
        TypedDb::<u32, Lease>::from_db(raw),
        Err(Error::GeometryMismatch { .. })
    ));
    assert!(matches!(
        TypedDb::<u64, u8>::open(&path, 1),
        Err(Error::GeometryMismatch { .. })
    ));
}

#[test]
fn db_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Db>();
    check::<TypedDb<u64, u64>>();
}

#[test]
fn writes_from_inside_the_writer_lock_are_refused_not_deadlocked() {
    let (_dir, path) = temp();
    let db = DbOptions::new(8, 8).open(&path).unwrap();
    db.put(b"a", b"1").unwrap();
    let mut inner = None;
    db.update_each(|_, _| {
        inner = Some(db.put(b"b", b"2"));
        assert_eq!(
            db.get(b"a").unwrap().unwrap(),
            b"1\0\0\0\0\0\0\0",
            "reads still work"
        );
        Action::Keep
    })
    .unwrap();
    assert!(matches!(inner, Some(Err(Error::Reentrant { .. }))));
    let batch = db.lock_writes().unwrap();
    assert!(matches!(db.delete(b"a"), Err(Error::Reentrant { .. })));
    drop(batch);
    assert!(db.delete(b"a").unwrap());
    // Another thread simply waits for the lock.
    let batch = db.lock_writes().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| db.put(b"c", b"3").unwrap());
        std::thread::yield_now();
        drop(batch);
        assert!(!waiter.join().unwrap());
    });
}

/// Two handles on one file in one thread: while one holds the writer lock, a write, a
/// read-only `verify` or an open through another handle would wait for a lock this very thread
/// holds. Each is `Error::WouldDeadlock` naming the file. Run in a thread with a deadline, so
/// a hang fails the test instead of stalling it.
#[test]
fn two_handles_in_one_thread_are_a_typed_error_not_a_deadlock() {
    let (_dir, path) = temp();
    let a = DbOptions::new(8, 8).open(&path).unwrap();
    let b = Db::open_existing(&path).unwrap();
    let ro = Db::open_read_only(&path).unwrap();
    let (done, results) = std::sync::mpsc::channel();
    let thread_path = path.clone();
    std::thread::spawn(move || {
        let batch = a.lock_writes().unwrap();
        let put = b.put(b"k", b"v").map(drop);
        let delete = b.delete(b"k").map(drop);
        let batch_b = b.lock_writes().map(drop);
        let verify = ro.verify().map(drop);
        let open = Db::open_existing(&thread_path).map(drop);
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
        let refused = [put, delete, batch_b, verify, open, queued];
        let _ = done.send((refused, waiter, after));
    });
    let ([put, delete, batch_b, verify, open, queued], waiter, after) = results
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("deadlocked: a second handle waited for the lock its own thread holds");
    for (what, result) in [
        ("put", put),
        ("delete", delete),
        ("lock_writes", batch_b),
        ("verify", verify),
        ("open", open),
        ("put beside a queued thread", queued),
    ] {
        assert!(
            matches!(&result, Err(Error::WouldDeadlock { path: p }) if *p == path),
            "{what}: {result:?}"
        );
    }
    assert!(
        !waiter.unwrap().unwrap(),
        "the queued thread writes once the lock is free"
    );
    assert!(
        !after.unwrap(),
        "once the lock is released the other handle writes"
    );
    let db = Db::open_existing(&path).unwrap();
    assert_eq!(db.get(b"k").unwrap().unwrap(), b"v\0\0\0\0\0\0\0");
    assert_eq!(db.len(), 2);
}
