//! Many writers at once, in threads and in processes, and writers killed mid-write.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use plog::{FollowOptions, Level, Log, LogOptions};

mod common;
use common::{check, payload};
use pounds_testkit::{Rng, child_command, stress_rounds};

/// Every record exactly once, each writer's records in id order.
fn check_complete(log: &Log, writers: u32, per_writer: u32) {
    let mut reader = log.reader();
    let mut next_seq: HashMap<u32, u32> = HashMap::new();
    let mut last_id = None;
    let mut count = 0u64;
    for record in reader.by_ref() {
        assert!(last_id.is_none_or(|last| record.id > last), "ids increase");
        last_id = Some(record.id);
        let (w, seq) = check(&record);
        let expected = next_seq.entry(w).or_insert(0);
        assert_eq!(
            seq, *expected,
            "writer {w}: records in order, none missing or repeated"
        );
        *expected += 1;
        count += 1;
    }
    assert_eq!(reader.lost(), 0);
    assert_eq!(count, u64::from(writers) * u64::from(per_writer));
    assert!((0..writers).all(|w| next_seq.get(&w) == Some(&per_writer)));
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.plog");
    (dir, path)
}

#[test]
fn concurrent_threads_every_record_once() {
    let (_d, path) = tmp();
    // 4 x 50,000 one-block records in a ring of 2^18 blocks: no wrap.
    let log = Arc::new(
        LogOptions::new()
            .blocks(1 << 18)
            .block_size(64)
            .open(&path)
            .unwrap(),
    );
    let threads: Vec<_> = (0..4u32)
        .map(|w| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let tag = format!("w{w}");
                for seq in 0..50_000 {
                    log.write(Level::Info, &tag, payload(w, seq, 8)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    check_complete(&log, 4, 50_000);
    assert_eq!(log.stats().next_id, 200_000);
}

#[test]
fn concurrent_threads_wrap_without_torn_records() {
    let (_d, path) = tmp();
    let log = Arc::new(
        LogOptions::new()
            .blocks(64)
            .block_size(64)
            .open(&path)
            .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let reader_done = Arc::clone(&done);
    // Created before the writers start, at position 0: every id from there is read or lost.
    let mut reader = log.reader_from(0);
    let writers: Vec<_> = (0..3u32)
        .map(|w| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let tag = format!("w{w}");
                for seq in 0..20_000u32 {
                    // One block (up to 16 payload bytes with this tag): every record one id.
                    log.write(Level::Info, &tag, payload(w, seq, (seq % 9) as usize))
                        .unwrap();
                }
            })
        })
        .collect();
    let reader_thread = std::thread::spawn(move || {
        let mut read = 0u64;
        loop {
            let finished = reader_done.load(Ordering::SeqCst);
            loop {
                let (pos0, skipped0) = (reader.position(), reader.lost() + reader.padding());
                let Some(record) = reader.next() else {
                    assert_eq!(
                        reader.position() - pos0,
                        reader.lost() + reader.padding() - skipped0,
                        "advanced without a record"
                    );
                    break;
                };
                check(&record);
                // Every id between where the reader was and the record it returned was counted
                // lost, or was padding (a reservation its writer gave back when it met a block
                // another writer still held).
                assert_eq!(
                    record.id - pos0,
                    reader.lost() + reader.padding() - skipped0,
                    "gap before {}",
                    record.id
                );
                read += 1;
            }
            if finished {
                return (read, reader.lost() + reader.padding(), reader.position());
            }
            std::thread::yield_now();
        }
    });
    for t in writers {
        t.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (read, skipped, position) = reader_thread.join().unwrap();
    // Writers that met a block another writer still held gave their reservation back and
    // reserved again: the counter may pass 60,000, by padding only.
    assert_eq!(position, log.stats().next_id);
    assert!(position >= 60_000);
    assert_eq!(
        read + skipped,
        position,
        "every id was read, lost or padding"
    );
    // The newest record at least: every write retries until it is placed, so the last
    // position holds a record. (Not a whole ring: a reader lapped near the end resumes a
    // quarter ring past the oldest block, and given-back reservations are padding.)
    assert!(read >= 1, "the newest records were read");
}

#[test]
fn concurrent_threads_multi_block_wrap_never_torn() {
    let (_d, path) = tmp();
    let log = Arc::new(
        LogOptions::new()
            .blocks(32)
            .block_size(64)
            .open(&path)
            .unwrap(),
    );
    let writers: Vec<_> = (0..3u32)
        .map(|w| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let tag = format!("w{w}");
                for seq in 0..10_000u32 {
                    // Three writers on two cores in a 32-block ring: a writer preempted while
                    // it holds blocks turns the others away from them, and one that keeps
                    // meeting held blocks gives up rather than wait (its own record is lost).
                    match log.write(
                        Level::Warn,
                        &tag,
                        payload(w, seq, (seq as usize * 37) % 300),
                    ) {
                        Ok(_) | Err(plog::Error::NoFreeBlocks { .. }) => {}
                        Err(e) => panic!("write failed: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut reader = log.reader_from(0);
    let mut read = 0;
    while !writers.iter().all(std::thread::JoinHandle::is_finished) {
        for record in reader.by_ref() {
            check(&record);
            read += 1;
        }
    }
    for t in writers {
        t.join().unwrap();
    }
    for record in reader.by_ref() {
        check(&record);
        read += 1;
    }
    assert!(read > 0);
    assert_eq!(reader.position(), log.stats().next_id);
}

// ---- processes ----------------------------------------------------------------------------

const CHILD_PATH: &str = "PLOG_TEST_CHILD_PATH";
const CHILD_ID: &str = "PLOG_TEST_CHILD_ID";
const CHILD_COUNT: &str = "PLOG_TEST_CHILD_COUNT";

fn spawn_writer(path: &Path, id: u32, count: Option<u32>) -> Child {
    let mut cmd = child_command("child_writer");
    cmd.env(CHILD_PATH, path)
        .env(CHILD_ID, id.to_string())
        .stdout(std::process::Stdio::null());
    if let Some(count) = count {
        cmd.env(CHILD_COUNT, count.to_string());
    }
    cmd.spawn().unwrap()
}

/// The child role: writes `CHILD_COUNT` records (or forever, until killed) and exits.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_PATH) else {
        return;
    };
    let id: u32 = std::env::var(CHILD_ID).unwrap().parse().unwrap();
    let count: u32 = std::env::var(CHILD_COUNT).map_or(u32::MAX, |c| c.parse().unwrap());
    let log = Log::open(&path).unwrap();
    let tag = format!("w{id}");
    for seq in 0..count {
        log.write(
            Level::Info,
            &tag,
            payload(id, seq, (seq as usize * 11) % 150),
        )
        .unwrap();
    }
}

#[test]
fn concurrent_processes_every_record_once() {
    let (_d, path) = tmp();
    let log = LogOptions::new()
        .blocks(1 << 17)
        .block_size(64)
        .open(&path)
        .unwrap();
    // A follower in this process sees the children's records as they are published.
    let mut follower = log.follow(FollowOptions::new().from_start()).unwrap();
    let children: Vec<_> = (0..4)
        .map(|w| spawn_writer(&path, w, Some(10_000)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut followed = 0;
    while followed < 40_000 {
        assert!(
            Instant::now() < deadline,
            "follower saw only {followed} records"
        );
        if let Some(record) = follower.next_timeout(Duration::from_secs(1)) {
            check(&record);
            followed += 1;
        }
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(follower.lost(), 0);
    check_complete(&log, 4, 10_000);
}

#[test]
fn concurrent_processes_wrap_without_torn_records() {
    let (_d, path) = tmp();
    let log = LogOptions::new()
        .blocks(128)
        .block_size(64)
        .open(&path)
        .unwrap();
    let mut children: Vec<_> = (0..3)
        .map(|w| spawn_writer(&path, w, Some(10_000)))
        .collect();
    let mut reader = log.reader_from(0);
    let mut read = 0u64;
    loop {
        let finished = children.iter_mut().all(|c| c.try_wait().unwrap().is_some());
        for record in reader.by_ref() {
            check(&record);
            read += 1;
        }
        if finished {
            break;
        }
        std::thread::yield_now();
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert!(read > 0);
    assert_eq!(reader.position(), log.stats().next_id);
}

// ---- crashes ------------------------------------------------------------------------------

fn rounds() -> u32 {
    stress_rounds(50, 1)
}

#[cfg(unix)]
#[test]
fn crash_killed_writers_leave_a_clean_log() {
    killed_writers_leave_a_clean_log(1);
}

/// The same on a log of two writer lanes: the children write to the lanes of their processors,
/// and each lane's claims, recovery and reader must survive the kills as one lane's do.
#[cfg(unix)]
#[test]
fn crash_killed_writers_leave_a_clean_laned_log() {
    killed_writers_leave_a_clean_log(2);
}

#[cfg(unix)]
fn killed_writers_leave_a_clean_log(lanes: u32) {
    let (_d, path) = tmp();
    LogOptions::new()
        .blocks(256)
        .block_size(64)
        .lanes(lanes)
        .open(&path)
        .unwrap();
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id()));
    for round in 0..rounds() {
        let before = Log::open_read_only(&path).unwrap().stats().next_id;
        let children: Vec<_> = (0..2).map(|w| spawn_writer(&path, w, None)).collect();
        // Let the writers get going, then kill them at a random moment.
        let target = before + 50 + rng.below(3000);
        let deadline = Instant::now() + Duration::from_secs(30);
        let watcher = Log::open_read_only(&path).unwrap();
        while watcher.stats().next_id < target && Instant::now() < deadline {
            std::thread::yield_now();
        }
        for mut child in children {
            // `Child::kill` is SIGKILL on Unix: no chance to clean up, as in a real crash.
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert!(!status.success(), "round {round}: the child was killed");
        }
        // The log opens, every surviving record validates, and it stays writable.
        let log = Log::open(&path).unwrap();
        let survivors: Vec<_> = log.reader().collect();
        assert!(!survivors.is_empty(), "round {round}");
        for record in &survivors {
            check(record);
        }
        let mut out = Vec::new();
        log.dump(&mut out, &plog::Filter::all(), None, plog::Format::Json)
            .unwrap();
        let id = log.write(Level::Error, "w9", payload(9, round, 3)).unwrap();
        // From `id` on: in a laned log also the other lane's records of larger ids, which
        // may be older (ids are ordered within a lane, not across lanes).
        let back = log.reader_from(id).find(|r| r.id == id).unwrap();
        assert_eq!(check(&back), (9, round));
    }
}

// ---- wake-ups ------------------------------------------------------------------------------

/// Ping-pong between a writer and a follower: each record is written only once the follower
/// returned the previous one, so nearly every record meets a follower about to sleep or asleep.
/// Followers sleep up to a minute (`max_sleep`) and each record is awaited 20 s: a lost wake-up
/// fails the test instead of being hidden by a short timeout. Both kinds of follower: on the
/// writable handle, and on a read-only one (announcing through its side mapping).
#[test]
fn concurrent_follow_ping_pong_never_loses_a_wake_up() {
    for read_only in [false, true] {
        let (_d, path) = tmp();
        let log = Arc::new(
            LogOptions::new()
                .blocks(256)
                .block_size(64)
                .open(&path)
                .unwrap(),
        );
        let follow_log = if read_only {
            Arc::new(Log::open_read_only(&path).unwrap())
        } else {
            Arc::clone(&log)
        };
        let mut follower = follow_log
            .follow(FollowOptions::new().max_sleep(Duration::from_secs(60)))
            .unwrap();
        let consumed = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n = rounds() * 40;
        let writer = {
            let (log, consumed) = (Arc::clone(&log), Arc::clone(&consumed));
            std::thread::spawn(move || {
                for seq in 0..n {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while consumed.load(Ordering::SeqCst) < seq {
                        assert!(Instant::now() < deadline, "the follower stalled at {seq}");
                        std::hint::spin_loop();
                    }
                    log.write(Level::Info, "w0", payload(0, seq, 0)).unwrap();
                }
            })
        };
        for seq in 0..n {
            let started = Instant::now();
            let record = follower
                .next_timeout(Duration::from_secs(20))
                .unwrap_or_else(|| {
                    panic!("record {seq} never woke the follower (read-only {read_only})")
                });
            assert!(started.elapsed() < Duration::from_secs(20));
            assert_eq!(check(&record), (0, seq));
            consumed.store(seq + 1, Ordering::SeqCst);
        }
        writer.join().unwrap();
        assert_eq!(follower.lost(), 0);
    }
}

/// A follower reads in batches (one fence and one counter load per batch): with writers lapping
/// it all the time, nothing it returns is torn, each writer's records come in order, and every
/// id is either returned or counted lost.
#[test]
fn concurrent_threads_batched_follower_never_torn() {
    for extra_max in [9usize, 200] {
        let (_d, path) = tmp();
        let log = Arc::new(
            LogOptions::new()
                .blocks(1024)
                .block_size(64)
                .open(&path)
                .unwrap(),
        );
        let mut follower = log.follow(FollowOptions::new().from_id(0)).unwrap();
        let per_writer = 20_000u32;
        let writers: Vec<_> = (0..3u32)
            .map(|w| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let tag = format!("w{w}");
                    for seq in 0..per_writer {
                        let extra = (seq as usize * 31) % extra_max;
                        log.write(Level::Info, &tag, payload(w, seq, extra))
                            .unwrap();
                        // Let the follower in now and then, so that it reads while the
                        // writers lap it, not only the last ring after they finish.
                        if seq % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut last_seq: HashMap<u32, u32> = HashMap::new();
        let (mut read, mut read_blocks, mut last_id) = (0u64, 0u64, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut writers_done = false;
        loop {
            if !writers_done && writers.iter().all(|t| t.is_finished()) {
                writers_done = true;
            }
            let end = log.stats().next_id;
            if writers_done && follower.position() >= end {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the follower stopped making progress"
            );
            let Some(record) = follower.next_timeout(Duration::from_millis(10)) else {
                continue;
            };
            assert!(last_id.is_none_or(|last| record.id > last), "ids increase");
            last_id = Some(record.id);
            let (w, seq) = check(&record);
            let last = last_seq.insert(w, seq);
            assert!(last.is_none_or(|last| seq > last), "writer {w}: in order");
            read += 1;
            let body = 40 + record.tag.len() + record.payload.len();
            read_blocks += body.div_ceil(64) as u64;
        }
        for t in writers {
            t.join().unwrap();
        }
        let end = log.stats().next_id;
        assert_eq!(follower.position(), end);
        assert!(read > 0);
        eprintln!(
            "batched follower: {read} read, {} ids lost of {end}",
            follower.lost()
        );
        if extra_max == 9 {
            // One block per record and no padding: ids read + lost is every id.
            assert_eq!(read + follower.lost(), end, "every id read or counted lost");
        } else {
            assert!(read_blocks + follower.lost() <= end, "no id counted twice");
        }
    }
}
