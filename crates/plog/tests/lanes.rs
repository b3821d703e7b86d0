//! Laned logs (docs/plog-format.md, "Lanes"): ids, the merged reader, laps, followers, recovery
//! and the header rules of a ring split into writer lanes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plog::testing::write_in_lane;
use plog::{Error, FollowOptions, Format, Level, Log, LogOptions};

mod common;
use common::{check, payload};

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("laned.plog");
    (dir, path)
}

fn laned(path: &Path, blocks: u64, lanes: u32) -> Log {
    LogOptions::new()
        .blocks(blocks)
        .block_size(64)
        .lanes(lanes)
        .open(path)
        .unwrap()
}

/// Byte offset of lane `lane`'s reservation counter (docs/plog-format.md, "Lanes").
fn counter_offset(lane: u64) -> u64 {
    4096 + 128 * lane
}

fn counter(path: &Path, lane: u64) -> u64 {
    let bytes = fs::read(path).unwrap();
    let at = counter_offset(lane) as usize;
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn a_laned_log_gives_each_lane_its_ids_and_reads_them_back_merged_in_time_order() {
    let (_d, path) = tmp();
    let log = laned(&path, 64, 4);
    let stats = log.stats();
    assert_eq!(
        (stats.lanes, stats.header_size, stats.blocks),
        (4, 8192, 64)
    );
    assert_eq!(stats.file_size, 8192 + 64 * 64);
    assert_eq!(stats.version, 3);
    // One thread, lanes in an order of their own: times increase in the order of the writes.
    let lanes = [3, 0, 2, 1, 0, 3, 3, 1, 2, 0];
    let mut written = Vec::new();
    for (seq, &lane) in lanes.iter().enumerate() {
        let id = write_in_lane(&log, lane, Level::Info, "w0", &payload(0, seq as u32, 3)).unwrap();
        assert_eq!(id % 4, lane as u64, "an id names its lane");
        written.push(id);
    }
    let unique: HashSet<u64> = written.iter().copied().collect();
    assert_eq!(unique.len(), written.len(), "ids are unique over the lanes");
    let read: Vec<(u64, u32)> = log.reader().map(|r| (r.id, check(&r).1)).collect();
    let expected: Vec<(u64, u32)> = written.iter().copied().zip(0..).collect();
    assert_eq!(read, expected, "merged in time order, each with its id");
    assert!(log.stats().next_id > *written.iter().max().unwrap());
    assert_eq!(log.stats().oldest_id, Some(written[0]));
    // Each lane's counter counts that lane's blocks only.
    for lane in 0..4u64 {
        let in_lane = lanes.iter().filter(|&&l| l as u64 == lane).count() as u64;
        assert_eq!(counter(&path, lane), in_lane, "lane {lane}");
    }
    // The writer's own lane: whatever processor runs it, the id is in some lane and reads back.
    let id = log.write(Level::Warn, "w0", payload(0, 10, 3)).unwrap();
    assert_eq!(log.reader().last().map(|r| r.id), Some(id));
    // A dump is in the same order.
    let mut out = Vec::new();
    let summary = log
        .dump(&mut out, &plog::Filter::all(), None, Format::Json)
        .unwrap();
    assert_eq!((summary.written, summary.lost), (11, 0));
    let dumped: Vec<u64> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let at = line.find("\"id\":").unwrap() + 5;
            line[at..]
                .split([',', '}'])
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut ids = written.clone();
    ids.push(id);
    assert_eq!(dumped, ids);
}

/// Ids in a JSON-lines dump, in order.
fn dumped_ids(out: &[u8]) -> Vec<u64> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|line| {
            let at = line.find("\"id\":").unwrap() + 5;
            line[at..]
                .split([',', '}'])
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn runs_of_one_lane_between_the_others_records_read_back_in_time_order_on_every_path() {
    // A batched reader (a dump, a follower) returns a lane's validated records in a run while
    // they come before every other lane's: runs of each length, ending at every other lane's
    // record, and a lane left empty, must still come back in the order they were written.
    let (_d, path) = tmp();
    let log = laned(&path, 512, 4);
    let runs: [(usize, usize); 9] = [
        (0, 5),
        (1, 1),
        (0, 3),
        (1, 40),
        (0, 1),
        (1, 2),
        (0, 33),
        (1, 7),
        (0, 2),
    ];
    let mut written = Vec::new();
    for (lane, len) in runs {
        for _ in 0..len {
            let seq = written.len() as u32;
            written
                .push(write_in_lane(&log, lane, Level::Info, "w0", &payload(0, seq, 2)).unwrap());
        }
    }
    let read: Vec<u64> = log.reader().map(|r| r.id).collect();
    assert_eq!(read, written, "a reader");
    let mut out = Vec::new();
    let summary = log
        .dump(&mut out, &plog::Filter::all(), None, Format::Json)
        .unwrap();
    assert_eq!(summary.written, written.len() as u64);
    assert_eq!(dumped_ids(&out), written, "a dump");
    let mut follower = log.follow(FollowOptions::new().from_start()).unwrap();
    let followed: Vec<u64> = (0..written.len())
        .map(|_| {
            follower
                .next_timeout(Duration::from_secs(10))
                .expect("every written record is there")
                .id
        })
        .collect();
    assert_eq!(followed, written, "a follower");
    // A lane that gets records while another runs: they come when the reader finds them,
    // none is lost or returned twice.
    let mid = write_in_lane(&log, 0, Level::Info, "w0", &payload(0, 0, 2)).unwrap();
    let late = write_in_lane(&log, 2, Level::Info, "w0", &payload(0, 1, 2)).unwrap();
    let mut next = Vec::new();
    while next.len() < 2 {
        next.push(follower.next_timeout(Duration::from_secs(10)).unwrap().id);
    }
    assert_eq!(next, [mid, late]);
    assert_eq!(follower.lost(), 0);
}

#[test]
fn a_reader_from_an_id_or_a_saved_position_never_misses_a_record_of_any_lane() {
    let (_d, path) = tmp();
    let log = laned(&path, 64, 2);
    let mut ids = Vec::new();
    for seq in 0..12u32 {
        // Lane 1 twice as often: its ids run ahead of lane 0's.
        let lane = usize::from(seq % 3 != 0);
        ids.push(write_in_lane(&log, lane, Level::Info, "w0", &payload(0, seq, 1)).unwrap());
    }
    for &from in &ids {
        let read: HashSet<u64> = log.reader_from(from).map(|r| r.id).collect();
        let expected: HashSet<u64> = ids.iter().copied().filter(|&id| id >= from).collect();
        assert_eq!(read, expected, "from {from}");
    }
    // A position saved mid-way resumes with every record not yet returned (some again).
    for taken in 0..ids.len() {
        let mut reader = log.reader();
        let seen: Vec<u64> = reader.by_ref().take(taken).map(|r| r.id).collect();
        reader.save_cursor("mid").unwrap();
        let resumed: HashSet<u64> = log
            .reader_from_cursor("mid")
            .unwrap()
            .map(|r| r.id)
            .collect();
        for id in &ids[taken..] {
            assert!(resumed.contains(id), "record {id} missed after {seen:?}");
        }
    }
}

/// Byte offset of cursor slot `slot`'s lane table (docs/plog-format.md, "Lanes").
fn cursor_table_offset(slot: u64) -> u64 {
    6144 + 128 * slot
}

/// The ids of a reader, in the order it returns them.
fn ids_of(reader: plog::Reader) -> Vec<u64> {
    reader.map(|r| r.id).collect()
}

#[test]
fn a_cursor_a_reader_saved_resumes_every_lane_exactly_where_it_was() {
    let (_d, path) = tmp();
    let log = laned(&path, 64, 2);
    for seq in 0..30u32 {
        // Lane 1 twice as often: its ids run ahead of lane 0's.
        let lane = usize::from(seq % 3 != 0);
        write_in_lane(&log, lane, Level::Info, "w0", &payload(0, seq, 1)).unwrap();
    }
    let all = ids_of(log.reader());
    assert_eq!(all.len(), 30);
    for taken in 0..=all.len() {
        let mut reader = log.reader();
        assert_eq!(ids_of_taken(&mut reader, taken), all[..taken]);
        reader.save_cursor("mid").unwrap();
        let mut resumed = log.reader_from_cursor("mid").unwrap();
        assert_eq!(
            resumed.by_ref().map(|r| r.id).collect::<Vec<_>>(),
            all[taken..],
            "after {taken}: every record not yet returned, none again"
        );
        assert_eq!(resumed.lost(), 0);
        // A follower resumes there too, and saves where it is for the next.
        let mut follower = log.follow(FollowOptions::new().from_cursor("mid")).unwrap();
        // Past the last record there is nothing to wait for: a short wait sees that.
        let wait = Duration::from_millis(if taken == all.len() { 20 } else { 5000 });
        let next = follower.next_timeout(wait).map(|r| r.id);
        assert_eq!(next, all.get(taken).copied(), "follower after {taken}");
        follower.save_cursor("mid").unwrap();
        let rest = ids_of(log.reader_from_cursor("mid").unwrap());
        assert_eq!(
            rest,
            all[(taken + 1).min(all.len())..],
            "after the follower"
        );
    }
    // A cursor saved as a bare id resumes every lane from the id, as reader_from does.
    let mut reader = log.reader();
    ids_of_taken(&mut reader, 10);
    reader.save_cursor("mid").unwrap();
    let id = reader.position();
    log.save_cursor("mid", id).unwrap();
    assert_eq!(
        ids_of(log.reader_from_cursor("mid").unwrap()),
        ids_of(log.reader_from(id))
    );
    // No such cursor: a follower from it starts as its other options say.
    let mut follower = log
        .follow(FollowOptions::new().from_cursor("none").from_start())
        .unwrap();
    assert_eq!(
        follower.next_timeout(Duration::from_secs(5)).map(|r| r.id),
        Some(all[0])
    );
}

fn ids_of_taken(reader: &mut plog::Reader, n: usize) -> Vec<u64> {
    reader.by_ref().take(n).map(|r| r.id).collect()
}

/// A reader that read a busy lane's last lap and an idle lane's one record: resumed from its
/// cursor it has nothing to read and has lost nothing (from its position alone, the busy lane
/// would start laps behind and count them lost).
#[test]
fn a_cursor_of_lanes_far_apart_resumes_without_counting_losses() {
    let (_d, path) = tmp();
    let log = laned(&path, 64, 2);
    write_in_lane(&log, 0, Level::Info, "w0", &payload(0, 0, 1)).unwrap();
    for seq in 1..=100u32 {
        write_in_lane(&log, 1, Level::Info, "w0", &payload(0, seq, 1)).unwrap();
    }
    let mut reader = log.reader();
    assert_eq!(
        reader.by_ref().count(),
        33,
        "lane 0's record and lane 1's last lap"
    );
    reader.save_cursor("far").unwrap();
    let mut resumed = log.reader_from_cursor("far").unwrap();
    assert_eq!(resumed.next().map(|r| r.id), None);
    assert_eq!(resumed.lost(), 0);
    // What was written since comes next, of either lane.
    let new = write_in_lane(&log, 1, Level::Info, "w0", &payload(0, 101, 1)).unwrap();
    assert_eq!(resumed.next().map(|r| r.id), Some(new));
}

/// One cursor saved over and over from two readers at different places while another thread
/// resumes from it: each resumed reader is one of the two saves' (or, while a save is in
/// progress, a start from one's position alone), never lanes of one with lanes of the other.
#[test]
fn a_cursor_saved_while_loaded_resumes_from_one_whole_save() {
    let (_d, path) = tmp();
    let log = Arc::new(laned(&path, 64, 2));
    for seq in 0..30u32 {
        let lane = usize::from(seq % 3 != 0);
        write_in_lane(&log, lane, Level::Info, "w0", &payload(0, seq, 1)).unwrap();
    }
    let (mut ahead, mut behind) = (log.reader(), log.reader());
    ids_of_taken(&mut ahead, 20);
    ids_of_taken(&mut behind, 4);
    let mut allowed = Vec::new();
    for reader in [&ahead, &behind] {
        reader.save_cursor("x").unwrap();
        allowed.push(ids_of(log.reader_from_cursor("x").unwrap()));
        allowed.push(ids_of(log.reader_from(reader.position())));
    }
    assert_eq!(allowed[0].len(), 10);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let saver = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut saves = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ahead.save_cursor("x").unwrap();
                behind.save_cursor("x").unwrap();
                saves += 2;
            }
            saves
        })
    };
    let mut seen = HashSet::new();
    for round in 0..20_000 {
        let resumed = ids_of(log.reader_from_cursor("x").unwrap());
        let Some(which) = allowed.iter().position(|ids| *ids == resumed) else {
            panic!("round {round}: {resumed:?} is none of {allowed:?}");
        };
        seen.insert(which);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let saves = saver.join().unwrap();
    assert!(saves > 2, "{saves} saves");
    eprintln!("{saves} saves; resumed as {seen:?} of the four allowed");
}

/// A lane table that is no whole save of this cursor's id (a save killed half-way, another
/// id, offsets past the lanes' counters) resumes from the id alone: never past a record.
#[test]
fn a_damaged_cursor_lane_table_resumes_from_the_id_alone() {
    let (_d, path) = tmp();
    let log = laned(&path, 64, 2);
    for seq in 0..12u32 {
        let lane = usize::from(seq % 3 != 0);
        write_in_lane(&log, lane, Level::Info, "w0", &payload(0, seq, 1)).unwrap();
    }
    let mut reader = log.reader();
    ids_of_taken(&mut reader, 5);
    reader.save_cursor("mid").unwrap();
    let id = reader.position();
    let exact = ids_of(log.reader_from_cursor("mid").unwrap());
    let from_id = ids_of(log.reader_from(id));
    assert!(exact.len() < from_id.len(), "{exact:?} against {from_id:?}");
    let table = cursor_table_offset(0);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let good = fs::read(&path).unwrap();
    let damage: [(u64, Vec<u8>, &str); 4] = [
        (
            table,
            7u64.to_le_bytes().to_vec(),
            "an odd sequence: a save in progress",
        ),
        (
            table + 8,
            (id + 2).to_le_bytes().to_vec(),
            "saved with another id",
        ),
        (
            table + 16,
            1000u32.to_le_bytes().to_vec(),
            "lane 0 past its counter",
        ),
        (
            table + 20,
            u32::MAX.to_le_bytes().to_vec(),
            "lane 1 too far for the table",
        ),
    ];
    for (at, bytes, what) in damage {
        file.write_all_at(&good[..8192], 0).unwrap();
        file.write_all_at(&bytes, at).unwrap();
        let resumed = ids_of(log.reader_from_cursor("mid").unwrap());
        let mut expected = from_id.clone();
        if at >= table + 16 {
            // Only that lane resumes from the id; the other keeps its place.
            let lane = (at - table - 16) / 4;
            expected.retain(|i| i % 2 == lane || exact.contains(i));
        }
        assert_eq!(resumed, expected, "{what}");
    }
}

#[test]
fn each_lane_laps_on_its_own_and_the_merged_reader_counts_what_it_lost() {
    let (_d, path) = tmp();
    // Two lanes of 8 one-block records each.
    let log = laned(&path, 16, 2);
    let kept = write_in_lane(&log, 0, Level::Info, "w0", &payload(0, 0, 1)).unwrap();
    let mut lane1 = Vec::new();
    for seq in 1..=24u32 {
        lane1.push(write_in_lane(&log, 1, Level::Info, "w0", &payload(0, seq, 1)).unwrap());
    }
    let mut reader = log.reader();
    let read: Vec<u64> = reader.by_ref().map(|r| r.id).collect();
    // Lane 0's record survives (its lane was not lapped); lane 1 keeps its last lap.
    assert_eq!(read[0], kept);
    assert_eq!(&read[1..], &lane1[16..]);
    assert_eq!(
        reader.lost(),
        0,
        "a reader starting at the oldest loses nothing"
    );
    // A reader left behind in lane 1 counts the blocks lapped under it, lane 0 none.
    let mut behind = log.reader_from(lane1[16]);
    assert_eq!(behind.next().map(|r| r.id), Some(lane1[16]));
    for seq in 25..=40u32 {
        write_in_lane(&log, 1, Level::Info, "w0", &payload(0, seq, 1)).unwrap();
    }
    let rest: Vec<u64> = behind.by_ref().map(|r| r.id).collect();
    assert!(!rest.is_empty());
    assert!(behind.lost() > 0, "the lap is counted");
    // Lane 1 ends at position 40; the reader read position 16 first.
    assert_eq!(
        rest.len() as u64 + behind.lost() + 1,
        40 - 16,
        "every lane-1 block from the first one read is either read or lost"
    );
}

#[test]
fn many_threads_on_a_laned_log_lose_nothing_and_tear_nothing() {
    let (_d, path) = tmp();
    // Lanes of 4096 blocks: room for every record (at most 3 blocks each) of the lanes the
    // processors choose and of the ones the test does.
    let log = Arc::new(laned(&path, 16384, 4));
    let threads = 8u32;
    let per = 300u32;
    let handles: Vec<_> = (0..threads)
        .map(|w| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for seq in 0..per {
                    let p = payload(w, seq, (seq % 90) as usize);
                    let id = if seq % 2 == 0 {
                        log.write(Level::Info, &format!("w{w}"), &p).unwrap()
                    } else {
                        // Every lane gets writers from several threads at once.
                        let lane = ((w + seq) % 4) as usize;
                        write_in_lane(&log, lane, Level::Info, &format!("w{w}"), &p).unwrap()
                    };
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let mut returned = HashSet::new();
    for h in handles {
        for id in h.join().unwrap() {
            assert!(returned.insert(id), "id {id} returned twice");
        }
    }
    let mut reader = log.reader();
    let mut seen: HashMap<u32, HashSet<u32>> = HashMap::new();
    let mut count = 0;
    for record in reader.by_ref() {
        let (w, seq) = check(&record);
        assert!(returned.contains(&record.id));
        assert!(seen.entry(w).or_default().insert(seq), "{w}/{seq} twice");
        count += 1;
    }
    assert_eq!(count, threads * per);
    assert_eq!(reader.lost(), 0);
}

#[test]
fn a_follower_of_a_laned_log_sees_every_lane_as_records_arrive() {
    let (_d, path) = tmp();
    let log = Arc::new(laned(&path, 256, 4));
    let mut follower = log.follow(FollowOptions::new()).unwrap();
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for seq in 0..200u32 {
                let lane = (seq % 4) as usize;
                write_in_lane(&log, lane, Level::Info, "w0", &payload(0, seq, 2)).unwrap();
            }
        })
    };
    let mut got = HashSet::new();
    while got.len() < 200 {
        let record = follower
            .next_timeout(Duration::from_secs(10))
            .expect("a record from some lane within 10 s");
        let (_, seq) = check(&record);
        assert!(got.insert(seq), "{seq} twice");
    }
    writer.join().unwrap();
    assert_eq!(follower.lost(), 0);
}

#[test]
fn a_laned_log_recovers_each_lanes_counter_at_a_read_write_open() {
    let (_d, path) = tmp();
    let ids: Vec<u64> = {
        let log = laned(&path, 64, 4);
        (0..5u32)
            .map(|seq| write_in_lane(&log, 2, Level::Info, "w0", &payload(0, seq, 1)).unwrap())
            .collect()
    };
    assert_eq!(counter(&path, 2), 5);
    // The counter's page reached the disk older than the ring's: lane 2's counter is 0.
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&0u64.to_le_bytes(), counter_offset(2))
        .unwrap();
    drop(file);
    let log = Log::open(&path).unwrap();
    assert_eq!(counter(&path, 2), 5, "recovered past the newest record");
    let next = write_in_lane(&log, 2, Level::Info, "w0", &payload(0, 5, 1)).unwrap();
    assert!(next > *ids.last().unwrap(), "no id handed out again");
    let read: Vec<u32> = log.reader().map(|r| check(&r).1).collect();
    assert_eq!(read, [0, 1, 2, 3, 4, 5]);
}

#[test]
fn lanes_follow_the_geometry_rules_and_an_existing_files_lanes_are_checked() {
    let (_d, path) = tmp();
    for (blocks, lanes) in [(64, 3), (64, 32), (6, 4), (16, 16)] {
        let err = LogOptions::new()
            .blocks(blocks)
            .block_size(64)
            .lanes(lanes)
            .open(&path)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidGeometry { field: "lanes", .. }),
            "{blocks} blocks in {lanes} lanes: {err}"
        );
        assert!(!path.exists(), "nothing created");
    }
    laned(&path, 64, 4);
    // Not asking adopts the file's lanes; asking others is a mismatch.
    assert_eq!(Log::open(&path).unwrap().stats().lanes, 4);
    let err = LogOptions::new().lanes(2).open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::GeometryMismatch {
                asked_lanes: 2,
                found_lanes: 4,
                ..
            }
        ),
        "{err}"
    );
    // A log of one lane asked for lanes is a mismatch too.
    let (_d2, one) = tmp();
    Log::open(&one).unwrap();
    assert!(matches!(
        LogOptions::new().lanes(2).open(&one),
        Err(Error::GeometryMismatch { .. })
    ));
    assert_eq!(
        LogOptions::new().lanes(1).open(&one).unwrap().stats().lanes,
        1
    );
}

/// Rewrites static header bytes of `path` and fixes the header crc.
fn patch_header(path: &Path, offset: usize, value: &[u8]) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset..offset + value.len()].copy_from_slice(value);
    let crc = pounds_testkit::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, &bytes).unwrap();
}

#[test]
fn a_laned_header_that_breaks_the_rules_is_refused_and_left_alone() {
    let (_d, path) = tmp();
    laned(&path, 64, 4);
    let good = fs::read(&path).unwrap();
    let cases: [(usize, u32, &str); 4] = [
        // A laned log that format 2 builds would think they can read.
        (20, 2, "lanes"),
        // Lanes that are no power of two, or too many for the blocks.
        (48, 3, "lanes"),
        (48, 64, "lanes"),
        // The header size of a log of one lane.
        (24, 4096, "header_size"),
    ];
    for (offset, value, field) in cases {
        fs::write(&path, &good).unwrap();
        patch_header(&path, offset, &value.to_le_bytes());
        let before = fs::read(&path).unwrap();
        let err = Log::open(&path).unwrap_err();
        assert!(
            matches!(err, Error::CorruptHeader { field: f, .. } if f == field),
            "{offset} = {value}: {err}"
        );
        assert_eq!(fs::read(&path).unwrap(), before, "left alone");
    }
    // A lane's counter at the limit is corrupt, as the counter of a log of one lane is.
    fs::write(&path, &good).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&plog::POSITION_LIMIT.to_le_bytes(), counter_offset(3))
        .unwrap();
    assert!(matches!(
        Log::open_read_only(&path),
        Err(Error::CorruptHeader { field: "next", .. })
    ));
    // A laned file is refused by a reader of format 2 by its compat_version, 3.
    assert_eq!(&good[20..24], &3u32.to_le_bytes());
}

#[test]
fn a_laned_log_whose_header_page_was_lost_is_not_rebuilt_as_one_lane() {
    let (_d, path) = tmp();
    // Two lanes of 1024 blocks of 128 bytes. Read as one lane of 2080 blocks whose ring starts
    // a page early, lane 1's slot r is slot 1056 + r, and lane 1's position 64 x 1024 + r is
    // 1056 + r modulo 2080: its 65th lap would pass validation there, and a header rebuilt
    // from it would misplace every other record.
    {
        let log = LogOptions::new()
            .blocks(2048)
            .block_size(128)
            .lanes(2)
            .open(&path)
            .unwrap();
        write_in_lane(&log, 0, Level::Info, "w0", &payload(0, 0, 1)).unwrap();
        for seq in 1..=(64 * 1024 + 100) {
            write_in_lane(&log, 1, Level::Info, "w0", &payload(0, seq, 1)).unwrap();
        }
    }
    let mut bytes = fs::read(&path).unwrap();
    bytes[..4096].fill(0);
    fs::write(&path, &bytes).unwrap();
    let err = Log::open(&path).unwrap_err();
    assert!(matches!(err, Error::HeaderLost { .. }), "{err}");
    assert_eq!(fs::read(&path).unwrap(), bytes, "left alone");

    // Cursors' lane tables after the counters do not hide them.
    let (_d, path) = tmp();
    {
        let log = laned(&path, 64, 2);
        write_in_lane(&log, 1, Level::Info, "w0", &payload(0, 0, 1)).unwrap();
        let mut reader = log.reader();
        reader.next().unwrap();
        reader.save_cursor("shipper").unwrap();
    }
    let mut bytes = fs::read(&path).unwrap();
    assert!(
        bytes[6144..8192].iter().any(|&b| b != 0),
        "a lane table was saved"
    );
    bytes[..4096].fill(0);
    fs::write(&path, &bytes).unwrap();
    let err = Log::open(&path).unwrap_err();
    assert!(matches!(err, Error::HeaderLost { .. }), "{err}");
}
