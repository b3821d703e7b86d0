//! `AppendWriter`: capacity, doubling growth, flush, finish and drop trims, re-opening, errors,
//! and 100 MiB in uneven chunks checked by length and CRC-32C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;

use pmap_stream::{AppendOptions, AppendWriter, Error};

#[test]
fn starts_with_the_default_capacity_and_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let writer = AppendWriter::open(&path).unwrap();
    assert_eq!(AppendWriter::DEFAULT_CAPACITY, 10 << 20);
    assert_eq!(writer.capacity(), 10 << 20);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        10 << 20,
        "room reserved in the file"
    );
    assert!(writer.is_empty());
    assert_eq!(writer.path(), path);
    assert_eq!(writer.finish().unwrap(), 0);
    assert_eq!(fs::metadata(&path).unwrap().len(), 0, "trimmed to nothing");
}

#[test]
fn grows_by_doubling_without_losing_a_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut writer = AppendOptions::new().capacity(16).open(&path).unwrap();
    let mut expected = Vec::new();
    let mut capacities = vec![writer.capacity()];
    for i in 0u8..60 {
        let chunk = vec![i; usize::from(i % 7) + 1];
        writer.write_all(&chunk).unwrap();
        expected.extend_from_slice(&chunk);
        if capacities.last() != Some(&writer.capacity()) {
            capacities.push(writer.capacity());
        }
        assert_eq!(writer.len(), expected.len() as u64);
    }
    assert_eq!(capacities, [16, 32, 64, 128, 256]);
    assert_eq!(writer.finish().unwrap(), expected.len() as u64);
    assert_eq!(fs::read(&path).unwrap(), expected);
}

#[test]
fn a_write_larger_than_double_grows_to_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut writer = AppendOptions::new().capacity(4).open(&path).unwrap();
    writer.write_all(&[7u8; 100]).unwrap();
    assert_eq!(writer.capacity(), 100);
    writer.write_all(b"x").unwrap();
    assert_eq!(writer.capacity(), 200);
    assert_eq!(writer.finish().unwrap(), 101);
}

#[test]
fn drop_trims_the_file_to_the_bytes_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut writer = AppendOptions::new().capacity(1 << 16).open(&path).unwrap();
    writer.write_all(b"kept").unwrap();
    drop(writer);
    assert_eq!(fs::read(&path).unwrap(), b"kept");
}

#[test]
fn reopening_appends_after_the_current_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    fs::write(&path, b"old;").unwrap();
    for word in ["one;", "two;"] {
        let mut writer = AppendOptions::new().capacity(64).open(&path).unwrap();
        assert_eq!(
            writer.capacity(),
            fs::metadata(&path).unwrap().len() as usize
        );
        writer.write_all(word.as_bytes()).unwrap();
        writer.finish().unwrap();
    }
    assert_eq!(fs::read(&path).unwrap(), b"old;one;two;");
}

#[test]
fn flush_syncs_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut writer = AppendOptions::new().capacity(1 << 20).open(&path).unwrap();
    writer.flush().unwrap(); // nothing appended yet
    writer.write_all(b"first ").unwrap();
    writer.flush().unwrap();
    writer.write_all(b"second").unwrap();
    writer.sync().unwrap();
    // Through a mapping, not `fs::read`: on Windows the writer's exclusive lock is mandatory
    // for `ReadFile` from other handles (mapped reads are not subject to it).
    let reader = pmap::Map::open_read_only(&path).unwrap();
    assert_eq!(&reader.as_slice()[..12], b"first second");
    drop(reader);
    assert_eq!(writer.finish().unwrap(), 12);
}

#[test]
fn a_zero_capacity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let error = AppendOptions::new().capacity(0).open(&path).unwrap_err();
    assert!(matches!(error, Error::ZeroCapacity { .. }));
    assert!(error.to_string().contains("log"), "{error}");
    assert!(!path.exists());
}

#[test]
fn a_second_writer_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut first = AppendOptions::new().capacity(64).open(&path).unwrap();
    first.write_all(b"mine").unwrap();
    let error = AppendOptions::new().capacity(64).open(&path).unwrap_err();
    assert!(
        matches!(error, Error::Map(pmap::Error::LockContended { .. })),
        "{error:?}"
    );
    assert_eq!(first.finish().unwrap(), 4);
    assert_eq!(
        fs::read(&path).unwrap(),
        b"mine",
        "the refused writer lost nothing"
    );
}

#[test]
fn a_directory_or_read_only_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = AppendWriter::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, Error::Map(pmap::Error::IsDirectory { .. })),
        "{error:?}"
    );
    let path = dir.path().join("ro");
    fs::write(&path, b"frozen").unwrap();
    let mut perms = fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(&path, perms).unwrap();
    let error = AppendWriter::open(&path).unwrap_err();
    assert!(
        matches!(error, Error::Map(pmap::Error::ReadOnlyFile { .. })),
        "{error:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), b"frozen");
}

/// A cheap, position-dependent byte pattern: a fixed 64 KiB table, read from an offset that
/// changes per chunk so that a misplaced or lost chunk changes the checksum.
fn pattern() -> Vec<u8> {
    pounds_testkit::Rng::new(0x9E37_79B9_7F4A_7C15).bytes(1 << 16)
}

#[test]
fn hundred_mib_in_uneven_chunks_keeps_length_and_checksum() {
    const TOTAL: usize = 100 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk");
    let table = pattern();
    let mut writer = AppendOptions::new().capacity(1 << 20).open(&path).unwrap();
    let (mut written, mut crc, mut chunk_no) = (0usize, 0u32, 0usize);
    while written < TOTAL {
        // Sizes from 1 byte to ~32 KiB, never a multiple of the page size by design.
        let size = (1 + (chunk_no * 7919) % 32_749).min(TOTAL - written);
        let start = (chunk_no * 131) % (table.len() - size);
        let chunk = &table[start..start + size];
        writer.write_all(chunk).unwrap();
        crc = crc32c::crc32c_append(crc, chunk);
        written += size;
        chunk_no += 1;
        if chunk_no % 1000 == 0 {
            writer.flush().unwrap();
        }
    }
    assert!(writer.capacity() >= TOTAL);
    assert_eq!(writer.finish().unwrap(), TOTAL as u64);
    assert_eq!(fs::metadata(&path).unwrap().len(), TOTAL as u64);
    let on_disk = pmap::Map::open_read_only(&path).unwrap();
    assert_eq!(crc32c::crc32c(on_disk.as_slice()), crc);
}
