//! A power loss that leaves the header page (with the reservation counter) on disk older than
//! ring pages written after it: a read-write open recovers the counter, so new records get
//! fresh ids; garbage never inflates it; a read-only open changes nothing. And images whose
//! pages were written back in any order, of logs of one lane and of two.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::{Forged, forged_record};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use plog::{Level, Log, LogOptions};
use pounds_testkit::Rng;

const BLOCKS: u64 = 64;
const BLOCK_SIZE: u32 = 64;
const NEXT_OFF: usize = 64;
const RING_OFF: usize = 4096;

fn counter_on_disk(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    u64::from_le_bytes(bytes[NEXT_OFF..NEXT_OFF + 8].try_into().unwrap())
}

/// Copies `original` to `copy` with the header's counter rolled back to `counter`, as if the
/// header page had not reached the disk since the counter was there.
fn copy_with_counter(original: &Path, copy: &Path, counter: u64) {
    let mut bytes = fs::read(original).unwrap();
    bytes[NEXT_OFF..NEXT_OFF + 8].copy_from_slice(&counter.to_le_bytes());
    fs::write(copy, bytes).unwrap();
}

/// Writes records of 1 to 3 blocks until the ring has lapped more than once, and returns every
/// record still readable (id -> payload) and the counter.
fn fill(path: &Path) -> (BTreeMap<u64, Vec<u8>>, u64) {
    let log = LogOptions::new()
        .blocks(BLOCKS)
        .block_size(BLOCK_SIZE)
        .open(path)
        .unwrap();
    for i in 0..70u32 {
        // 40 header bytes + 1-char tag: 0..23 payload bytes fit one block, 24..87 two.
        let len = [5usize, 30, 100][i as usize % 3];
        let payload: Vec<u8> = (0..len).map(|j| (i as usize * 7 + j) as u8).collect();
        log.write(Level::Info, "t", &payload).unwrap();
    }
    let records: BTreeMap<u64, Vec<u8>> = log.reader().map(|r| (r.id, r.payload)).collect();
    let next = log.stats().next_id;
    assert!(next > 2 * BLOCKS, "the ring lapped more than once");
    assert!(records.len() > 20);
    (records, next)
}

fn tmp() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.plog");
    let copy = dir.path().join("copy.plog");
    (dir, original, copy)
}

/// Every record boundary in the last lap, and some a lap or more behind, as the counter the
/// header kept: reopening read-write recovers it, new ids are fresh, reading is exact.
#[test]
fn rolled_back_counter_is_recovered_at_open() {
    let (_dir, original, copy) = tmp();
    let (records, next) = fill(&original);
    let newest = *records.keys().last().unwrap();
    let mut rollbacks: Vec<u64> = records.keys().copied().collect();
    rollbacks.extend([0, 1, next - BLOCKS - 1, next - 2 * BLOCKS + 3]);
    for counter in rollbacks {
        copy_with_counter(&original, &copy, counter);
        let log = Log::open(&copy).unwrap();
        assert_eq!(log.stats().next_id, next, "rolled back to {counter}");
        assert_eq!(
            counter_on_disk(&copy),
            next,
            "the file holds the recovered counter"
        );
        let read: Vec<(u64, Vec<u8>)> = log.reader().map(|r| (r.id, r.payload)).collect();
        let expected: Vec<(u64, Vec<u8>)> =
            records.iter().map(|(&id, p)| (id, p.clone())).collect();
        assert_eq!(read, expected, "rolled back to {counter}");

        let fresh = log
            .write(Level::Warn, "new", "after the power loss")
            .unwrap();
        assert!(
            fresh >= next && fresh > newest,
            "fresh id {fresh} after {newest}"
        );
        let mut last = None;
        let mut saw_fresh = false;
        for record in log.reader() {
            assert!(
                last < Some(record.id),
                "ids strictly increase: {last:?} then {}",
                record.id
            );
            last = Some(record.id);
            if record.id == fresh {
                assert_eq!(record.payload, b"after the power loss");
                saw_fresh = true;
            } else {
                assert_eq!(
                    Some(&record.payload),
                    records.get(&record.id),
                    "id {}",
                    record.id
                );
            }
        }
        assert!(saw_fresh);
    }
}

/// A counter that is not behind (or ahead, as when reserved blocks never reached the disk) is
/// left as it is: recovery never lowers it.
#[test]
fn counter_ahead_is_kept() {
    let (_dir, original, copy) = tmp();
    let (_, next) = fill(&original);
    for counter in [next, next + 5, next + 3 * BLOCKS] {
        copy_with_counter(&original, &copy, counter);
        let log = Log::open(&copy).unwrap();
        assert_eq!(log.stats().next_id, counter);
        assert_eq!(log.write(Level::Info, "t", "x").unwrap(), counter);
    }
}

/// A read-only open of a file whose counter is behind changes no byte of it.
#[test]
fn read_only_open_does_not_recover() {
    let (_dir, original, copy) = tmp();
    let (records, _) = fill(&original);
    let counter = *records.keys().nth(records.len() / 2).unwrap();
    copy_with_counter(&original, &copy, counter);
    let before = fs::read(&copy).unwrap();
    {
        let log = Log::open_read_only(&copy).unwrap();
        assert_eq!(log.stats().next_id, counter);
        assert!(log.reader().all(|r| r.id < counter));
    }
    assert!(
        fs::read(&copy).unwrap() == before,
        "a read-only open modified the file"
    );
}

/// Writes into `bytes` a block at `id`'s slot holding a record that passes every check the
/// reader makes (commit word, geometry, checksum) for position `id`.
fn forge_valid_record(bytes: &mut [u8], id: u64, payload: &[u8]) {
    let tag = b"forged";
    let body = 40 + tag.len() + payload.len();
    assert!(body <= BLOCK_SIZE as usize);
    let fields = Forged {
        commit: id + 1,
        len: payload.len() as u32,
        blocks: 1,
        level: 2, // info
        kind: 0,  // a record
        tag_len: tag.len() as u8,
        crc_id: id,
    };
    let record = forged_record(fields, tag, payload);
    let off = RING_OFF + (id % BLOCKS) as usize * BLOCK_SIZE as usize;
    bytes[off..off + BLOCK_SIZE as usize].fill(0);
    bytes[off..off + body].copy_from_slice(&record);
}

/// Garbage in the ring never raises the counter: a huge commit word with a bad checksum, a
/// commit word past the position limit, one in the wrong slot, and even a record that passes
/// every check but claims an id no writer can be granted (past the counter's limit).
#[test]
fn garbage_does_not_inflate_the_counter() {
    let (_dir, original, copy) = tmp();
    let (_, next) = fill(&original);
    let slot_id = |slot: u64, base: u64| base - base % BLOCKS + slot;
    let limit = plog::WRITE_LIMIT;
    let mut bytes = fs::read(&original).unwrap();
    let mut put_commit = |slot: u64, commit: u64| {
        let off = RING_OFF + slot as usize * BLOCK_SIZE as usize;
        bytes[off..off + 8].copy_from_slice(&commit.to_le_bytes());
    };
    put_commit(1, slot_id(1, 1 << 50) + 1); // right slot, bad checksum
    put_commit(2, u64::MAX); // id 2^64 - 2
    put_commit(3, plog::POSITION_LIMIT + 4); // past the limit
    put_commit(4, slot_id(5, next + 10) + 1); // an id of another slot
    forge_valid_record(&mut bytes, slot_id(6, limit) + BLOCKS, b"from the future");
    forge_valid_record(
        &mut bytes,
        slot_id(7, plog::POSITION_LIMIT) + 7 * BLOCKS,
        b"later",
    );
    fs::write(&copy, &bytes).unwrap();

    let log = Log::open(&copy).unwrap();
    assert_eq!(log.stats().next_id, next);
    assert_eq!(counter_on_disk(&copy), next);
    let id = log.write(Level::Info, "t", "ok").unwrap();
    assert!(id >= next && id < next + BLOCKS);
    drop(log);
    // The file reopens: the counter stayed below the limit that open checks.
    assert!(Log::open(&copy).is_ok());

    // The same forged record at an id a writer could have been granted, past the counter,
    // is indistinguishable from a real one (docs/plog-format.md, "Limits") and raises it.
    let forged = slot_id(9, next) + BLOCKS;
    forge_valid_record(&mut bytes, forged, b"plausible");
    fs::write(&copy, &bytes).unwrap();
    let log = Log::open(&copy).unwrap();
    assert_eq!(log.stats().next_id, forged + 1);
}

/// A young file whose header page never reached the disk while its ring pages did (all of
/// bytes 0..4096 zero): the open finds the geometry the records prove, writes the header back,
/// recovers the counter, and every record is still there under its id.
#[test]
fn zeroed_header_is_recovered() {
    let (_dir, original, copy) = tmp();
    let (records, next) = fill(&original);
    let mut bytes = fs::read(&original).unwrap();
    bytes[..RING_OFF].fill(0);
    fs::write(&copy, &bytes).unwrap();
    let log = Log::open(&copy).unwrap();
    let s = log.stats();
    assert_eq!((s.blocks, s.block_size), (BLOCKS, BLOCK_SIZE));
    assert_eq!(s.next_id, next, "the counter is recovered with the header");
    let read: BTreeMap<u64, Vec<u8>> = log.reader().map(|r| (r.id, r.payload)).collect();
    assert_eq!(read, records, "no record lost, none reissued");
    let id = log.write(Level::Info, "t", "after").unwrap();
    assert!(id >= next);
    drop(log);
    // The header is durable again: a read-only open finds it.
    assert_eq!(Log::open_read_only(&copy).unwrap().stats().next_id, id + 1);

    // A zero header over data that no geometry explains is left alone, with a typed error.
    let mut garbage = vec![0u8; RING_OFF + 64 * 64];
    for (i, b) in garbage[RING_OFF..].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    fs::write(&copy, &garbage).unwrap();
    assert!(matches!(
        Log::open(&copy),
        Err(plog::Error::HeaderLost { .. })
    ));
    assert_eq!(fs::read(&copy).unwrap(), garbage, "untouched");
}

/// A creator killed while it wrote the static header (its crc, written last, still zero) left
/// a file with no records: the next read-write open initialises it instead of calling it
/// corrupt forever. A complete header damaged since is still an error.
#[test]
fn interrupted_creation_is_finished() {
    let (_dir, original, _copy) = tmp();
    drop(
        LogOptions::new()
            .blocks(BLOCKS)
            .block_size(BLOCK_SIZE)
            .open(&original)
            .unwrap(),
    );
    let good = fs::read(&original).unwrap();
    for written in [0usize, 5, 16, 30, 59] {
        let mut bytes = good.clone();
        bytes[written..64].fill(0);
        fs::write(&original, &bytes).unwrap();
        let log = Log::open(&original).unwrap_or_else(|e| panic!("{written} bytes: {e}"));
        assert_eq!(log.write(Level::Info, "t", "x").unwrap(), 0);
    }
    let mut bytes = good.clone();
    bytes[40] ^= 0xff; // created_ns damaged, crc present
    fs::write(&original, &bytes).unwrap();
    assert!(matches!(
        Log::open(&original),
        Err(plog::Error::CorruptHeader {
            field: "header_crc",
            ..
        })
    ));
}

/// The records a file's image holds, read by a read-only open of a copy of it.
fn readable(image: &[u8], copy: &Path) -> BTreeMap<u64, Vec<u8>> {
    fs::write(copy, image).unwrap();
    let log = Log::open_read_only(copy).unwrap();
    log.reader().map(|r| (r.id, r.payload)).collect()
}

/// A power loss between two moments of a log that keeps being written leaves on disk each
/// 4 KiB page as it was at one moment or the other, in any combination (the kernel writes
/// dirty pages back in no promised order). Every such image, of a log of one lane and of two
/// (whose counters are in a page of their own): opens read-write, returns only records that
/// were written, at their ids and intact; returns every record both moments held and every
/// record of the later moment the image holds whole; and gives each lane's next record an id
/// past every record of that lane the image holds.
#[test]
fn pages_written_back_in_any_order_read_true_and_write_fresh_ids() {
    const PAGE: usize = 4096;
    for lanes in [1u32, 2] {
        let (_dir, original, copy) = tmp();
        let log = LogOptions::new()
            .blocks(512)
            .block_size(64)
            .lanes(lanes)
            .open(&original)
            .unwrap();
        let mut rng = Rng::new(0x0bad_cafe ^ u64::from(lanes));
        let mut written: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut seq = 0u32;
        let mut write = |log: &Log, rng: &mut Rng, n: u32| {
            for _ in 0..n {
                // Lane 0 gets two writes in three: the lanes' positions drift apart.
                let lane = if rng.below(3) == 0 {
                    lanes as usize - 1
                } else {
                    0
                };
                let len = [5usize, 30, 100][seq as usize % 3];
                let payload: Vec<u8> = (0..len).map(|j| (seq as usize * 7 + j) as u8).collect();
                let id =
                    plog::testing::write_in_lane(log, lane, Level::Info, "t", &payload).unwrap();
                written.insert(id, payload);
                seq += 1;
            }
        };
        // Several laps, then the first moment; a third of a lap more, then the second.
        write(&log, &mut rng, 700);
        let old = fs::read(&original).unwrap();
        write(&log, &mut rng, 60);
        let new = fs::read(&original).unwrap();
        drop(log);
        assert_eq!(old.len(), new.len());
        let in_old = readable(&old, &copy);
        let in_new = readable(&new, &copy);
        let in_both: BTreeSet<u64> = in_old
            .keys()
            .filter(|id| in_new.contains_key(id))
            .copied()
            .collect();
        assert!(
            in_both.len() > 100,
            "{lanes} lanes: {} in both",
            in_both.len()
        );
        let pages = old.len() / PAGE;
        // The bytes of record `id` (with a payload of `len` bytes) in the file (docs/plog-format.md,
        // "Lanes" and "Records"): 64-byte blocks of 56 content bytes after each claim word, the
        // record's 32 header content bytes and its 1-byte tag first.
        let header = if lanes == 1 { 4096 } else { 8192 };
        let lane_blocks = 512 / u64::from(lanes);
        let span = |id: u64, len: usize| {
            let (lane, position) = (id % u64::from(lanes), id / u64::from(lanes));
            let block = lane * lane_blocks + position % lane_blocks;
            let start = header + block as usize * 64;
            start..start + (33 + len).div_ceil(56) * 64
        };
        for image_no in 0..60 {
            // The first two images: everything old, everything new.
            let mut image = old.clone();
            let mut page_is_new = vec![false; pages];
            for (page, from_new) in page_is_new.iter_mut().enumerate() {
                *from_new = match image_no {
                    0 => false,
                    1 => true,
                    _ => rng.below(2) == 1,
                };
                if *from_new {
                    image[page * PAGE..(page + 1) * PAGE]
                        .copy_from_slice(&new[page * PAGE..(page + 1) * PAGE]);
                }
            }
            // The records this image holds whole: each of the moment whose pages hold all of it.
            let whole = |at: &BTreeMap<u64, Vec<u8>>, of_new: bool| -> BTreeSet<u64> {
                at.iter()
                    .filter(|(id, payload)| {
                        let bytes = span(**id, payload.len());
                        (bytes.start / PAGE..bytes.end.div_ceil(PAGE))
                            .all(|page| page_is_new[page] == of_new)
                    })
                    .map(|(id, _)| *id)
                    .collect()
            };
            let whole_new = whole(&in_new, true);
            let whole_old = whole(&in_old, false);
            fs::write(&copy, &image).unwrap();
            let what = format!("{lanes} lanes, image {image_no}");
            let log = Log::open(&copy).unwrap_or_else(|e| panic!("{what}: {e}"));
            let read: BTreeMap<u64, Vec<u8>> = log.reader().map(|r| (r.id, r.payload)).collect();
            for (id, payload) in &read {
                assert_eq!(written.get(id), Some(payload), "{what}: record {id}");
            }
            for id in in_both.iter().chain(&whole_new) {
                assert!(read.contains_key(id), "{what}: record {id} lost");
            }
            for lane in 0..lanes as u64 {
                let fresh = plog::testing::write_in_lane(
                    &log,
                    lane as usize,
                    Level::Warn,
                    "new",
                    b"after the power loss",
                )
                .unwrap();
                assert_eq!(fresh % u64::from(lanes), lane);
                // Past every record of the lane the image holds, returned or not.
                let newest = read
                    .keys()
                    .chain(&whole_new)
                    .chain(&whole_old)
                    .filter(|id| *id % u64::from(lanes) == lane)
                    .max();
                assert!(
                    newest < Some(&fresh),
                    "{what}: lane {lane}'s fresh id {fresh} after {newest:?}"
                );
                let back = log.reader_from(fresh).find(|r| r.id == fresh).unwrap();
                assert_eq!(back.payload, b"after the power loss", "{what}");
            }
        }
    }
}
