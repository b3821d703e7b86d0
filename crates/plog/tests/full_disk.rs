//! A log larger than the disk is an error when it is created (its blocks are reserved then),
//! never a `SIGBUS` when a writer first reaches a page; a log that fits writes lap after lap.
//! On a real 4 MiB tmpfs (the tests need root, as CI runs); the risky part runs in a child
//! process (this test binary again), so that dying of a signal shows as a failed test rather
//! than a crashed test binary.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;

use plog::{Level, Log, LogOptions};
use pounds_testkit::{Tmpfs, child_command, child_role_path, fill_until_full, run_child};

const ROLE: &str = "PLOG_FULL_DISK_ROLE";
const DIR: &str = "PLOG_FULL_DISK_DIR";

fn message(id: u64) -> String {
    format!("record {id}")
}

/// Writes records until every block of the log was written at least `laps` times, then checks
/// that what survives reads back intact and ends at the last record written.
fn write_laps(log: &Log, laps: u64) {
    let stats = log.stats();
    let count = stats.blocks * laps;
    for _ in 0..count {
        let id = log.stats().next_id;
        assert_eq!(log.write(Level::Info, "lap", message(id)).unwrap(), id);
    }
    let mut survivors = 0u64;
    let mut last = None;
    for record in log.reader() {
        assert_eq!(record.message(), message(record.id), "record {}", record.id);
        survivors += 1;
        last = Some(record.id);
    }
    assert!(survivors > 0);
    assert_eq!(last, Some(log.stats().next_id - 1));
}

#[test]
fn full_disk_log_larger_than_the_disk_is_an_error_at_creation() {
    const TEST: &str = "full_disk_log_larger_than_the_disk_is_an_error_at_creation";
    if let Some((_, dir)) = child_role_path(ROLE, DIR) {
        let path = dir.join("big.log");
        // 65536 blocks of 128 bytes: 8 MiB on a 4 MiB disk.
        match LogOptions::new().blocks(65536).block_size(128).open(&path) {
            Err(plog::Error::Map(pmap::Error::NoSpace {
                path: p, requested, ..
            })) => {
                assert_eq!(p, path);
                assert!(requested > 8 << 20, "{requested}");
            }
            Ok(log) => {
                // Before blocks were reserved: the open "succeeded" and a lap dies of SIGBUS.
                write_laps(&log, 1);
                panic!("a log larger than the disk was created");
            }
            Err(other) => panic!("expected Map(NoSpace), got {other:?}"),
        }
        // The refused creation left an empty file (or none) and took no space; a log that
        // fits takes the path over and writes a full lap.
        assert_eq!(fs::metadata(&path).map_or(0, |m| m.len()), 0);
        let log = LogOptions::new()
            .blocks(16384)
            .block_size(128)
            .open(&path)
            .unwrap();
        write_laps(&log, 1);
        return;
    }
    let disk = Tmpfs::mount("4m");
    run_child(
        child_command(TEST)
            .env(ROLE, "too-big")
            .env(DIR, disk.dir()),
        "too-big",
    );
    // The log is there, with the geometry that fitted.
    let stats = Log::open(disk.path("big.log")).unwrap().stats();
    assert_eq!((stats.blocks, stats.block_size), (16384, 128));
}

#[test]
fn full_disk_log_that_fits_keeps_its_blocks_and_writes_laps() {
    const TEST: &str = "full_disk_log_that_fits_keeps_its_blocks_and_writes_laps";
    if let Some((_, dir)) = child_role_path(ROLE, DIR) {
        // 3 MiB of blocks on a 4 MiB disk, then another file takes whatever is left: with the
        // log's blocks reserved that is under 1 MiB, and the laps below find every block.
        let log = LogOptions::new()
            .blocks(24576)
            .block_size(128)
            .open(dir.join("fits.log"))
            .unwrap();
        let taken = fill_until_full(&dir.join("filler"));
        assert!(
            taken < 1 << 20,
            "another file took {taken} bytes of the log's space"
        );
        write_laps(&log, 2);
        log.flush().unwrap();
        return;
    }
    let disk = Tmpfs::mount("4m");
    run_child(
        child_command(TEST).env(ROLE, "laps").env(DIR, disk.dir()),
        "laps",
    );
    let log = Log::open(disk.path("fits.log")).unwrap();
    for record in log.reader() {
        assert_eq!(record.message(), message(record.id));
    }
}
