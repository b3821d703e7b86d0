//! Memory copies (`MapOptions::memory_copy`): a view that maps nothing, filled by positioned
//! reads, whose bytes reach the file only by `write_file_at` and `write_back`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::sync::atomic::Ordering;

use pmap::{Advice, Error, MapOptions};

fn file_with(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.bin");
    fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn a_memory_copy_reads_the_file_as_it_was_opened() {
    let mut bytes = vec![0u8; 10_000];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    let (_dir, path) = file_with(&bytes);
    let copy = MapOptions::new()
        .memory_copy()
        .open(&path)
        .unwrap()
        .into_shared();
    assert!(copy.is_memory_copy());
    assert!(!copy.is_anonymous());
    let mut back = vec![0u8; bytes.len()];
    copy.read_at(0, &mut back).unwrap();
    assert_eq!(back, bytes);
    // Another writer's later bytes are not in the copy, and refresh does not bring them.
    fs::write(&path, vec![1u8; 20_000]).unwrap();
    let mut copy = copy;
    assert!(!copy.refresh().unwrap());
    assert_eq!(copy.len(), 10_000);
    copy.read_at(0, &mut back).unwrap();
    assert_eq!(back, bytes);
}

#[test]
fn stores_reach_the_file_only_when_written_back() {
    let (_dir, path) = file_with(&[0u8; 4096]);
    let copy = MapOptions::new()
        .memory_copy()
        .open(&path)
        .unwrap()
        .into_shared();
    copy.write_at(100, b"in memory").unwrap();
    copy.atomic_u64(200)
        .unwrap()
        .store(0x0102_0304_0506_0708, Ordering::Release);
    let mut seen = [0u8; 9];
    copy.read_at(100, &mut seen).unwrap();
    assert_eq!(&seen, b"in memory");
    let on_disk = fs::read(&path).unwrap();
    assert_eq!(&on_disk[100..109], &[0u8; 9]);
    assert_eq!(&on_disk[200..208], &[0u8; 8]);
    copy.write_back(100, 9).unwrap();
    copy.write_back(200, 8).unwrap();
    let on_disk = fs::read(&path).unwrap();
    assert_eq!(&on_disk[100..109], b"in memory");
    assert_eq!(&on_disk[200..208], &0x0102_0304_0506_0708u64.to_le_bytes());
    // A positioned write lands in both.
    copy.write_file_at(300, b"both").unwrap();
    copy.read_at(300, &mut seen[..4]).unwrap();
    assert_eq!(&seen[..4], b"both");
    assert_eq!(&fs::read(&path).unwrap()[300..304], b"both");
    // A range larger than the stack buffer goes back whole.
    let big: Vec<u8> = (0..3000).map(|i| (i % 251) as u8).collect();
    copy.write_at(1000, &big).unwrap();
    copy.write_back(1000, big.len()).unwrap();
    assert_eq!(&fs::read(&path).unwrap()[1000..4000], &big[..]);
    copy.flush().unwrap();
    assert!(matches!(
        copy.write_back(4000, 200),
        Err(Error::OutOfBounds { .. })
    ));
}

#[test]
fn growth_extends_the_file_and_the_copy_keeps_its_bytes() {
    let (_dir, path) = file_with(b"head");
    let mut copy = MapOptions::new()
        .memory_copy()
        .open(&path)
        .unwrap()
        .into_shared();
    copy.grow(8192).unwrap();
    assert_eq!(copy.len(), 8192);
    assert_eq!(fs::metadata(&path).unwrap().len(), 8192);
    let mut head = [0u8; 4];
    copy.read_at(0, &mut head).unwrap();
    assert_eq!(&head, b"head");
    copy.write_file_at(8188, b"tail").unwrap();
    assert_eq!(&fs::read(&path).unwrap()[8188..], b"tail");
}

#[test]
fn a_read_only_memory_copy_refuses_stores_and_dropping_pages() {
    let (_dir, path) = file_with(&[5u8; 4096]);
    let copy = MapOptions::new()
        .read_only()
        .memory_copy()
        .open(&path)
        .unwrap()
        .into_shared();
    assert!(matches!(
        copy.write_at(0, b"x"),
        Err(Error::ReadOnlyMapping { .. })
    ));
    assert!(matches!(
        copy.write_back(0, 1),
        Err(Error::ReadOnlyMapping { .. })
    ));
    assert!(matches!(
        copy.atomic_u64(0),
        Err(Error::ReadOnlyMapping { .. })
    ));
    // Dropping the pages of a copy would zero it: refused, as for an anonymous map.
    assert!(matches!(
        copy.advise(0, 4096, Advice::DontNeed),
        Err(Error::Unsupported { .. })
    ));
    assert_eq!(
        copy.load_u64(8, Ordering::Relaxed).unwrap(),
        u64::from_le_bytes([5; 8])
    );
}
