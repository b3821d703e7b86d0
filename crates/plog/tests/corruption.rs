//! Any byte pattern in a file: an error or skipped records, never a panic, hang or
//! out-of-bounds read.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::{Forged, forged_record};
use pounds_testkit::{Rng, crc32c, stress_rounds};

use std::fs;
use std::time::Duration;

use plog::{Filter, FollowOptions, Format, Level, Log, LogOptions};

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
    let mut follower = log.follow(FollowOptions::new().from_start()).unwrap();
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

    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let rounds = stress_rounds(300, 1);
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
                    bytes[at] = rng.next_u64() as u8;
                }
            }
            // Damage to the live header words (counter, wake word, cursors).
            2 => {
                let at = [64, 65, 70, 71, 128, 131, 1024, 1032, 1039][rng.below(9) as usize];
                bytes[at] = rng.next_u64() as u8;
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
    let mut rng = Rng::new(42);
    for len in [1usize, 15, 16, 63, 64, 4095, 4096, 10_000] {
        let mut bytes = rng.bytes(len);
        if len >= 16 && rng.below(2) == 0 {
            bytes[..16].copy_from_slice(&plog::MAGIC);
        }
        fs::write(&path, &bytes).unwrap();
        assert!(Log::open_read_only(&path).is_err(), "{len} random bytes");
        assert!(Log::open(&path).is_err(), "{len} random bytes");
        assert_eq!(fs::read(&path).unwrap(), bytes, "left untouched");
    }
}

const RING: usize = 4096;
const BS: usize = 64;
const NB: u64 = 16;

/// Writes a record with `fields`, `tag` and `payload` at the block of `id`, with a correct crc
/// for `fields.crc_id`: only the reader's field checks stand between it and the caller.
fn forge(bytes: &mut Vec<u8>, id: u64, f: Forged, tag: &[u8], payload: &[u8]) {
    let off = RING + (id % NB) as usize * BS;
    let rec = forged_record(f, tag, payload);
    if bytes.len() < off + rec.len() {
        bytes.resize(off + rec.len(), 0);
    }
    bytes[off..off + rec.len()].copy_from_slice(&rec);
}

fn record(id: u64, payload_len: u32) -> Forged {
    Forged {
        commit: id + 1,
        len: payload_len,
        blocks: (40 + 1 + payload_len).div_ceil(BS as u32),
        level: 2,
        kind: 0,
        tag_len: 1,
        crc_id: id,
    }
}

#[test]
fn forged_records_with_valid_checksums_but_inconsistent_fields_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged.plog");
    let log = LogOptions::new()
        .blocks(NB)
        .block_size(BS as u32)
        .open(&path)
        .unwrap();
    for i in 0..NB {
        log.write(Level::Info, "g", [i as u8; 4]).unwrap(); // one block each: ids 0..16
    }
    drop(log);
    let good = fs::read(&path).unwrap();

    // The forger is right: a consistent forged record reads back as written.
    let mut bytes = good.clone();
    forge(&mut bytes, 3, record(3, 20), b"f", &[7; 20]);
    fs::write(&path, &bytes).unwrap();
    let back = Log::open_read_only(&path)
        .unwrap()
        .reader_from(3)
        .next()
        .unwrap();
    assert_eq!((back.id, back.pid, back.tag.as_str()), (3, 4242, "f"));
    assert_eq!(back.payload, [7; 20]);

    let r = record(5, 4);
    let cases: Vec<(&str, u64, Forged, Vec<u8>)> = vec![
        ("no blocks", 5, Forged { blocks: 0, ..r }, vec![1; 4]),
        (
            "more than half the ring",
            5,
            Forged {
                blocks: 9,
                len: 9 * 64 - 41,
                ..r
            },
            vec![1; 9 * 64 - 41],
        ),
        // The last block, claiming two: its second block would be past the ring's end, where
        // this file has bytes (a copy of the record's tail), so only the span check stops it.
        (
            "past the ring's end",
            15,
            Forged {
                commit: 16,
                crc_id: 15,
                blocks: 2,
                len: 60,
                ..r
            },
            vec![2; 60],
        ),
        (
            "length past the file",
            5,
            Forged { len: u32::MAX, ..r },
            vec![1; 4],
        ),
        (
            "length not matching blocks",
            5,
            Forged { len: 100, ..r },
            vec![1; 4],
        ),
        // Would hide the genuine records 6 and 7 behind it.
        (
            "more blocks than its length needs",
            5,
            Forged { blocks: 3, ..r },
            vec![1; 4],
        ),
        (
            "tag longer than its block",
            5,
            Forged { tag_len: 200, ..r },
            vec![1; 4],
        ),
        ("unknown level", 5, Forged { level: 9, ..r }, vec![1; 4]),
        ("unknown kind", 5, Forged { kind: 2, ..r }, vec![1; 4]),
        (
            "commit of another id",
            5,
            Forged {
                commit: 5 + 1 + NB,
                crc_id: 5 + NB,
                ..r
            },
            vec![1; 4],
        ),
        (
            "crc of another lap",
            5,
            Forged {
                crc_id: 5 + NB,
                ..r
            },
            vec![1; 4],
        ),
        (
            "commit of the next block",
            5,
            Forged {
                commit: 7,
                crc_id: 6,
                ..r
            },
            vec![1; 4],
        ),
    ];
    for (what, id, fields, payload) in cases {
        let mut bytes = good.clone();
        forge(&mut bytes, id, fields, b"f", &payload);
        // The genuine records whose blocks the forged bytes cover are gone.
        let covered = (id..NB).take((41 + payload.len()).div_ceil(BS));
        let expected: Vec<u64> = (0..NB)
            .filter(|i| !covered.clone().any(|c| c == *i))
            .collect();
        // A file longer than its ring: the bytes after it are ignored.
        bytes.resize(bytes.len().max(RING + NB as usize * BS + 4096), 0xA5);
        for writable in [false, true] {
            fs::write(&path, &bytes).unwrap();
            let log = if writable {
                Log::open(&path).unwrap()
            } else {
                Log::open_read_only(&path).unwrap()
            };
            let mut reader = log.reader_from(0);
            let ids: Vec<u64> = reader.by_ref().map(|r| r.id).collect();
            if writable && what == "commit of another id" {
                // A complete record of the next lap, as if the header page with the counter
                // had not reached the disk: a read-write open recovers the counter to its end
                // (docs/plog-format.md, "Recovering the counter"), and the ring reads on.
                assert_eq!(log.stats().next_id, id + NB + 1, "{what}");
                let lap: Vec<u64> = (id + 1..NB).chain([id + NB]).collect();
                assert_eq!(ids, lap, "{what}: read as the newest record");
                continue;
            }
            assert_eq!(ids, expected, "{what}: the forged block is skipped");
            if what == "unknown kind" {
                // A valid record of a kind a later format adds: stepped over, not lost
                // (docs/plog-format.md, "Versions").
                assert_eq!((reader.lost(), reader.unknown_kinds()), (0, 1), "{what}");
                continue;
            }
            // Counted lost when a valid record follows; at the end, it may still be in flight.
            let at_end = expected.last() != Some(&(NB - 1));
            let lost = if at_end {
                0
            } else {
                NB - expected.len() as u64
            };
            assert_eq!(reader.lost(), lost, "{what}: and counted lost");
            assert_eq!(reader.position(), if at_end { id } else { NB }, "{what}");
            let mut out = Vec::new();
            let summary = log
                .dump(&mut out, &Filter::all(), None, Format::Json)
                .unwrap();
            assert_eq!(summary.written, expected.len() as u64, "{what}");
            assert!(
                !String::from_utf8_lossy(&out).contains("\"pid\":4242"),
                "{what}"
            );
            let options = FollowOptions::new().from_id(0).hole_grace(Duration::ZERO);
            let mut follower = log.follow(options).unwrap();
            let mut followed = 0;
            while let Some(r) = follower.next_timeout(Duration::ZERO) {
                assert_ne!(r.pid, 4242, "{what}");
                followed += 1;
            }
            assert_eq!(
                followed,
                expected.len(),
                "{what}: the follower skips it too"
            );
            assert_eq!(log.stats().oldest_id, expected.first().copied(), "{what}");
        }
    }
}

#[test]
fn plausible_headers_and_counters_that_disagree_with_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let good_path = dir.path().join("good.plog");
    let log = LogOptions::new()
        .blocks(NB)
        .block_size(BS as u32)
        .open(&good_path)
        .unwrap();
    for i in 0..40u32 {
        log.write(
            Level::ALL[i as usize % 5],
            "t1",
            vec![i as u8; (i as usize * 13) % 90],
        )
        .unwrap();
    }
    drop(log);
    let good = fs::read(&good_path).unwrap();
    let path = dir.path().join("bad.plog");
    let limit = plog::POSITION_LIMIT;
    // Geometries with a valid header crc that are not the ring's: fewer, more or larger
    // blocks (the longer ones make the file too short; they must be refused, not read).
    for (blocks, block_size) in [
        (16u64, 64u32),
        (8, 64),
        (2, 64),
        (4, 128),
        (32, 64),
        (16, 128),
        (2, 1 << 20),
    ] {
        for next in [
            0,
            3,
            16,
            39,
            1 << 40,
            limit - (1 << 33) - 1,
            limit - (1 << 33),
            limit - 1,
        ] {
            let mut bytes = good.clone();
            bytes[28..32].copy_from_slice(&block_size.to_le_bytes());
            bytes[32..40].copy_from_slice(&blocks.to_le_bytes());
            let crc = crc32c(&bytes[..60]);
            bytes[60..64].copy_from_slice(&crc.to_le_bytes());
            bytes[64..72].copy_from_slice(&next.to_le_bytes());
            let fits = 4096 + blocks * u64::from(block_size) <= bytes.len() as u64;
            for writable in [false, true] {
                let read = exercise(&path, &bytes, writable);
                assert!(read <= blocks as usize, "{blocks}x{block_size} next {next}");
                let opened = Log::open_read_only(&path);
                assert_eq!(
                    opened.is_ok(),
                    fits,
                    "{blocks}x{block_size} next {next}: {:?}",
                    opened.as_ref().err()
                );
                if let Ok(log) = opened {
                    assert!(log.stats().next_id >= next.min(limit));
                    // Whatever a wrong geometry lets through is a whole record that was
                    // written: the original ones (one byte repeated) or `exercise`'s own.
                    for r in log.reader() {
                        let original =
                            r.tag == "t1" && r.payload.iter().all(|&b| b == r.payload[0]);
                        assert!(original || r.payload == b"recovered", "{r:?}");
                    }
                }
            }
        }
    }
}
