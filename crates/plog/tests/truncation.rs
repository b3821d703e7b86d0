//! A log file truncated by another program under a reader or a follower: `Error::Truncated`
//! from the next look, never a `SIGBUS` (docs/plog-format.md, "Limits"). A test that fails here
//! usually kills the whole test binary with signal 7, which is why these tests have a file of
//! their own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plog::{Error, Filter, FollowOptions, Format, Level, Log, LogOptions};

const BLOCKS: u64 = 64;
const BLOCK_SIZE: u32 = 128;
const FILE_LEN: u64 = 4096 + BLOCKS * BLOCK_SIZE as u64;

fn log_with_records(records: u64) -> (tempfile::TempDir, PathBuf, Log) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.plog");
    let log = LogOptions::new()
        .blocks(BLOCKS)
        .block_size(BLOCK_SIZE)
        .open(&path)
        .unwrap();
    for i in 0..records {
        log.write(Level::Info, "t", format!("record {i}")).unwrap();
    }
    (dir, path, log)
}

/// Another program's `truncate -s LEN`: through a handle of its own, not the log's.
fn cut(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn assert_truncated(error: &Error, path: &Path, len: u64) {
    match error {
        Error::Truncated {
            path: at,
            expected,
            found,
        } => assert_eq!((at.as_path(), *expected, *found), (path, FILE_LEN, len)),
        other => panic!("not Truncated: {other}"),
    }
}

/// The bit a sleeping follower sets in the wake word (offset 128) before it sleeps.
fn follower_sleeps(path: &Path) -> bool {
    let header = std::fs::read(path).unwrap();
    u32::from_le_bytes(header[128..132].try_into().unwrap()) & (1 << 31) != 0
}

#[test]
fn a_follower_asleep_when_the_file_is_cut_short_returns_truncated() {
    for cut_to in [0, 4096, FILE_LEN - 1] {
        let (_dir, path, log) = log_with_records(1);
        let mut follower = log.follow(FollowOptions::new().from_start()).unwrap();
        let (send, receive) = mpsc::channel();
        let reading = std::thread::spawn(move || {
            let first = follower.try_next_ref().map(|r| r.map(|r| r.id));
            send.send(first).unwrap();
            // Then it waits for the next record, asleep on the wake word.
            let next = follower.try_next_ref().map(|r| r.map(|r| r.id));
            send.send(next).unwrap();
            // Once cut short, it stays so: every later call says so again.
            let again = follower.try_next_ref().map(|r| r.map(|r| r.id));
            let timed = follower
                .try_next_ref_timeout(Duration::from_secs(1))
                .map(|r| r.map(|r| r.id));
            (again, timed, follower.next_timeout(Duration::from_secs(1)))
        });
        let wait = Duration::from_secs(20);
        assert_eq!(receive.recv_timeout(wait).unwrap().unwrap(), Some(0));
        let deadline = Instant::now() + wait;
        while !follower_sleeps(&path) {
            assert!(Instant::now() < deadline, "the follower never slept");
            std::thread::yield_now();
        }
        cut(&path, cut_to);
        let error = receive.recv_timeout(wait).unwrap().unwrap_err();
        assert_truncated(&error, &path, cut_to);
        let (again, timed, plain) = reading.join().unwrap();
        assert_truncated(&again.unwrap_err(), &path, cut_to);
        assert_truncated(&timed.unwrap_err(), &path, cut_to);
        assert!(plain.is_none(), "the Option methods end: {plain:?}");
    }
}

#[test]
fn a_follower_thread_of_a_file_cut_short_ends_with_truncated() {
    let (_dir, path, log) = log_with_records(0);
    let thread = log.start_following(Vec::new()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !follower_sleeps(&path) {
        assert!(Instant::now() < deadline, "the follower never slept");
        std::thread::yield_now();
    }
    cut(&path, 0);
    // `stop` wakes the follower through the wake word, in a header that is gone: it must not
    // touch it, and the thread's result is the truncation.
    assert_truncated(&thread.stop().unwrap_err(), &path, 0);
}

#[test]
fn a_reader_at_the_end_and_a_new_reader_and_dump_of_a_file_cut_short_return_truncated() {
    let (_dir, path, log) = log_with_records(10);
    let mut reader = log.reader();
    for id in 0..10 {
        assert_eq!(reader.try_next_ref().unwrap().map(|r| r.id), Some(id));
    }
    assert!(reader.try_next_ref().unwrap().is_none(), "at the end");
    cut(&path, 4096);
    // The caller may have waited any time since the reader reached the end: it looks.
    assert_truncated(&reader.try_next_ref().unwrap_err(), &path, 4096);
    assert!(reader.next().is_none());

    let mut fresh = log.reader_from(3);
    assert_truncated(&fresh.try_next_ref().unwrap_err(), &path, 4096);
    let dumped = log.dump(&mut Vec::new(), &Filter::all(), None, Format::Text);
    assert_truncated(&dumped.unwrap_err(), &path, 4096);
    let followed = log.follow(FollowOptions::new().from_start()).unwrap();
    let mut followed = followed;
    assert_truncated(&followed.try_next_ref().unwrap_err(), &path, 4096);
    // Cursors live in the header: saving one there is refused, not a crash.
    assert_truncated(&log.save_cursor("c", 1).unwrap_err(), &path, 4096);
    assert_truncated(&log.load_cursor("c").unwrap_err(), &path, 4096);
}

/// A reader that keeps reading, without ever reaching the end, looks at the file's length
/// before every `plog::testing::LENGTH_CHECK_READS`-th read of the ring (a plain reader reads
/// one record a read): here the read right after the cut is such a read.
#[test]
fn a_reader_that_never_reaches_the_end_still_looks_every_few_reads() {
    let every = plog::testing::LENGTH_CHECK_READS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.plog");
    let blocks = 4 * every as u64;
    let log = LogOptions::new()
        .blocks(blocks)
        .block_size(BLOCK_SIZE)
        .open(&path)
        .unwrap();
    for i in 0..blocks {
        log.write(Level::Info, "t", format!("record {i}")).unwrap();
    }
    let mut reader = log.reader();
    // The first read looks, then `every - 1` do not.
    for id in 0..every as u64 {
        assert_eq!(reader.try_next_ref().unwrap().map(|r| r.id), Some(id));
    }
    cut(&path, 4096);
    match reader.try_next_ref() {
        Err(Error::Truncated { found: 4096, .. }) => {}
        other => panic!("not Truncated: {:?}", other.map(|r| r.map(|r| r.id))),
    }
}
