//! A full disk is a typed error when a mapping is created or grows, never a `SIGBUS` when a
//! page is first written: each test mounts a real 4 MiB tmpfs (the tests need root, as CI runs).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::path::Path;

use pmap::{Error, Map};
use pounds_testkit::{Tmpfs, fill_until_full};

const MIB: u64 = 1 << 20;
const PAGE: usize = 4096;

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + 5) as u8).collect()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// Writes one byte in every page of the view, then checks it reads back.
fn touch_every_page(map: &mut Map, value: u8) {
    let len = map.len();
    let bytes = map.as_mut_slice().unwrap();
    for at in (0..len).step_by(PAGE) {
        bytes[at] = value;
    }
    assert!((0..len).step_by(PAGE).all(|at| map.as_slice()[at] == value));
}

#[track_caller]
fn expect_no_space(result: pmap::Result<impl std::fmt::Debug>, path: &Path, len: u64, old: u64) {
    match result {
        Err(Error::NoSpace {
            path: p,
            requested,
            len: l,
            available,
            ..
        }) => {
            assert_eq!(p, path);
            assert_eq!((requested, l), (len - old, len));
            assert!(available.is_some_and(|a| a < requested), "{available:?}");
        }
        other => panic!(
            "expected NoSpace growing {} to {len}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn full_disk_open_larger_than_free_space_is_no_space() {
    let disk = Tmpfs::mount("4m");
    let path = disk.path("big.bin");
    let result = pmap::Map::create(&path, 8 * MIB);
    let message = result.as_ref().map(|_| ()).unwrap_err().to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("8388608"),
        "{message}"
    );
    expect_no_space(result, &path, 8 * MIB, 0);
    // The file the open created keeps its old length, zero, and holds no blocks.
    assert_eq!(file_len(&path), 0);
    assert_eq!(disk.available(), 4 * MIB);

    // An existing file with bytes: its length and bytes stay.
    fs::write(&path, pattern(1000)).unwrap();
    expect_no_space(pmap::Map::create(&path, 8 * MIB), &path, 8 * MIB, 1000);
    assert_eq!(fs::read(&path).unwrap(), pattern(1000));
    // Through the options too (a view at an offset, of a fixed length).
    let options = pmap::MapOptions::new().offset(4096).len(5 << 20);
    expect_no_space(options.open(&path), &path, 4096 + (5 << 20), 1000);
    assert_eq!(fs::read(&path).unwrap(), pattern(1000));
}

#[test]
fn full_disk_grow_and_reserve_past_free_space_keep_the_old_view() {
    let disk = Tmpfs::mount("4m");
    let path = disk.path("grow.bin");
    let mut map = pmap::Map::create(&path, MIB).unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(&pattern(MIB));

    expect_no_space(map.grow(8 << 20), &path, 8 * MIB, MIB);
    assert_eq!((map.len() as u64, file_len(&path)), (MIB, MIB));
    assert_eq!(map.as_slice(), &pattern(MIB)[..]);

    // Doubling (2 MiB) would fit, but the 5 MiB asked for does not.
    expect_no_space(map.reserve(5 << 20), &path, 5 * MIB, MIB);
    assert_eq!((map.len() as u64, file_len(&path)), (MIB, MIB));
    assert_eq!(map.as_slice(), &pattern(MIB)[..]);

    // The old view is still readable and writable, and flushes.
    touch_every_page(&mut map, 0xEE);
    map.flush().unwrap();
    // A shared handle grows through the same path.
    let mut shared = map.into_shared();
    expect_no_space(shared.grow(8 << 20), &path, 8 * MIB, MIB);
    assert_eq!(shared.len() as u64, MIB);
    shared.write_at(1, &[1, 2, 3]).unwrap();
    let mut back = [0u8; 3];
    shared.read_at(1, &mut back).unwrap();
    assert_eq!(back, [1, 2, 3]);
    // A growth that fits still works after the failures, and its pages are all writable.
    shared.grow(3 << 20).unwrap();
    drop(shared);
    let mut map = pmap::Map::open(&path).unwrap();
    assert_eq!(map.len() as u64, 3 * MIB);
    touch_every_page(&mut map, 0x11);
    map.close().unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, 3 * MIB);
    assert_eq!(&bytes[1..4], &[1, 2, 3]);
}

#[test]
fn full_disk_reserve_falls_back_to_the_minimum_when_doubling_does_not_fit() {
    let disk = Tmpfs::mount("4m");
    let path = disk.path("reserve.bin");
    let mut map = pmap::Map::create(&path, 2560 << 10).unwrap();
    map.as_mut_slice()
        .unwrap()
        .copy_from_slice(&pattern(2560 << 10));
    // Doubling to 5 MiB does not fit in 4 MiB; the 3 MiB asked for does.
    map.reserve(3 << 20).unwrap();
    assert_eq!((map.len() as u64, file_len(&path)), (3 * MIB, 3 * MIB));
    assert_eq!(&map.as_slice()[..2560 << 10], &pattern(2560 << 10)[..]);
    touch_every_page(&mut map, 0x22);
    // Neither doubling (6 MiB) nor the minimum (5 MiB) fits: the minimum is what is reported.
    expect_no_space(map.reserve(5 << 20), &path, 5 * MIB, 3 * MIB);
    assert_eq!(map.len() as u64, 3 * MIB);
}

#[test]
fn full_disk_a_map_that_fits_has_its_blocks_reserved() {
    let disk = Tmpfs::mount("4m");
    let path = disk.path("fits.bin");
    // Mapped, not yet written.
    let mut map = pmap::Map::create(&path, 3 * MIB).unwrap();
    // Another file takes what is left: with the map's blocks reserved that is under 1 MiB. A
    // sparse map would have left it all 4 MiB, and the writes below would die of SIGBUS.
    let taken = fill_until_full(&disk.path("filler"));
    assert!(
        taken <= MIB,
        "another file took {taken} bytes of the map's space"
    );
    touch_every_page(&mut map, 0x33);
    map.flush().unwrap();
    // Growing now fails cleanly, with the view intact.
    expect_no_space(map.grow(4 << 20), &path, 4 * MIB, 3 * MIB);
    assert!(
        (0..3 << 20)
            .step_by(PAGE)
            .all(|at| map.as_slice()[at] == 0x33)
    );
    map.close().unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, 3 * MIB);
    assert!((0..bytes.len()).step_by(PAGE).all(|at| bytes[at] == 0x33));
}

#[test]
fn full_disk_a_ring_file_larger_than_the_disk_is_no_space() {
    let disk = Tmpfs::mount("4m");
    let path = disk.path("big.ring");
    let options = pmap::RingOptions::new().capacity(8 << 20);
    expect_no_space(
        options.open_producer(&path).map(drop),
        &path,
        8 * MIB + PAGE as u64,
        0,
    );
    // The file the open created stays empty and holds no blocks; a ring that fits is made.
    assert_eq!(file_len(&path), 0);
    assert_eq!(disk.available(), 4 * MIB);
    let mut ring = pmap::RingOptions::new()
        .capacity(MIB as usize)
        .open(&path)
        .unwrap();
    let page = vec![0x5a; PAGE];
    while std::io::Write::write(&mut ring, &page).unwrap() > 0 {}
    assert_eq!(ring.len() as u64, MIB, "every page of the ring was written");
}

#[test]
fn full_disk_growth_inside_a_reservation_is_no_space_and_keeps_the_view_in_place() {
    let disk = Tmpfs::mount("4m");
    let path = disk.path("reserved.bin");
    let mut map = pmap::MapOptions::new()
        .size(MIB)
        .reserve_address_space(16 << 20)
        .open(&path)
        .unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(&pattern(MIB));
    let start = map.as_slice().as_ptr();
    expect_no_space(map.grow(8 << 20), &path, 8 * MIB, MIB);
    assert_eq!((map.len() as u64, file_len(&path)), (MIB, MIB));
    assert_eq!(map.as_slice().as_ptr(), start);
    assert_eq!(map.as_slice(), &pattern(MIB)[..]);
    // A growth that fits still happens in place, and every new page can be written.
    map.grow(2 << 20).unwrap();
    assert_eq!(map.as_slice().as_ptr(), start);
    touch_every_page(&mut map, 0x3c);
}
