//! One test per rule and error of `docs/plog-format.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use pounds_testkit::crc32c;

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use plog::{Error, Filter, FollowOptions, Format, Level, Log, LogOptions, Populate};

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.plog");
    (dir, path)
}

fn small(path: &PathBuf, blocks: u64, block_size: u32) -> Log {
    LogOptions::new()
        .blocks(blocks)
        .block_size(block_size)
        .open(path)
        .unwrap()
}

#[test]
fn default_geometry_and_adoption() {
    let (_d, path) = tmp();
    let log = Log::open(&path).unwrap();
    let s = log.stats();
    assert_eq!((s.blocks, s.block_size, s.header_size), (16384, 128, 4096));
    assert_eq!(s.file_size, 4096 + 16384 * 128);
    assert_eq!(fs::metadata(&path).unwrap().len(), 4096 + 16384 * 128);
    assert_eq!((s.next_id, s.oldest_id, s.version), (0, None, 2));
    assert!(s.created > 1_600_000_000_000_000_000);
    drop(log);
    let (_d2, path2) = tmp();
    small(&path2, 8, 64);
    let adopted = Log::open(&path2).unwrap();
    assert_eq!(
        (adopted.stats().blocks, adopted.stats().block_size),
        (8, 64)
    );
    let ro = Log::open_read_only(&path2).unwrap();
    assert_eq!(ro.stats().blocks, 8);
    assert!(ro.is_read_only());
}

#[test]
fn explicit_other_geometry_is_a_mismatch() {
    let (_d, path) = tmp();
    small(&path, 8, 64);
    let err = LogOptions::new().blocks(16).open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::GeometryMismatch {
                asked_blocks: 16,
                asked_block_size: 128,
                found_blocks: 8,
                found_block_size: 64,
                ..
            }
        ),
        "{err}"
    );
    let err = LogOptions::new()
        .block_size(128)
        .blocks(8)
        .open(&path)
        .unwrap_err();
    assert!(matches!(err, Error::GeometryMismatch { .. }));
    assert!(
        LogOptions::new()
            .blocks(8)
            .block_size(64)
            .open(&path)
            .is_ok()
    );
    assert!(
        LogOptions::new().blocks(8).open(&path).is_ok(),
        "only the asked fields are compared"
    );
}

#[test]
fn invalid_geometry_is_refused_and_nothing_created() {
    let (_d, path) = tmp();
    for (blocks, size, field) in [
        (8, 100, "block_size"),
        (8, 32, "block_size"),
        (1, 64, "blocks"),
        (0, 64, "blocks"),
    ] {
        let err = LogOptions::new()
            .blocks(blocks)
            .block_size(size)
            .open(&path)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidGeometry { field: f, .. } if f == field),
            "{err}"
        );
    }
    assert!(!path.exists());
}

#[test]
fn missing_file_and_no_create() {
    let (_d, path) = tmp();
    assert!(matches!(
        Log::open_read_only(&path),
        Err(Error::Map(pmap::Error::NotFound { .. }))
    ));
    assert!(matches!(
        LogOptions::new().must_exist().open(&path),
        Err(Error::Map(pmap::Error::NotFound { .. }))
    ));
    let dir = path.parent().unwrap();
    assert!(matches!(
        Log::open(dir),
        Err(Error::Map(pmap::Error::IsDirectory { .. }))
    ));
}

#[test]
fn read_only_refuses_writes() {
    let (_d, path) = tmp();
    small(&path, 8, 64).write(Level::Info, "t", "x").unwrap();
    let ro = Log::open_read_only(&path).unwrap();
    assert!(matches!(
        ro.write(Level::Info, "t", "y"),
        Err(Error::ReadOnly { op: "write", .. })
    ));
    assert!(matches!(
        ro.save_cursor("c", 1),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        ro.write_user_area(0, b"u"),
        Err(Error::ReadOnly { .. })
    ));
    assert_eq!(ro.reader().count(), 1);
}

#[test]
fn foreign_files_are_refused_and_untouched() {
    let (_d, path) = tmp();
    let text = b"hello, this is not a log at all\n".repeat(200);
    fs::write(&path, &text).unwrap();
    let err = Log::open(&path).unwrap_err();
    assert!(
        matches!(&err, Error::BadMagic { found, .. } if found.starts_with("68656c6c6f")),
        "{err}"
    );
    assert!(matches!(
        Log::open_read_only(&path),
        Err(Error::BadMagic { .. })
    ));
    assert_eq!(
        fs::read(&path).unwrap(),
        text,
        "a foreign file is never modified"
    );
    fs::write(&path, b"x").unwrap();
    assert!(matches!(Log::open(&path), Err(Error::BadMagic { .. })));
    assert_eq!(fs::read(&path).unwrap(), b"x");
}

#[test]
fn empty_or_zeroed_file_is_initialised_read_write_only() {
    let (_d, path) = tmp();
    fs::write(&path, b"").unwrap();
    assert!(matches!(
        Log::open_read_only(&path),
        Err(Error::BadMagic { .. })
    ));
    let log = Log::open(&path).unwrap();
    assert_eq!(log.stats().blocks, 16384);
    let (_d2, path2) = tmp();
    fs::write(&path2, vec![0u8; 4096]).unwrap();
    let log = small(&path2, 4, 64);
    log.write(Level::Warn, "z", "zero").unwrap();
    assert_eq!(fs::metadata(&path2).unwrap().len(), 4096 + 256);
}

#[test]
fn text_mode_damage_is_bad_magic() {
    let (_d, path) = tmp();
    small(&path, 8, 64);
    let bytes = fs::read(&path).unwrap();
    // A text-mode transfer turning "\r\n" into "\n" shifts everything by one byte.
    let mut damaged = bytes[..5].to_vec();
    damaged.extend_from_slice(&bytes[6..]);
    fs::write(&path, &damaged).unwrap();
    assert!(matches!(
        Log::open_read_only(&path),
        Err(Error::BadMagic { .. })
    ));
    // A 7-bit channel clearing the high bit.
    let mut damaged = bytes.clone();
    damaged[0] = 0x09;
    fs::write(&path, &damaged).unwrap();
    assert!(matches!(Log::open(&path), Err(Error::BadMagic { .. })));
}

/// Rewrites static header bytes and fixes the header crc, to reach the checks behind it.
fn patch_header(path: &PathBuf, offset: usize, value: &[u8], fix_crc: bool) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset..offset + value.len()].copy_from_slice(value);
    if fix_crc {
        let crc = crc32c(&bytes[..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    }
    fs::write(path, &bytes).unwrap();
}

#[test]
fn versions() {
    let (_d, path) = tmp();
    small(&path, 8, 64);
    // A newer version that stays compatible is readable.
    patch_header(&path, 16, &7u32.to_le_bytes(), true);
    assert_eq!(Log::open_read_only(&path).unwrap().stats().version, 7);
    // Compat 3 (this build's newest, laned logs') is readable too, with one lane.
    patch_header(&path, 20, &3u32.to_le_bytes(), true);
    assert_eq!(Log::open_read_only(&path).unwrap().stats().lanes, 1);
    // One that is not, is refused with both numbers.
    patch_header(&path, 20, &4u32.to_le_bytes(), true);
    let err = Log::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                found: 7,
                compat: 4,
                supported: 3,
                ..
            }
        ),
        "{err}"
    );
    // A format 1 file (before claim words) is refused by name, read-write and read-only, and
    // left as it was.
    patch_header(&path, 16, &1u32.to_le_bytes(), true);
    patch_header(&path, 20, &1u32.to_le_bytes(), true);
    patch_header(&path, 48, &0u32.to_le_bytes(), true);
    let before = fs::read(&path).unwrap();
    for err in [
        Log::open(&path).unwrap_err(),
        Log::open_read_only(&path).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                Error::OldFormat {
                    found: 1,
                    supported: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("format 1"), "{err}");
    }
    assert_eq!(fs::read(&path).unwrap(), before);
    patch_header(&path, 16, &2u32.to_le_bytes(), true);
    patch_header(&path, 20, &2u32.to_le_bytes(), true);
    // Lanes other than one are not of this version.
    patch_header(&path, 48, &4u32.to_le_bytes(), true);
    assert!(matches!(
        Log::open(&path),
        Err(Error::CorruptHeader {
            field: "lanes",
            value: 4,
            ..
        })
    ));
    patch_header(&path, 48, &1u32.to_le_bytes(), true);
    patch_header(&path, 20, &0u32.to_le_bytes(), true);
    assert!(matches!(
        Log::open(&path),
        Err(Error::CorruptHeader {
            field: "compat_version",
            value: 0,
            ..
        })
    ));
    patch_header(&path, 16, &1u32.to_le_bytes(), true);
    patch_header(&path, 20, &2u32.to_le_bytes(), true);
    assert!(matches!(
        Log::open(&path),
        Err(Error::CorruptHeader {
            field: "version",
            value: 1,
            ..
        })
    ));
}

#[test]
fn corrupt_header_fields_are_named() {
    let (_d, path) = tmp();
    small(&path, 8, 64);
    let good = fs::read(&path).unwrap();
    let cases: [(usize, Vec<u8>, &str, u64); 5] = [
        (28, 100u32.to_le_bytes().to_vec(), "block_size", 100),
        (28, 32u32.to_le_bytes().to_vec(), "block_size", 32),
        (32, 1u64.to_le_bytes().to_vec(), "block_count", 1),
        (
            32,
            (1u64 << 40).to_le_bytes().to_vec(),
            "block_count",
            1 << 40,
        ),
        (24, 8192u32.to_le_bytes().to_vec(), "header_size", 8192),
    ];
    for (offset, value, field, found) in cases {
        fs::write(&path, &good).unwrap();
        patch_header(&path, offset, &value, true);
        let err = Log::open_read_only(&path).unwrap_err();
        assert!(
            matches!(&err, Error::CorruptHeader { field: f, value: v, .. } if *f == field && *v == found),
            "{field}: {err}"
        );
        assert!(err.to_string().contains(field));
    }
    // Without fixing the crc, any change in the static header is caught by it.
    // (The byte is flipped, not set: created_ns's low byte is 0xff once in 256 files, and
    // setting it to 0xff then changed nothing.)
    fs::write(&path, &good).unwrap();
    patch_header(&path, 40, &[good[40] ^ 0xff], false);
    assert!(matches!(
        Log::open(&path),
        Err(Error::CorruptHeader {
            field: "header_crc",
            ..
        })
    ));
    // The live counter is checked against its limit.
    fs::write(&path, &good).unwrap();
    patch_header(&path, 64, &u64::MAX.to_le_bytes(), false);
    assert!(matches!(
        Log::open(&path),
        Err(Error::CorruptHeader { field: "next", .. })
    ));
}

#[test]
fn truncated_file() {
    let (_d, path) = tmp();
    small(&path, 8, 64);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..4096 + 100]).unwrap();
    let err = Log::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                expected: 4608,
                found: 4196,
                ..
            }
        ),
        "{err}"
    );
    fs::write(&path, &bytes[..40]).unwrap();
    assert!(matches!(
        Log::open_read_only(&path),
        Err(Error::Truncated { .. })
    ));
    assert_eq!(fs::read(&path).unwrap().len(), 40, "not extended");
}

#[test]
fn size_limits() {
    let (_d, path) = tmp();
    // A record may take 4 blocks, 4 x 56 content bytes after their claim words, 32 of
    // them its header.
    let log = small(&path, 8, 64);
    assert_eq!(log.max_message(0), 224 - 32);
    assert_eq!(log.max_message(6), 224 - 38);
    let err = log
        .write(Level::Info, "tagtag", vec![1u8; 187])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::MessageTooLarge {
                size: 187,
                max: 186
            }
        ),
        "{err}"
    );
    let err = log.write(Level::Info, "", vec![0u8; 1 << 20]).unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { .. }));
    let long_tag = "t".repeat(256);
    assert!(matches!(
        log.write(Level::Info, &long_tag, "x"),
        Err(Error::TagTooLong { len: 256, max: 255 })
    ));
    assert_eq!(log.stats().next_id, 0, "nothing reserved by refused writes");
    let id = log.write(Level::Info, "tagtag", vec![7u8; 186]).unwrap();
    let r = log.reader_from(id).next().unwrap();
    assert_eq!((r.payload.len(), r.tag.as_str()), (186, "tagtag"));
    let big = small(&tmp().1.with_file_name("big.plog"), 16, 64);
    let tag = "t".repeat(255);
    assert!(big.write(Level::Info, &tag, "max tag").is_ok());
}

#[test]
fn ids_are_block_positions_and_records_round_trip() {
    let (_d, path) = tmp();
    let log = small(&path, 64, 64);
    let a = log.write(Level::Trace, "a", "").unwrap(); // 41 bytes: 1 block
    let b = log.write(Level::Debug, "bb", vec![9u8; 100]).unwrap(); // 142: 3 blocks
    let c = log
        .write(Level::Error, "", b"\xff\x00bin".as_slice())
        .unwrap();
    assert_eq!((a, b, c), (0, 1, 4));
    let records: Vec<_> = log.reader().collect();
    assert_eq!(records.len(), 3);
    assert_eq!(
        (
            records[1].level,
            records[1].tag.as_str(),
            records[1].payload.len()
        ),
        (Level::Debug, "bb", 100)
    );
    assert_eq!(records[2].payload, b"\xff\x00bin");
    assert_eq!(records[2].message(), "\u{fffd}\u{0}bin");
    assert!(records.iter().all(|r| r.pid == std::process::id()));
    assert!(records.windows(2).all(|w| w[0].time <= w[1].time));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(records[0].time.abs_diff(now) < 60_000_000_000);
    assert_eq!(log.reader_from(1).map(|r| r.id).collect::<Vec<_>>(), [1, 4]);
    assert_eq!(
        log.reader_from(2).map(|r| r.id).collect::<Vec<_>>(),
        [4],
        "from inside a record: the next one"
    );
    assert_eq!(log.reader_from(99).count(), 0);
    let s = log.stats();
    assert_eq!((s.next_id, s.oldest_id), (5, Some(0)));
}

#[test]
fn a_record_never_straddles_the_end() {
    let (_d, path) = tmp();
    let log = small(&path, 8, 64);
    let mut ids = vec![];
    for i in 0..5u8 {
        // 32 + 80 content bytes: 2 blocks of 56 each
        ids.push(log.write(Level::Info, "", vec![i; 80]).unwrap());
    }
    let x = log.write(Level::Info, "", vec![9u8; 130]).unwrap(); // 3 blocks: 10 % 8 = 2, fits
    assert_eq!(ids, [0, 2, 4, 6, 8]);
    assert_eq!(x, 10);
    let y = log.write(Level::Info, "", vec![8u8; 130]).unwrap(); // 13 % 8 = 5: 5+3 = 8 fits
    assert_eq!(y, 13);
    let z = log.write(Level::Info, "", vec![7u8; 130]).unwrap(); // 16 % 8 = 0
    assert_eq!(z, 16);
    let w = log.write(Level::Info, "", vec![6u8; 180]).unwrap(); // 4 blocks at 19 % 8 = 3 -> 7 fits
    assert_eq!(w, 19);
    // 23 % 8 = 7: 4 blocks would straddle; the reservation 23..27 becomes padding, land at 27.
    let v = log.write(Level::Info, "", vec![5u8; 180]).unwrap();
    assert_eq!(v, 27);
    let got: Vec<_> = log
        .reader()
        .map(|r| (r.id, r.payload[0], r.payload.len()))
        .collect();
    assert_eq!(
        got,
        [(27, 5, 180)],
        "the ring holds 8 blocks: only the newest record survives"
    );
    let mut r = log.reader_from(19);
    assert_eq!(
        r.next().map(|r| r.id),
        Some(27),
        "19 is overwritten: start at the oldest"
    );
    assert_eq!((r.position(), r.lost()), (31, 23 - 19));
}

#[test]
fn lapped_readers_count_lost_ids() {
    let (_d, path) = tmp();
    let log = small(&path, 16, 64);
    for i in 0..10u32 {
        log.write(Level::Info, "", i.to_le_bytes()).unwrap();
    }
    let mut reader = log.reader();
    assert_eq!(reader.next().unwrap().id, 0);
    for i in 10..40u32 {
        log.write(Level::Info, "", i.to_le_bytes()).unwrap();
    }
    let rest: Vec<u64> = reader.by_ref().map(|r| r.id).collect();
    // Ids 1..24 were overwritten before the reader got to them; it resumes a quarter ring
    // (4 blocks) past the oldest survivor, so 24..28 are skipped too, and counted.
    assert_eq!(rest, (28..40).collect::<Vec<_>>());
    assert_eq!(reader.lost(), 27, "ids 1..28 counted lost");
    assert_eq!(1 + rest.len() as u64 + reader.lost(), 40);
    assert_eq!(log.stats().oldest_id, Some(24));
    assert_eq!(log.reader().lost(), 0);
    // A reader lapped before it read anything still counts the lap.
    let mut late = log.reader();
    assert_eq!(late.position(), 24);
    for i in 40..60u32 {
        log.write(Level::Info, "", i.to_le_bytes()).unwrap();
    }
    assert_eq!(late.next().unwrap().id, 48);
    assert_eq!(late.lost(), 24);
}

#[test]
fn filters_and_dumps() {
    let (_d, path) = tmp();
    let log = small(&path, 64, 128);
    log.write(Level::Debug, "db", "query").unwrap();
    log.write(Level::Warn, "net", "slow \"peer\"").unwrap();
    log.write(Level::Error, "db", "down\n").unwrap();
    let f = Filter::all().levels([Level::Debug, Level::Error]).tag("db");
    assert_eq!(
        log.reader()
            .with_filter(f.clone())
            .map(|r| r.message().into_owned())
            .collect::<Vec<_>>(),
        ["query", "down\n"]
    );
    let mut out = Vec::new();
    let summary = log.dump(&mut out, &f, None, Format::Text).unwrap();
    assert_eq!((summary.written, summary.lost), (2, 0));
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with(&format!("DEBUG db pid={} id=0 query", std::process::id())),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("ERROR db") && lines[1].ends_with("id=2 down\\n"),
        "{}",
        lines[1]
    );
    let mut out = Vec::new();
    log.dump(&mut out, &Filter::all(), Some(1), Format::Json)
        .unwrap();
    let json = String::from_utf8(out).unwrap();
    assert_eq!(json.lines().count(), 2);
    assert!(json.starts_with("{\"id\":1,\"time\":\"20"), "{json}");
    assert!(json.contains("\"level\":\"warn\",\"tag\":\"net\""));
    assert!(json.contains("\"message\":\"slow \\\"peer\\\"\""));
    assert!(json.contains("\"message\":\"down\\n\"}"));
}

#[test]
fn dump_reports_write_errors() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (_d, path) = tmp();
    let log = small(&path, 8, 64);
    log.write(Level::Info, "t", "x").unwrap();
    let err = log
        .dump(&mut Broken, &Filter::all(), None, Format::Text)
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }) && err.to_string().contains("disk on fire"));
}

#[test]
fn cursors_persist() {
    let (_d, path) = tmp();
    let log = small(&path, 64, 64);
    for i in 0..5u8 {
        log.write(Level::Info, "", [i]).unwrap();
    }
    let mut reader = log.reader();
    reader.next();
    reader.next();
    reader.save_cursor("indexer").unwrap();
    log.save_cursor("other", 4).unwrap();
    drop((reader, log));
    let log = Log::open_read_only(&path).unwrap();
    assert_eq!(log.load_cursor("indexer").unwrap(), Some(2));
    assert_eq!(log.load_cursor("nobody").unwrap(), None);
    assert_eq!(
        log.cursors(),
        [("indexer".to_string(), 2), ("other".to_string(), 4)]
    );
    assert_eq!(
        log.reader_from_cursor("indexer")
            .unwrap()
            .map(|r| r.payload[0])
            .collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(log.reader_from_cursor("nobody").unwrap().count(), 5);
    let log = Log::open(&path).unwrap();
    log.save_cursor("indexer", 3).unwrap();
    assert_eq!(log.load_cursor("indexer").unwrap(), Some(3));
    assert_eq!(log.cursors().len(), 2, "updated in place");
    for (name, reason) in [("", "empty"), (&*"n".repeat(48), "longer"), ("a\0b", "NUL")] {
        let err = log.save_cursor(name, 0).unwrap_err();
        assert!(
            matches!(&err, Error::CursorName { reason: r, .. } if r.contains(reason)),
            "{err}"
        );
    }
    assert!(log.save_cursor(&"n".repeat(47), 1).is_ok());
    for i in 3..16 {
        log.save_cursor(&format!("c{i}"), i).unwrap();
    }
    assert!(matches!(
        log.save_cursor("one-too-many", 0),
        Err(Error::CursorsFull { max: 16 })
    ));
}

#[test]
fn user_area() {
    let (_d, path) = tmp();
    let log = small(&path, 8, 64);
    assert_eq!(log.user_area(), vec![0u8; 1024]);
    log.write_user_area(1000, b"config v2").unwrap();
    assert!(matches!(
        log.write_user_area(1020, b"too long"),
        Err(Error::UserArea {
            offset: 1020,
            len: 8,
            size: 1024
        })
    ));
    assert!(matches!(
        log.write_user_area(usize::MAX, b"x"),
        Err(Error::UserArea { .. })
    ));
    drop(log);
    assert_eq!(
        &Log::open(&path).unwrap().user_area()[1000..1009],
        b"config v2"
    );
}

#[test]
fn follow_wakes_on_new_records_and_stops_cleanly() {
    let (_d, path) = tmp();
    let log = Arc::new(small(&path, 256, 128));
    log.write(Level::Info, "old", "before").unwrap();
    let mut from_start = log.follow(FollowOptions::new().from_start()).unwrap();
    assert_eq!(from_start.next().unwrap().message(), "before");
    let mut follower = log
        .follow(FollowOptions::new().filter(Filter::all().tag("keep")))
        .unwrap();
    assert!(
        follower.next_timeout(Duration::from_millis(20)).is_none(),
        "only new records"
    );
    let writer = Arc::clone(&log);
    let t = std::thread::spawn(move || {
        for i in 0..100u32 {
            writer
                .write(
                    Level::Info,
                    if i % 2 == 0 { "keep" } else { "drop" },
                    i.to_le_bytes(),
                )
                .unwrap();
        }
    });
    let got: Vec<u32> = follower
        .by_ref()
        .take(50)
        .map(|r| u32::from_le_bytes(r.payload.try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..100).step_by(2).collect::<Vec<_>>());
    t.join().unwrap();
    let stop = follower.stop_handle();
    let t = std::thread::spawn(move || follower.next());
    std::thread::yield_now();
    stop.stop();
    assert!(
        t.join().unwrap().is_none(),
        "a stopped follower returns None"
    );
}

#[test]
fn read_only_followers_announce_themselves_and_are_woken() {
    let (_d, path) = tmp();
    let log = small(&path, 64, 128);
    let ro = Log::open_read_only(&path).unwrap();
    let mut follower = ro
        .follow(FollowOptions::new().max_sleep(Duration::from_secs(60)))
        .unwrap();
    let started = std::time::Instant::now();
    let t = std::thread::spawn(move || follower.next().map(|r| r.payload));
    // The sleeping follower sets the sleeper bit of the wake word in the file's header.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let header = fs::read(&path).unwrap();
        if u32::from_le_bytes(header[128..132].try_into().unwrap()) & (1 << 31) != 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the follower never announced its sleep"
        );
        std::thread::yield_now();
    }
    log.write(Level::Info, "t", "woken").unwrap();
    assert_eq!(t.join().unwrap(), Some(b"woken".to_vec()));
    // Woken by the writer, not by its 60 s timeout.
    assert!(started.elapsed() < Duration::from_secs(30));
    let header = fs::read(&path).unwrap();
    assert_eq!(
        u32::from_le_bytes(header[128..132].try_into().unwrap()) & (1 << 31),
        0,
        "the writer cleared the bit"
    );
}

/// A read-only handle whose file was renamed away and replaced by a copy at its path: a
/// follower must not announce itself in the copy (whose header is the same bytes), which no
/// writer of the original would ever wake.
#[test]
#[cfg(unix)]
fn a_read_only_follower_never_marks_a_copy_at_its_path() {
    let (dir, path) = tmp();
    let log = small(&path, 64, 128);
    let ro = Log::open_read_only(&path).unwrap();
    let moved = dir.path().join("moved.plog");
    fs::rename(&path, &moved).unwrap();
    fs::copy(&moved, &path).unwrap();
    let wake_word = |p: &PathBuf| {
        let bytes = fs::read(p).unwrap();
        u32::from_le_bytes(bytes[128..132].try_into().unwrap())
    };
    let copy_before = wake_word(&path);
    let mut follower = ro
        .follow(FollowOptions::new().max_sleep(Duration::from_millis(5)))
        .unwrap();
    // Several sleeps: each would announce itself if it had a side mapping of the copy.
    assert!(follower.next_timeout(Duration::from_millis(50)).is_none());
    assert_eq!(
        wake_word(&path),
        copy_before,
        "the copy's wake word is untouched"
    );
    // It still follows the original, by polling.
    log.write(Level::Info, "t", "seen").unwrap();
    assert_eq!(
        follower
            .next_timeout(Duration::from_secs(10))
            .unwrap()
            .message(),
        "seen"
    );
}

#[test]
fn followers_of_unwritable_files_poll() {
    let (_d, path) = tmp();
    let log = small(&path, 64, 128);
    let mut perms = fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(&path, perms).unwrap();
    let ro = Log::open_read_only(&path).unwrap();
    assert!(matches!(
        Log::open(&path),
        Err(Error::Map(pmap::Error::ReadOnlyFile { .. }))
    ));
    let mut follower = ro.follow(FollowOptions::new()).unwrap();
    log.write(Level::Info, "t", "seen").unwrap();
    assert_eq!(
        follower
            .next_timeout(Duration::from_secs(10))
            .unwrap()
            .message(),
        "seen"
    );
    let stop = follower.stop_handle();
    stop.stop();
    assert!(stop.is_stopped());
    assert!(follower.next().is_none());
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn start_following_prints_in_the_background() {
    let (_d, path) = tmp();
    let log = small(&path, 64, 128);
    let buf = SharedBuf::default();
    let printer = log
        .start_following_with(
            buf.clone(),
            FollowOptions::new().from_start().format(Format::Json),
        )
        .unwrap();
    log.write(Level::Warn, "bg", "one").unwrap();
    log.write(Level::Warn, "bg", "two").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while buf
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the printer did not print"
        );
        std::thread::yield_now();
    }
    let (_, printed) = printer.stop().unwrap();
    assert_eq!(printed, 2);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("\"message\":\"one\"") && text.contains("\"message\":\"two\""));
    let quiet = log.start_following(Vec::new()).unwrap();
    assert_eq!(quiet.stop().unwrap().1, 0, "from the newest: nothing old");
}

#[test]
fn handles_are_shareable() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Log>();
    send_sync::<plog::StopHandle>();
    send_sync::<plog::Error>();
    send::<plog::Reader>();
    send::<plog::Follower>();
    send::<plog::FollowThread<Vec<u8>>>();
}

#[test]
fn padding_is_accounted_for() {
    let (_d, path) = tmp();
    let log = small(&path, 8, 64);
    let mut reader = log.reader_from(0);
    // 100-byte payloads take 3 blocks: at 0..3 and 3..6; the third would straddle the end at
    // 6, so padding fills 6..8 and 8..9 (what it had reserved) and it lands at 9..12.
    log.write(Level::Info, "", [1u8; 100]).unwrap();
    log.write(Level::Info, "", [2u8; 100]).unwrap();
    assert_eq!(reader.by_ref().map(|r| r.id).collect::<Vec<_>>(), [0, 3]);
    assert_eq!(log.write(Level::Info, "", [3u8; 100]).unwrap(), 9);
    assert_eq!(reader.by_ref().map(|r| r.id).collect::<Vec<_>>(), [9]);
    assert_eq!(
        (reader.lost(), reader.padding(), reader.position()),
        (0, 3, 12)
    );
}

#[test]
fn rfc3339_is_public_and_formats_the_creation_time() {
    assert_eq!(plog::rfc3339(0), "1970-01-01T00:00:00.000000000Z");
    // The last instant of a leap year and the first of the next (2000 is a leap year, 1900
    // and 2100 are not).
    assert_eq!(
        plog::rfc3339(978_307_199_999_999_999),
        "2000-12-31T23:59:59.999999999Z"
    );
    assert_eq!(
        plog::rfc3339(978_307_200_000_000_000),
        "2001-01-01T00:00:00.000000000Z"
    );
    assert_eq!(
        plog::rfc3339(1_709_164_800_000_000_001),
        "2024-02-29T00:00:00.000000001Z"
    );
    assert_eq!(
        plog::rfc3339(4_107_542_400_000_000_000),
        "2100-03-01T00:00:00.000000000Z"
    );
    let (_d, path) = tmp();
    let log = small(&path, 8, 64);
    let created = plog::rfc3339(log.stats().created);
    assert_eq!(created.len(), "2026-01-02T03:04:05.123456789Z".len());
    let id = log.write(Level::Info, "t", "x").unwrap();
    let record = log.reader_from(id).next().unwrap();
    assert_eq!(record.time_rfc3339(), plog::rfc3339(record.time));
    // The log was created just before the record was written.
    assert!(record.time >= log.stats().created);
    assert!(record.time - log.stats().created < 60_000_000_000);
}

#[test]
fn an_exhausted_counter_refuses_writes_and_leaves_the_file_openable() {
    let (_d, path) = tmp();
    small(&path, 8, 64).write(Level::Info, "t", "last").unwrap();
    // The counter is a live word, outside the header crc: set it just below its limit.
    let near = plog::POSITION_LIMIT - 1;
    patch_header(&path, 64, &near.to_le_bytes(), false);
    let log = Log::open(&path).unwrap();
    for _ in 0..3 {
        let err = log.write(Level::Info, "t", "refused").unwrap_err();
        assert!(matches!(err, Error::CounterExhausted { .. }), "{err}");
    }
    assert_eq!(log.stats().next_id, near, "refused writes reserve nothing");
    drop(log);
    let log = Log::open(&path).expect("the refused writes left a valid file");
    assert_eq!(log.stats().next_id, near);
    assert!(Log::open_read_only(&path).is_ok());
}

#[test]
fn a_follower_from_the_start_of_a_wrapped_ring_does_not_wait_out_its_first_hole() {
    let (_d, path) = tmp();
    let log = small(&path, 8, 64);
    // 3-block records at 0 and 3; the third pads 6..9 and lands at 9..12. The oldest
    // position, 12 - 8 = 4, is inside the overwritten record 3: its blocks 4 and 5 hold old
    // payload bytes, not a record in flight.
    for i in 0..3u8 {
        log.write(Level::Info, "", [i; 100]).unwrap();
    }
    assert_eq!(log.stats().next_id, 12);
    let options = FollowOptions::new()
        .from_start()
        .hole_grace(Duration::from_secs(60));
    let mut follower = log.follow(options).unwrap();
    let first = follower.next_timeout(Duration::from_secs(2));
    assert_eq!(first.map(|r| (r.id, r.payload[0])), Some((9, 2)));
    assert_eq!(follower.lost(), 0, "as the plain reader counts it");
    assert_eq!(log.reader().lost(), 0);
    // A hole at an id asked for, inside the ring, is waited for: it may be in flight.
    let mut from_id = log
        .follow(
            FollowOptions::new()
                .from_id(5)
                .hole_grace(Duration::from_secs(60)),
        )
        .unwrap();
    assert!(
        from_id.next_timeout(Duration::from_millis(20)).is_none(),
        "an id asked for may be in flight"
    );
}

#[test]
fn stopping_a_sleeping_follower_wakes_it_on_any_handle() {
    let (_d, path) = tmp();
    let log = small(&path, 16, 64);
    let ro = Log::open_read_only(&path).unwrap();
    for handle in [&log, &ro] {
        let mut follower = handle
            .follow(FollowOptions::new().max_sleep(Duration::from_secs(60)))
            .unwrap();
        let stop = follower.stop_handle();
        let started = std::time::Instant::now();
        let t = std::thread::spawn(move || follower.next());
        // Wait until the follower has announced its sleep (the wake word's sleeper bit).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while u32::from_le_bytes(fs::read(&path).unwrap()[128..132].try_into().unwrap()) & (1 << 31)
            == 0
        {
            assert!(std::time::Instant::now() < deadline, "never slept");
            std::thread::yield_now();
        }
        stop.stop();
        assert!(t.join().unwrap().is_none());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "woken by the stop, not by its 60 s sleep bound"
        );
    }
}

/// Page faults this thread has taken (minor faults, `/proc/thread-self/stat` field 10).
#[cfg(target_os = "linux")]
fn minor_faults() -> u64 {
    let stat = fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat.rsplit_once(')').unwrap().1;
    after.split_whitespace().nth(7).unwrap().parse().unwrap()
}

/// A read-write open faults the ring in writable, so the first lap of a fresh log takes no page
/// fault per page (counted, not timed); with `Populate::Never` it takes one per page.
#[cfg(target_os = "linux")]
#[test]
fn a_populated_log_writes_its_first_lap_without_page_faults() {
    for populate in [true, false] {
        let (_d, path) = tmp();
        let log = LogOptions::new()
            .blocks(2048)
            .block_size(4096)
            .populate(if populate {
                Populate::Always
            } else {
                Populate::Never
            })
            .open(&path)
            .unwrap();
        let before = minor_faults();
        for i in 0..2048u32 {
            log.write(Level::Info, "t", i.to_le_bytes()).unwrap();
        }
        let faults = minor_faults() - before;
        // Wide margins: background writeback may clean (and write-protect) a few populated pages
        // before they are written, which then fault once.
        if populate {
            assert!(faults < 512, "populated: {faults} faults over 2048 pages");
        } else {
            assert!(
                faults > 1500,
                "not populated: {faults} faults over 2048 pages"
            );
        }
    }
}

/// A record over 64 KiB is checked against its crc in place before a buffer of its size is
/// allocated: an intact one reads back whole, one with a damaged byte is skipped.
#[test]
fn a_large_record_is_checked_in_place_then_read_whole() {
    let (_d, path) = tmp();
    let log = Log::open(&path).unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = log.write(Level::Info, "big", &payload).unwrap();
    let small = log.write(Level::Info, "t", "after").unwrap();
    let read: Vec<_> = log.reader().collect();
    assert_eq!(read.len(), 2);
    assert_eq!((read[0].id, read[0].payload.len()), (id, payload.len()));
    assert!(read[0].payload == payload, "read back whole");
    drop(read);
    drop(log);
    // Damage one payload byte far into the record (past its first block): the record fails
    // its crc and is skipped; the one after it survives.
    let mut bytes = fs::read(&path).unwrap();
    let at = 4096 + (id as usize + 1000) * 128 + 64;
    bytes[at] ^= 0x55;
    fs::write(&path, &bytes).unwrap();
    let log = Log::open_read_only(&path).unwrap();
    let ids: Vec<u64> = log.reader().map(|r| r.id).collect();
    assert_eq!(ids, [small]);
}

/// `Reader::invalid` is the part of `lost` that failed validation, apart from the ids the
/// writers lapped.
#[test]
fn a_reader_counts_damaged_blocks_as_invalid_and_lapped_ids_as_lost_only() {
    let (_d, path) = tmp();
    let log = small(&path, 16, 128);
    for i in 0..20u64 {
        log.write(Level::Info, "t", format!("m{i}")).unwrap();
    }
    drop(log);
    // Damage record 10 (slot 10): its time, under the crc.
    let mut bytes = fs::read(&path).unwrap();
    bytes[4096 + 10 * 128 + 8] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let log = Log::open_read_only(&path).unwrap();
    let mut reader = log.reader_from(0);
    let ids: Vec<u64> = reader.by_ref().map(|r| r.id).collect();
    assert_eq!(ids, (4..20).filter(|&id| id != 10).collect::<Vec<_>>());
    assert_eq!((reader.lost(), reader.invalid()), (4 + 1, 1));
}
