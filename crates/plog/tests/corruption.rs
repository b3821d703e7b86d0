//! Any byte pattern in a file: an error or skipped records, never a panic, hang or
//! out-of-bounds read.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::time::Duration;

use plog::{Filter, FollowOptions, Format, Level, Log, LogOptions};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Opens `bytes` as a log every way there is and reads everything it offers.
fn exercise(path: &std::path::Path, bytes: &[u8], writable: bool) -> usize {
    fs::write(path, bytes).unwrap();
    let opened = if writable {
        Log::open(path)
    } else {
        Log::open_read_only(path)
    };
    let Ok(log) = opened else { return 0 };
    let stats = log.stats();
    assert!(stats.next_id <= plog::POSITION_LIMIT);
    let mut count = 0;
    let mut reader = log.reader();
    for record in reader.by_ref() {
        assert!(record.payload.len() <= log.max_message(0));
        assert!(record.tag.len() <= plog::MAX_TAG_LEN);
        count += 1;
        assert!(count <= stats.blocks as usize, "more records than blocks");
    }
    let mut out = Vec::new();
    log.dump(&mut out, &Filter::all(), None, Format::Text)
        .unwrap();
    log.dump(
        &mut out,
        &Filter::all().min_level(Level::Warn).tag("t1"),
        Some(3),
        Format::Json,
    )
    .unwrap();
    let _ = log.reader_from(stats.next_id.saturating_sub(5)).count();
    let _ = log.cursors();
    let _ = log.load_cursor("c");
    let mut follower = log.follow(FollowOptions::new().from_start(true)).unwrap();
    while follower.next_timeout(Duration::ZERO).is_some() {}
    if writable {
        // Still writable: the write lands and reads back.
        if let Ok(id) = log.write(Level::Info, "after", "recovered") {
            let back = log.reader_from(id).next().unwrap();
            assert_eq!(back.payload, b"recovered");
        }
    }
    count
}

#[test]
fn random_flips_and_truncations_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good_path = dir.path().join("good.plog");
    let log = LogOptions::new()
        .blocks(64)
        .block_size(64)
        .open(&good_path)
        .unwrap();
    for i in 0..150u32 {
        let level = Level::ALL[i as usize % 5];
        log.write(
            level,
            &format!("t{}", i % 3),
            vec![i as u8; (i as usize * 17) % 150],
        )
        .unwrap();
    }
    log.save_cursor("c", 100).unwrap();
    drop(log);
    let good = fs::read(&good_path).unwrap();
    let path = dir.path().join("bad.plog");
    assert!(exercise(&path, &good, false) > 0);

    let mut rng = Rng(0x1234_5678_9abc_def1);
    let rounds = std::env::var("POUNDS_STRESS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300u32);
    for round in 0..rounds {
        let mut bytes = good.clone();
        match round % 4 {
            // Flips anywhere.
            0 => {
                for _ in 0..=rng.below(20) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            // Random bytes in the ring's record headers.
            1 => {
                for _ in 0..=rng.below(40) {
                    let block = rng.below(64) as usize;
                    let at = 4096 + block * 64 + rng.below(40) as usize;
                    bytes[at] = rng.next() as u8;
                }
            }
            // Damage to the live header words (counter, wake word, cursors).
            2 => {
                let at = [64, 65, 70, 71, 128, 131, 1024, 1032, 1039][rng.below(9) as usize];
                bytes[at] = rng.next() as u8;
                if rng.below(2) == 0 {
                    let at = 4096 + rng.below(64 * 64) as usize;
                    bytes[at] ^= 0xff;
                }
            }
            // Truncation, possibly with a flip.
            _ => {
                bytes.truncate(rng.below(bytes.len() as u64) as usize);
                if !bytes.is_empty() && rng.below(2) == 0 {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 0x55;
                }
            }
        }
        exercise(&path, &bytes, round % 2 == 0);
    }
}

#[test]
fn a_flipped_payload_byte_skips_exactly_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.plog");
    let log = LogOptions::new()
        .blocks(16)
        .block_size(64)
        .open(&path)
        .unwrap();
    for i in 0..5u8 {
        log.write(Level::Info, "t", [i; 10]).unwrap();
    }
    drop(log);
    let mut bytes = fs::read(&path).unwrap();
    bytes[4096 + 2 * 64 + 45] ^= 1; // record 2's payload
    fs::write(&path, &bytes).unwrap();
    let log = Log::open_read_only(&path).unwrap();
    let mut reader = log.reader();
    let ids: Vec<u64> = reader.by_ref().map(|r| r.id).collect();
    assert_eq!(ids, [0, 1, 3, 4]);
    assert_eq!(reader.lost(), 1, "the damaged record is counted as lost");
}

#[test]
fn garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk");
    let mut rng = Rng(42);
    for len in [1usize, 15, 16, 63, 64, 4095, 4096, 10_000] {
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 16 && rng.below(2) == 0 {
            bytes[..16].copy_from_slice(&plog::MAGIC);
        }
        fs::write(&path, &bytes).unwrap();
        assert!(Log::open_read_only(&path).is_err(), "{len} random bytes");
        assert!(Log::open(&path).is_err(), "{len} random bytes");
        assert_eq!(fs::read(&path).unwrap(), bytes, "left untouched");
    }
}
