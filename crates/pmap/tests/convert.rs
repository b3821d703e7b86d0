//! Read-only and writable views converted into each other without reopening the path: the
//! bytes stay, writes are refused and allowed again, the very file the handle opened is the
//! one mapped (not whatever is at the path now), and what cannot be converted is refused
//! with the view left as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pmap::{Error, Map, MapOptions};

#[test]
fn a_writable_map_becomes_read_only_and_writable_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("convert.bin");
    let mut map = pmap::Map::create(&path, 8192).unwrap();
    map.slice_mut(100, 5).unwrap().copy_from_slice(b"first");

    map.make_read_only().unwrap();
    assert!(!map.is_writable());
    assert_eq!(map.len(), 8192);
    assert_eq!(map.slice(100, 5).unwrap(), b"first");
    assert!(matches!(
        map.as_mut_slice(),
        Err(Error::ReadOnlyMapping { .. })
    ));
    assert!(matches!(
        map.grow(16384),
        Err(Error::ReadOnlyMapping { .. })
    ));
    // Already read-only: nothing to do.
    map.make_read_only().unwrap();

    map.make_writable().unwrap();
    assert!(map.is_writable());
    map.slice_mut(200, 6).unwrap().copy_from_slice(b"second");
    map.grow(16384).unwrap();
    map.flush().unwrap();
    drop(map);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 16384);
    assert_eq!(
        (&bytes[100..105], &bytes[200..206]),
        (&b"first"[..], &b"second"[..])
    );
}

#[test]
fn conversion_maps_the_file_the_handle_opened_not_the_one_at_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moved.bin");
    let mut map = pmap::Map::create(&path, 4096).unwrap();
    map.make_read_only().unwrap();
    // The file moves away and another takes its path: a reopen would map the newcomer.
    let moved = dir.path().join("moved-away.bin");
    std::fs::rename(&path, &moved).unwrap();
    std::fs::write(&path, vec![0xee; 4096]).unwrap();
    map.make_writable().unwrap();
    map.slice_mut(0, 4).unwrap().copy_from_slice(b"mine");
    drop(map);
    assert_eq!(&std::fs::read(&moved).unwrap()[..4], b"mine");
    assert_eq!(std::fs::read(&path).unwrap(), vec![0xee; 4096]);
}

#[test]
fn a_shared_map_converts_too_and_refuses_atomics_while_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut shared = pmap::Map::create(dir.path().join("shared.bin"), 4096)
        .unwrap()
        .into_shared();
    shared
        .atomic_u64(8)
        .unwrap()
        .store(42, std::sync::atomic::Ordering::Release);
    shared.make_read_only().unwrap();
    assert!(matches!(
        shared.atomic_u64(8),
        Err(Error::ReadOnlyMapping { .. })
    ));
    assert_eq!(
        shared
            .load_u64(8, std::sync::atomic::Ordering::Acquire)
            .unwrap(),
        42
    );
    shared.make_writable().unwrap();
    shared
        .atomic_u64(8)
        .unwrap()
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    assert_eq!(shared.read::<u64>(8).unwrap(), 43);
}

#[test]
fn a_fixed_view_at_an_offset_keeps_its_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offset.bin");
    let bytes: Vec<u8> = (0..3 * 4096).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let options = MapOptions::new().offset(4099).len(5000);
    let mut map = options.open(&path).unwrap();
    map.make_read_only().unwrap();
    map.make_writable().unwrap();
    assert!(map.is_fixed_length());
    assert_eq!(map.as_slice(), &bytes[4099..4099 + 5000]);
}

#[test]
fn what_cannot_be_converted_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.bin");
    std::fs::write(&path, b"read-only handle").unwrap();
    // A handle opened read-only cannot write: making its view writable needs a reopen.
    let mut map = Map::open_read_only(&path).unwrap();
    assert!(matches!(
        map.make_writable(),
        Err(Error::Unsupported { .. })
    ));
    assert!(!map.is_writable());
    assert_eq!(map.as_slice(), b"read-only handle");
    // An anonymous mapping has no file to map again: it stays writable.
    let mut anonymous = Map::anonymous(4096).unwrap();
    anonymous.as_mut_slice().unwrap()[0] = 9;
    assert!(matches!(
        anonymous.make_read_only(),
        Err(Error::Unsupported { .. })
    ));
    assert!(anonymous.is_writable());
    assert_eq!(anonymous.as_slice()[0], 9);
}
