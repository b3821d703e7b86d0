//! A database filled until its file cannot grow: the put that needed the growth is a typed
//! error (`Error::Full` caused by `pmap::Error::NoSpace`), never a `SIGBUS`, and the database
//! still opens with every earlier record. On a real 4 MiB tmpfs (the test needs root, as CI
//! runs); the filling runs in a child process (this test binary again), so that dying of a
//! signal shows as a failed test rather than a crashed test binary. Once for each storage: with
//! `Storage::Write` the bytes go by positioned writes and the words through the word view, with
//! `Storage::Unmapped` everything by positioned writes from a memory copy, and the growth is the
//! same reserving one.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use pblockdb::{Db, DbOptions, Error, Storage};
use pounds_testkit::{Tmpfs, child_command, child_role_path, reported, run_child};

const ROLE: &str = "PBLOCKDB_FULL_DISK_ROLE";
const DIR: &str = "PBLOCKDB_FULL_DISK_DIR";
const STORED: &str = "FULL_DISK_STORED=";
const KEY: usize = 16;
const VALUE: usize = 2000;

fn key(i: u64) -> Vec<u8> {
    format!("key{i:013}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    (0..VALUE as u64).map(|b| (i * 7 + b * 13) as u8).collect()
}

#[test]
fn full_disk_put_that_cannot_grow_the_file_is_an_error_and_keeps_every_record() {
    full_disk(
        "full_disk_put_that_cannot_grow_the_file_is_an_error_and_keeps_every_record",
        Storage::Mapped,
    );
}

#[test]
fn full_disk_put_through_the_write_storage_is_an_error_and_keeps_every_record() {
    full_disk(
        "full_disk_put_through_the_write_storage_is_an_error_and_keeps_every_record",
        Storage::Write,
    );
}

#[test]
fn full_disk_put_through_the_unmapped_storage_is_an_error_and_keeps_every_record() {
    full_disk(
        "full_disk_put_through_the_unmapped_storage_is_an_error_and_keeps_every_record",
        Storage::Unmapped,
    );
}

/// The test `test` (this function's caller, named so that the child runs it again): fill, in a
/// child, a database on a 4 MiB tmpfs through a handle of `storage`.
fn full_disk(test: &str, storage: Storage) {
    if let Some((_, dir)) = child_role_path(ROLE, DIR) {
        // The child: put records until the table must grow and the disk has no room for it.
        let db = DbOptions::new(KEY, VALUE)
            .capacity(16)
            .storage(storage)
            .open(dir.join("full.db"))
            .unwrap();
        let mut stored = 0u64;
        let error = loop {
            match db.put(&key(stored), &value(stored)) {
                Ok(replaced) => assert!(!replaced),
                Err(e) => break e,
            }
            stored += 1;
            assert!(stored < 100_000, "stored far more than the disk holds");
        };
        match &error {
            Error::Full { source, .. } => assert!(
                matches!(**source, Error::Map(pmap::Error::NoSpace { .. })),
                "{source:?}"
            ),
            other => panic!("expected Full caused by NoSpace, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains("cannot grow") && message.contains("disk space"),
            "{message}"
        );
        // Nothing of the failed put is stored; the database still answers and still takes
        // writes that need no growth.
        assert_eq!(db.len() as u64, stored);
        assert_eq!(db.get(&key(stored)).unwrap(), None);
        assert!(
            db.put(&key(0), &value(1)).unwrap(),
            "replacing needs no room"
        );
        assert!(db.put(&key(0), &value(0)).unwrap());
        db.flush().unwrap();
        println!("{STORED}{stored}");
        return;
    }

    let disk = Tmpfs::mount("4m");
    let stdout = run_child(
        child_command(test).env(ROLE, "filler").env(DIR, disk.dir()),
        "filler",
    );
    let stored = reported(&stdout, STORED);
    assert!(
        stored >= 16,
        "only {stored} records before the disk was full"
    );
    // The database opens again, checks out, and holds every record stored.
    let db = Db::open(disk.path("full.db")).unwrap();
    db.verify().unwrap();
    assert_eq!(db.len() as u64, stored);
    for i in 0..stored {
        assert_eq!(db.get(&key(i)).unwrap(), Some(value(i)), "record {i}");
    }
}
