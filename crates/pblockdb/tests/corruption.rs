//! Damaged files: random byte flips and truncations give a clear error or a recovered
//! database, never a panic or a hang; and a journal left by a crash is replayed or ignored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use pblockdb::{Db, DbOptions, Error};

mod common;
use pounds_testkit::{Rng, stress_rounds};

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.to_le_bytes());
    k
}

fn pristine(path: &Path, n: u64) -> Vec<u8> {
    let db = DbOptions::new(16, 64).capacity(n).open(path).unwrap();
    for i in 0..n {
        db.put(&key(i), &[i as u8; 64]).unwrap();
    }
    for i in (0..n).step_by(7) {
        db.delete(&key(i)).unwrap();
    }
    db.set_user_area(b"user").unwrap();
    drop(db);
    std::fs::read(path).unwrap()
}

/// Everything a user might do with a damaged file; any result but a panic is acceptable.
fn exercise(db: &Db, n: u64) {
    let mut buf = [0u8; 64];
    for i in 0..n + 5 {
        let _ = db.get(&key(i));
        let _ = db.get_into(&key(i), &mut buf);
    }
    let _ = db.iter().map(Iterator::count);
    let _ = db.find(|k, _| k[0] == 3);
    let _ = db.user_area();
    let _ = db.verify();
    let _ = db.len();
    let _ = db.capacity();
    if !db.is_read_only() {
        for i in 0..10 {
            let _ = db.put(&key(n + i), &[1; 64]);
            let _ = db.delete(&key(i));
        }
        let _ = db.update_each(|_, v| {
            v[0] ^= 1;
            pblockdb::Action::Update
        });
    }
}

#[test]
fn random_flips_and_truncations_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.db");
    let n = 40;
    let good = pristine(&path, n);
    let mut rng = Rng::new(0x5eed_1234_abcd_ef01);
    let rounds = u64::from(stress_rounds(150, 1));
    let (mut opened, mut refused) = (0, 0);
    for round in 0..rounds {
        let mut bytes = good.clone();
        match round % 4 {
            // Flips anywhere.
            0 | 1 => {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            // Flips in the header's mutable words and the first slots.
            2 => {
                for _ in 0..1 + rng.below(4) {
                    let at = 64 + rng.below(4096 + 96 * 16) as usize;
                    bytes[at] = rng.next_u64() as u8;
                }
            }
            // Truncation.
            _ => bytes.truncate(rng.below(bytes.len() as u64) as usize),
        }
        std::fs::write(&path, &bytes).unwrap();
        match Db::open_read_only(&path) {
            Ok(db) => exercise(&db, n),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        match Db::open_existing(&path) {
            Ok(db) => {
                opened += 1;
                exercise(&db, n);
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(
        opened > 0 && refused > 0,
        "opened {opened}, refused {refused}"
    );
}

const JOURNAL_STATE: u64 = 192;
const ARMED: u64 = 0x4A52_4E4C_4152_4D44;

fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(bytes).unwrap();
}

/// Byte offset of the slot holding `k`: a live meta word with the key 16 bytes after it.
fn slot_of(bytes: &[u8], k: &[u8; 16]) -> u64 {
    (4096..bytes.len() - 96)
        .step_by(8)
        .find(|&at| bytes[at] & 3 == 1 && &bytes[at + 16..at + 32] == k)
        .unwrap() as u64
}

#[test]
fn crash_journal_left_armed_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let db = DbOptions::new(16, 64).capacity(100).open(&path).unwrap();
    db.put(&key(1), &[1; 64]).unwrap();
    db.put(&key(2), &[2; 64]).unwrap();
    db.put(&key(1), &[9; 64]).unwrap(); // the journal image now holds key 1 = [9; 64]
    drop(db);
    let bytes = std::fs::read(&path).unwrap();
    let slot = slot_of(&bytes, &key(1));
    // Simulate a writer killed mid-slot-write: journal armed, slot half old, half new, odd.
    write_at(&path, JOURNAL_STATE, &ARMED.to_le_bytes());
    let meta = u64::from_le_bytes(bytes[slot as usize..][..8].try_into().unwrap());
    write_at(&path, slot, &((meta - 4) | 1 << 2).to_le_bytes());
    write_at(&path, slot + 16 + 16 + 32, &[1; 32]);
    assert!(matches!(
        Db::open_read_only(&path),
        Err(Error::NeedsRecovery { .. })
    ));
    let db = Db::open_existing(&path).unwrap();
    assert_eq!(db.get(&key(1)).unwrap().unwrap(), vec![9; 64]);
    assert_eq!(db.get(&key(2)).unwrap().unwrap(), vec![2; 64]);
    assert_eq!(db.len(), 2);
    db.verify().unwrap();
}

#[test]
fn crash_journal_that_never_completed_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let db = DbOptions::new(16, 64).capacity(100).open(&path).unwrap();
    db.put(&key(1), &[1; 64]).unwrap();
    db.put(&key(2), &[2; 64]).unwrap();
    drop(db);
    // Armed, but the image's checksum does not match: the writer died while writing it, before
    // it touched the slot. The slot keeps its old value.
    write_at(&path, JOURNAL_STATE, &ARMED.to_le_bytes());
    write_at(&path, 832 + 40, &[7; 8]);
    let db = Db::open_existing(&path).unwrap();
    assert_eq!(db.get(&key(2)).unwrap().unwrap(), vec![2; 64]);
    assert_eq!(db.len(), 2);
    db.verify().unwrap();
}

#[test]
fn a_torn_slot_with_no_journal_is_reported_not_waited_on_forever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.db");
    let db = DbOptions::new(16, 64).capacity(100).open(&path).unwrap();
    db.put(&key(1), &[1; 64]).unwrap();
    drop(db);
    let bytes = std::fs::read(&path).unwrap();
    let slot = slot_of(&bytes, &key(1));
    write_at(&path, slot, &(1u64 << 2 | 1).to_le_bytes()); // odd version, live
    let db = Db::open_existing(&path).unwrap();
    assert!(matches!(db.get(&key(1)), Err(Error::CorruptSlot { .. })));
    assert!(matches!(
        db.put(&key(1), &[3; 64]),
        Err(Error::CorruptSlot { .. })
    ));
    assert!(matches!(db.verify(), Err(Error::CorruptSlot { .. })));
    let ro = Db::open_read_only(&path).unwrap();
    assert!(matches!(ro.get(&key(1)), Err(Error::CorruptSlot { .. })));
    // A flipped value byte fails the checksum.
    write_at(&path, slot, &bytes[slot as usize..][..8]);
    write_at(&path, slot + 40, &[0xEE]);
    assert!(matches!(
        db.get(&key(1)),
        Err(Error::CorruptSlot {
            reason: "checksum mismatch",
            ..
        })
    ));
}

/// Another process died building a new table (before its generation switch) after extending
/// the file; a handle mapped before that extension then rebuilds into the same region. The
/// half-built table's bytes must not leak into the new one (they held copies of keys deleted
/// since, which would come back).
#[test]
fn crash_rebuild_left_by_another_process_past_this_handles_map_is_zeroed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rebuild.db");
    let db = DbOptions::new(16, 64).capacity(8).open(&path).unwrap();
    for i in 0..11 {
        db.put(&key(i), &[i as u8; 64]).unwrap();
    }
    let capacity = db.capacity().unwrap();
    drop(db);
    let before = std::fs::read(&path).unwrap();

    // The other process's rebuild, run to completion on a copy: its new region's bytes are
    // what a writer killed just before the generation store leaves past the old end.
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &before).unwrap();
    let other = Db::open_existing(&copy).unwrap();
    other.put(&key(11), &[11; 64]).unwrap();
    other.put(&key(12), &[12; 64]).unwrap();
    assert!(
        other.capacity().unwrap() > capacity,
        "the copy did not grow"
    );
    drop(other);
    let grown = std::fs::read(&copy).unwrap();

    // This handle maps the file at its old length; then the "crashed" extension appears.
    let db = Db::open_existing(&path).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(grown.len() as u64).unwrap();
    drop(file);
    write_at(&path, before.len() as u64, &grown[before.len()..]);

    assert!(db.delete(&key(0)).unwrap());
    let mut next = 100;
    while db.capacity().unwrap() == capacity {
        db.put(&key(next), &[7; 64]).unwrap();
        next += 1;
    }
    assert_eq!(db.get(&key(0)).unwrap(), None, "a deleted key came back");
    assert_eq!(db.len() as u64, 10 + next - 100);
    db.verify().unwrap();
    drop(db);
    let db = Db::open_existing(&path).unwrap();
    assert_eq!(db.get(&key(0)).unwrap(), None);
    db.verify().unwrap();
}

fn set_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn set_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Geometry fields changed and their checksum recomputed, so only the range checks stand.
fn geometry(bytes: &mut [u8], key: u32, value: u32, slot: u32, header: u32) {
    for (at, v) in [(16, key), (20, value), (24, slot), (12, header)] {
        set_u32(bytes, at, v);
    }
    let crc = crc32c::crc32c(&bytes[..40]);
    set_u32(bytes, 40, crc);
}

/// Points `generation` at a descriptor holding `offset` and `capacity`, with a valid crc.
fn descriptor(bytes: &mut [u8], generation: u64, offset: u64, capacity: u64) {
    let at = [72, 96][(generation & 1) as usize];
    let mut raw = [0u8; 24];
    raw[..8].copy_from_slice(&offset.to_le_bytes());
    raw[8..16].copy_from_slice(&capacity.to_le_bytes());
    raw[16..].copy_from_slice(&generation.to_le_bytes());
    set_u64(bytes, 64, generation);
    set_u64(bytes, at, offset);
    set_u64(bytes, at + 8, capacity);
    set_u64(bytes, at + 16, u64::from(crc32c::crc32c(&raw)));
}

/// Arms the journal for slot `idx` of `generation` with `meta` as the image's meta word and a
/// valid crc, the counters left as they are.
fn journal(bytes: &mut [u8], idx: u64, generation: u64, meta: u64) {
    set_u64(bytes, 200, idx);
    set_u64(bytes, 208, generation);
    for (i, at) in [128, 136, 144].into_iter().enumerate() {
        let v = get_u64(bytes, at);
        set_u64(bytes, 216 + 8 * i, v);
    }
    set_u64(bytes, 832, meta);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[200..240]), &bytes[832..832 + 96]);
    set_u64(bytes, 240, u64::from(crc));
    set_u64(bytes, JOURNAL_STATE as usize, ARMED);
}

/// Headers that pass every checksum but are inconsistent: impossible or mismatched geometry,
/// descriptors past the file or overflowing, counts beyond the capacity, journals naming
/// slots or generations that do not exist. Each is a typed error or a recovered database,
/// never a panic or a hang.
#[test]
fn crafted_headers_with_valid_checksums_are_refused_or_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.db");
    let n = 40;
    let good = pristine(&path, n);
    let live = n - n.div_ceil(7);
    let (offset, capacity) = (get_u64(&good, 72), get_u64(&good, 80));
    assert_eq!((get_u64(&good, 64), offset, capacity), (0, 4096, 64));
    let len = good.len() as u64;
    let header = |field: &'static str| move |r: &Result<Db, Error>| matches!(r, Err(Error::CorruptHeader { field: f, .. }) if *f == field);
    let truncated = |r: &Result<Db, Error>| matches!(r, Err(Error::Truncated { .. }));
    let intact = move |r: &Result<Db, Error>| match r {
        Ok(db) => db.len() as u64 == live && db.verify().is_ok(),
        Err(_) => false,
    };
    type Check = Box<dyn Fn(&Result<Db, Error>) -> bool>;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage, Check)> = vec![
        (
            "key size 0",
            Box::new(|b| geometry(b, 0, 64, 16, 4096)),
            Box::new(header("key_size")),
        ),
        (
            "key size huge",
            Box::new(|b| geometry(b, u32::MAX, 64, 96, 4096)),
            Box::new(header("key_size")),
        ),
        (
            "value size huge",
            Box::new(|b| geometry(b, 16, u32::MAX, 96, 4096)),
            Box::new(header("value_size")),
        ),
        (
            "slot size off",
            Box::new(|b| geometry(b, 16, 64, 88, 4096)),
            Box::new(header("slot_size")),
        ),
        (
            "header size off",
            Box::new(|b| geometry(b, 16, 64, 96, 8192)),
            Box::new(header("header_size")),
        ),
        // Plausible geometry that is not the one the table was written with.
        (
            "other geometry",
            Box::new(|b| geometry(b, 8, 8, 32, 4096)),
            Box::new(|_| true),
        ),
        (
            "bigger slots",
            Box::new(|b| geometry(b, 16, 200, 216, 4096)),
            Box::new(|_| true),
        ),
        (
            "capacity not a power of two",
            Box::new(move |b| descriptor(b, 0, offset, 63)),
            Box::new(header("capacity")),
        ),
        (
            "capacity too small",
            Box::new(move |b| descriptor(b, 0, offset, 8)),
            Box::new(header("capacity")),
        ),
        (
            "capacity too big",
            Box::new(move |b| descriptor(b, 0, offset, 1 << 40)),
            Box::new(header("capacity")),
        ),
        (
            "capacity past the file",
            Box::new(move |b| descriptor(b, 0, offset, 1 << 32)),
            Box::new(truncated),
        ),
        (
            "offset misaligned",
            Box::new(move |b| descriptor(b, 0, offset + 8, capacity)),
            Box::new(header("table_offset")),
        ),
        (
            "offset in the header",
            Box::new(move |b| descriptor(b, 0, 0, capacity)),
            Box::new(header("table_offset")),
        ),
        (
            "offset past the file",
            Box::new(move |b| descriptor(b, 0, len.next_multiple_of(4096), capacity)),
            Box::new(truncated),
        ),
        (
            "offset overflowing",
            Box::new(move |b| descriptor(b, 0, u64::MAX - 4095, capacity)),
            Box::new(truncated),
        ),
        (
            "generation past the file",
            Box::new(move |b| descriptor(b, 7, 1 << 30, capacity)),
            Box::new(truncated),
        ),
        (
            "generation at the end of time",
            Box::new(move |b| descriptor(b, u64::MAX, offset, capacity)),
            Box::new(intact),
        ),
        (
            "count beyond capacity",
            Box::new(|b| set_u64(b, 128, 1 << 40)),
            Box::new(intact),
        ),
        (
            "used beyond capacity",
            Box::new(|b| set_u64(b, 136, u64::MAX)),
            Box::new(intact),
        ),
        (
            "count above used",
            Box::new(|b| set_u64(b, 128, 60)),
            Box::new(intact),
        ),
        (
            "journal slot out of range",
            Box::new(move |b| journal(b, capacity, 0, 9 << 2 | 1)),
            Box::new(intact),
        ),
        (
            "journal slot far out of range",
            Box::new(|b| journal(b, u64::MAX, 0, 9 << 2 | 1)),
            Box::new(intact),
        ),
        (
            "journal for another generation",
            Box::new(|b| journal(b, 3, 1, 9 << 2 | 1)),
            Box::new(intact),
        ),
        (
            "journal image mid-write",
            Box::new(|b| journal(b, 3, 0, 9 << 2 | 1 | 1 << 2)),
            Box::new(intact),
        ),
        (
            "journal image unknown state",
            Box::new(|b| journal(b, 3, 0, 8 << 2 | 3)),
            Box::new(intact),
        ),
        // Valid in every field but the image does not belong there: refused.
        (
            "journal applied over another slot",
            Box::new(|b| journal(b, 3, 0, 100 << 2 | 1)),
            Box::new(intact),
        ),
        (
            "journal image empty",
            Box::new(|b| journal(b, 3, 0, 8 << 2)),
            Box::new(intact),
        ),
    ];
    for (name, damage, expected) in cases {
        let mut bytes = good.clone();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(db) = Db::open_read_only(&path) {
            exercise(&db, n);
        }
        let result = Db::open_existing(&path);
        assert!(
            expected(&result),
            "{name}: {:?}",
            result.as_ref().map(Db::len)
        );
        if let Ok(db) = result {
            exercise(&db, n);
        }
    }
}

/// Byte offset of the first slot of a table at `offset` with `capacity` slots.
fn slots_start(offset: u64, capacity: u64) -> u64 {
    offset + (capacity * 4).next_multiple_of(64)
}

/// The hint array lost (zeroed) while every slot's meta word still says live: a put must not
/// take a slot whose hint calls it empty without checking its meta word, so 400 new records
/// land beside the 200 old ones, and each is readable as soon as it is written.
#[test]
fn zeroed_hints_never_let_a_put_overwrite_a_live_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hints.db");
    let db = DbOptions::new(16, 64).capacity(200).open(&path).unwrap();
    for i in 0..200 {
        db.put(&key(i), &[i as u8; 64]).unwrap();
    }
    let capacity = db.capacity().unwrap();
    drop(db);
    let bytes = std::fs::read(&path).unwrap();
    let (offset, hints) = (get_u64(&bytes, 72), (capacity * 4).next_multiple_of(64));
    write_at(&path, offset, &vec![0; hints as usize]);

    let db = Db::open_existing(&path).unwrap();
    assert!(
        matches!(
            db.verify(),
            Err(Error::CorruptSlot {
                reason: "hint does not match the slot",
                ..
            })
        ),
        "verify must report the lost hints"
    );
    for i in 1000..1400 {
        db.put(&key(i), &[i as u8; 64]).unwrap();
        assert_eq!(db.get(&key(i)).unwrap(), Some(vec![i as u8; 64]));
    }
    let lost: Vec<u64> = (0..200)
        .filter(|&i| db.get(&key(i)).unwrap() != Some(vec![i as u8; 64]))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of 200 old records lost: {lost:?}",
        lost.len()
    );
    assert_eq!(db.len(), 600);
    db.verify().unwrap();
}

/// One record, `put` into a fresh database, and the byte offset of its slot.
fn one_damaged_record(path: &Path) -> (u64, u64, Vec<u8>) {
    let db = DbOptions::new(16, 64).capacity(20).open(path).unwrap();
    for i in 0..10 {
        db.put(&key(i), &[i as u8; 64]).unwrap();
    }
    let capacity = db.capacity().unwrap();
    drop(db);
    let bytes = std::fs::read(path).unwrap();
    (slot_of(&bytes, &key(3)), capacity, bytes)
}

/// Puts new keys until the table is rebuilt; returns the first error.
fn grow(db: &Db, capacity: u64) -> Result<(), Error> {
    let mut next = 100;
    while db.capacity()? == capacity {
        db.put(&key(next), &[7; 64])?;
        next += 1;
    }
    Ok(())
}

/// A flipped bit in a slot's meta word. In the version, the record (its checksum good) survives
/// the next rebuild; in the state bits, where a record and a tombstone cannot be told apart, the
/// rebuild refuses with a typed error and `verify` reports the slot, rather than the record
/// silently vanishing.
#[test]
fn damaged_meta_words_never_drop_a_record_at_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");

    // Version bit: the slot looks mid-write, with no journal to finish it.
    let (slot, capacity, bytes) = one_damaged_record(&path);
    let meta = get_u64(&bytes, slot as usize);
    let offset = get_u64(&bytes, 72);
    let idx = (slot - slots_start(offset, capacity)) / 96;
    write_at(&path, slot, &(meta ^ 1 << 2).to_le_bytes());
    let db = Db::open_existing(&path).unwrap();
    grow(&db, capacity).unwrap();
    assert_eq!(
        db.get(&key(3)).unwrap(),
        Some(vec![3; 64]),
        "an odd version dropped the record at the rebuild"
    );
    db.verify().unwrap();
    drop(db);

    // State bits live -> unknown (3).
    std::fs::write(&path, &bytes).unwrap();
    write_at(&path, slot, &(meta | 3).to_le_bytes());
    let db = Db::open_existing(&path).unwrap();
    assert!(matches!(db.verify(), Err(Error::CorruptSlot { slot, .. }) if slot == idx));
    assert!(
        matches!(
            grow(&db, capacity),
            Err(Error::CorruptSlot {
                reason: "unknown slot state",
                ..
            })
        ),
        "the rebuild dropped a slot it could not classify"
    );
    drop(db);

    // State bits live -> empty, its hint and the count damaged to match: the slot still holds
    // a record with a good checksum.
    std::fs::write(&path, &bytes).unwrap();
    write_at(&path, slot, &(meta & !3).to_le_bytes());
    write_at(&path, offset + 4 * idx, &[0; 4]);
    write_at(&path, 128, &9u64.to_le_bytes());
    let db = Db::open_existing(&path).unwrap();
    assert!(
        matches!(
            db.verify(),
            Err(Error::CorruptSlot {
                reason: "empty slot is not zeroed",
                ..
            })
        ),
        "verify passed over a record whose state says empty: {:?}",
        db.verify()
    );
    assert!(
        matches!(
            grow(&db, capacity),
            Err(Error::CorruptSlot {
                reason: "empty slot holds a record",
                ..
            })
        ),
        "the rebuild dropped a record whose state says empty"
    );
}

/// A crafted file of a few KB, sparse to the length its descriptor claims (`capacity` slots),
/// with `count > used`, so that the old open recounted every slot.
fn sparse_claiming(path: &Path, capacity: u64) {
    let db = DbOptions::new(16, 64).capacity(4).open(path).unwrap();
    db.put(&key(1), &[1; 64]).unwrap();
    drop(db);
    let mut bytes = std::fs::read(path).unwrap();
    descriptor(&mut bytes, 0, 4096, capacity);
    set_u64(&mut bytes, 128, 5);
    set_u64(&mut bytes, 136, 0);
    std::fs::write(path, &bytes).unwrap();
    let len = slots_start(4096, capacity) + capacity * 96;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

/// Opening does bounded work whatever the header claims: a crafted sparse file with a table of
/// 2^24 slots (and, on Linux, 2^32: 430 GB of holes) and inconsistent counters opens, or is
/// refused, after examining a bounded number of slots, not one per slot it claims.
#[test]
fn crafted_huge_sparse_table_opens_with_bounded_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.db");
    let mut claims = vec![1u64 << 24];
    if cfg!(target_os = "linux") {
        claims.push(1 << 32);
    }
    for capacity in claims {
        sparse_claiming(&path, capacity);
        assert!(matches!(
            Db::open_read_only(&path),
            Err(Error::CorruptHeader { field: "count", .. })
        ));
        let before = pblockdb::slots_examined();
        let opened = Db::open_existing(&path);
        let work = pblockdb::slots_examined() - before;
        assert!(
            work <= 1 << 20,
            "opening a file claiming {capacity} slots examined {work} of them"
        );
        match opened {
            Ok(db) => {
                assert!(db.len() as u64 <= capacity);
                assert_eq!(db.get(&key(2)).unwrap(), None);
            }
            Err(e) => assert!(matches!(e, Error::CorruptHeader { .. }), "{e}"),
        }
        std::fs::remove_file(&path).unwrap();
    }
}

/// Arms the journal with `image` for slot `idx` of generation 0 and the header counters
/// `counts`, its crc computed by the test's own CRC-32C.
fn arm_journal(bytes: &mut [u8], idx: u64, counts: [u64; 3], image: &[u8]) {
    set_u64(bytes, 200, idx);
    set_u64(bytes, 208, 0);
    for (i, count) in counts.into_iter().enumerate() {
        set_u64(bytes, 216 + 8 * i, count);
    }
    bytes[832..832 + image.len()].copy_from_slice(image);
    let crc = common::crc32c_append(common::crc32c_append(0, &bytes[200..240]), image);
    set_u64(bytes, 240, u64::from(crc));
    set_u64(bytes, JOURNAL_STATE as usize, ARMED);
}

/// Journals crafted with a valid checksum whose image does not belong in the slot they name:
/// replay refuses each (the journal is cleared, as one that never completed) and every record
/// stays intact. A journal that does belong is replayed, so the crafting itself is right.
#[test]
fn crafted_journal_cannot_write_one_keys_image_into_anothers_slot() {
    assert_eq!(common::crc32c_append(0, b"123456789"), 0xE306_9283);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let db = DbOptions::new(16, 64).capacity(20).open(&path).unwrap();
    for i in 0..10 {
        db.put(&key(i), &[i as u8; 64]).unwrap();
    }
    let capacity = db.capacity().unwrap();
    drop(db);
    let good = std::fs::read(&path).unwrap();
    let start = slots_start(get_u64(&good, 72), capacity);
    let index = |at: u64| (at - start) / 96;
    let counts = [
        get_u64(&good, 128),
        get_u64(&good, 136),
        get_u64(&good, 144),
    ];

    // A legitimate image of a new key 50 and the slot it goes to: what a put journals.
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &good).unwrap();
    let other = Db::open_existing(&copy).unwrap();
    other.put(&key(50), &[50; 64]).unwrap();
    drop(other);
    let after = std::fs::read(&copy).unwrap();
    let (new_image, new_idx) = (after[832..928].to_vec(), get_u64(&after, 200));
    let inserted = [counts[0] + 1, counts[1] + 1, counts[2] + 1];

    // B's image as a replace of B would journal it: its bytes, the version moved on by 2.
    let slot_a = slot_of(&good, &key(1));
    let slot_b = slot_of(&good, &key(2));
    let mut b_image = good[slot_b as usize..][..96].to_vec();
    let meta = get_u64(&b_image, 0);
    set_u64(&mut b_image, 0, meta + 8);
    // Empty slots: the first one after B's (reachable from B's home: a second B), and one
    // that key 50's probe path never reaches (it stops at `new_idx`, the first empty one).
    let empty = |idx: u64| get_u64(&good, (start + idx * 96) as usize) == 0;
    let mut after_b = index(slot_b);
    while !empty(after_b) {
        after_b = (after_b + 1) % capacity;
    }
    let unreachable = (0..capacity).find(|&i| empty(i) && i != new_idx).unwrap();

    type Case<'a> = (&'a str, u64, &'a [u8], [u64; 3]);
    let refused: [Case<'_>; 4] = [
        ("B's image into A's slot", index(slot_a), &b_image, counts),
        (
            "a new key's image over A",
            index(slot_a),
            &new_image,
            inserted,
        ),
        ("B's image beside B", after_b, &b_image, inserted),
        (
            "a new key's image where its probe never reaches",
            unreachable,
            &new_image,
            inserted,
        ),
    ];
    for (name, idx, image, counts) in refused {
        let mut bytes = good.clone();
        arm_journal(&mut bytes, idx, counts, image);
        std::fs::write(&path, &bytes).unwrap();
        let db = Db::open_existing(&path).unwrap();
        for i in 0..10 {
            assert_eq!(
                db.get(&key(i)).unwrap(),
                Some(vec![i as u8; 64]),
                "{name}: key {i}"
            );
        }
        assert_eq!(db.get(&key(50)).unwrap(), None, "{name}");
        assert_eq!(db.len(), 10, "{name}");
        db.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
        drop(db);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(get_u64(&bytes, JOURNAL_STATE as usize), 0, "{name}");
    }

    // The same crafting, for the slot the image belongs in: replayed.
    let mut bytes = good.clone();
    arm_journal(&mut bytes, new_idx, inserted, &new_image);
    std::fs::write(&path, &bytes).unwrap();
    let db = Db::open_existing(&path).unwrap();
    assert_eq!(db.get(&key(50)).unwrap(), Some(vec![50; 64]));
    assert_eq!(db.len(), 11);
    db.verify().unwrap();
}
