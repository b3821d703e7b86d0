//! Bounded work on any byte pattern: crafted rings cost readers and opens work linear in the
//! ring, a reader waiting at a counter far ahead of every record does not rescan the ring at
//! every call, and a follower lapped by a fast writer returns from `next_timeout` after a
//! bounded share of work. Work is counted in blocks examined (`plog::testing::take_examined`),
//! not timed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use plog::testing::take_examined;
use plog::{FollowOptions, Level, Log, LogOptions};

const RING_OFF: usize = 4096;
const NEXT_OFF: usize = 64;

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.plog");
    (dir, path)
}

/// A default ring (16384 x 128 B) in which every block starts a record claiming the longest
/// span it may (half the ring, or up to the ring's end), with consistent lengths and a wrong
/// crc; optionally with every later block's claim word naming the record, so that only the
/// crc is wrong.
fn crafted(path: &PathBuf, with_continuations: bool) -> u64 {
    let blocks = 16384u64;
    let block_size = 128usize;
    drop(LogOptions::new().open(path).unwrap());
    let mut bytes = fs::read(path).unwrap();
    let start = |slot: u64| slot + 1;
    let cont = |pos: u64| (1u64 << 62) | (pos + 1);
    let mut slot = 0;
    while slot < blocks {
        let span = (blocks / 2).min(blocks - slot);
        let off = RING_OFF + slot as usize * block_size;
        bytes[off..off + 8].copy_from_slice(&start(slot).to_le_bytes());
        let len = (span as usize * (block_size - 8) - 32) as u32;
        bytes[off + 16..off + 20].copy_from_slice(&len.to_le_bytes());
        bytes[off + 24..off + 28].copy_from_slice(&(span as u32).to_le_bytes());
        bytes[off + 28..off + 32].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        bytes[off + 32] = 2; // info
        if with_continuations {
            for i in 1..span {
                let c = RING_OFF + (slot + i) as usize * block_size;
                bytes[c..c + 8].copy_from_slice(&cont(slot + i).to_le_bytes());
            }
            slot += span;
        } else {
            slot += 1;
        }
    }
    bytes[NEXT_OFF..NEXT_OFF + 8].copy_from_slice(&blocks.to_le_bytes());
    fs::write(path, &bytes).unwrap();
    blocks
}

#[test]
fn crafted_spans_cost_linear_work_to_read_and_open() {
    for with_continuations in [false, true] {
        let (_d, path) = tmp();
        let blocks = crafted(&path, with_continuations);
        let log = Log::open_read_only(&path).unwrap();
        take_examined();
        assert!(log.reader().next().is_none());
        // Each block is examined a bounded number of times: by the batch copy, by the reader's
        // second look at the slot alone, and by the look-ahead over the hole.
        let read = take_examined();
        assert!(
            read <= 6 * blocks,
            "continuations {with_continuations}: a read examined {read} blocks of a {blocks}-block ring"
        );
        let mut out = Vec::new();
        log.dump(&mut out, &plog::Filter::all(), None, plog::Format::Json)
            .unwrap();
        let dumped = take_examined();
        assert!(dumped <= 6 * blocks, "a dump examined {dumped}");
        drop(log);
        let log = Log::open(&path).unwrap();
        let opened = take_examined();
        assert!(opened <= 6 * blocks, "a read-write open examined {opened}");
        // Still writable, and the new record reads back.
        let id = log.write(Level::Info, "t", "after").unwrap();
        assert_eq!(log.reader_from(id).next().unwrap().message(), "after");
    }
}

/// A counter far ahead of every valid record (a power loss wrote the header page back, but
/// not the ring pages): the first `next` looks across the ring once, later calls look only at
/// what was reserved since.
#[test]
fn a_counter_ahead_of_every_record_is_scanned_once() {
    let (_d, path) = tmp();
    let blocks = 1u64 << 16;
    let log = LogOptions::new()
        .blocks(blocks)
        .block_size(64)
        .open(&path)
        .unwrap();
    for i in 0..10 {
        log.write(Level::Info, "t", format!("{i}")).unwrap();
    }
    drop(log);
    let mut bytes = fs::read(&path).unwrap();
    bytes[NEXT_OFF..NEXT_OFF + 8].copy_from_slice(&(blocks - 100).to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let log = Log::open_read_only(&path).unwrap();
    let mut reader = log.reader_from(20);
    take_examined();
    assert!(reader.next().is_none());
    let first = take_examined();
    assert!(first <= 2 * blocks, "first look: {first}");
    for call in 0..100 {
        assert!(reader.next().is_none());
        let again = take_examined();
        assert!(again <= 8, "call {call} examined {again} blocks again");
    }
}

/// A follower lapped by a writer flat out on a small ring: every `next_timeout` does a bounded
/// share of work before it looks at its deadline, so none overstays it by the time of a scan.
#[test]
fn a_lapped_follower_returns_after_bounded_work() {
    let (_d, path) = tmp();
    let blocks = 1024u64;
    let log = Arc::new(
        LogOptions::new()
            .blocks(blocks)
            .block_size(128)
            .open(&path)
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                log.write(Level::Info, "w", n.to_le_bytes()).unwrap();
                n += 1;
            }
        })
    };
    let mut follower = log.follow(FollowOptions::new().from_start()).unwrap();
    let mut worst_work = 0;
    let mut worst_time = Duration::ZERO;
    let mut returned = 0;
    for _ in 0..2000 {
        take_examined();
        let started = Instant::now();
        if follower.next_timeout(Duration::from_millis(1)).is_some() {
            returned += 1;
        }
        worst_time = worst_time.max(started.elapsed());
        worst_work = worst_work.max(take_examined());
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // A step copies at most 32 records a round and gives up after 4 rounds lost to laps; a hole
    // scan looks at most across the ring.
    assert!(
        worst_work <= 8 * blocks,
        "one next_timeout examined {worst_work} blocks (took {worst_time:?})"
    );
    assert!(returned > 0);
}

/// A one-block record whose block still holds an older record's bytes in its padding (a record
/// too long for the writer's per-thread buffer is written around its claim words and leaves
/// the padding as it was) is read by a batch in one pass: the batch takes the padding as zero,
/// as the checksum does, so the record passes there and is not read a second time alone.
#[test]
fn stale_padding_bytes_do_not_send_a_batch_back_to_single_reads() {
    let (_d, path) = tmp();
    let log = LogOptions::new()
        .blocks(64)
        .block_size(512)
        .open(&path)
        .unwrap();
    // A lap of records filling their blocks with 0xab.
    for _ in 0..64 {
        log.write(Level::Info, "t", [0xab; 470].as_slice()).unwrap();
    }
    // Then a lap of 301-byte payloads: 326 content bytes, 2 of padding left at 0xab.
    let payload = [0x11u8; 301];
    for _ in 0..64 {
        log.write(Level::Info, "t", payload.as_slice()).unwrap();
    }
    let mut follower = log.follow(FollowOptions::new().from_start()).unwrap();
    take_examined();
    for _ in 0..64 {
        let record = follower.next_ref().unwrap();
        assert_eq!(record.payload, payload.as_slice());
    }
    assert_eq!(follower.lost(), 0);
    let examined = take_examined();
    assert_eq!(
        examined, 64,
        "each block examined once by its batch, not again alone"
    );
}
