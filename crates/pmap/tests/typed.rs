//! Typed access through `Map`: read, write, view, view_mut and slices, every offset checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pmap::{Error, Map, MapOptions};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Header {
    magic: u32,
    version: u32,
    count: u64,
}

fn map(len: usize) -> (tempfile::TempDir, Map) {
    let dir = tempfile::tempdir().unwrap();
    let map = pmap::Map::create(dir.path().join("typed.bin"), len as u64).unwrap();
    (dir, map)
}

#[test]
fn read_and_write_at_any_alignment() {
    let (_dir, mut map) = map(4096);
    let header = Header {
        magic: 0xFEED_F00D,
        version: 3,
        count: u64::MAX - 1,
    };
    for offset in [0, 1, 3, 7, 8, 13, 4096 - 16] {
        map.write(offset, &header).unwrap();
        assert_eq!(map.read::<Header>(offset).unwrap(), header);
        assert_eq!(map.read::<u32>(offset).unwrap(), 0xFEED_F00D);
        assert_eq!(
            &map.as_slice()[offset..offset + 4],
            // tidy:host-endian: a typed write stores the bytes in memory order.
            &0xFEED_F00Du32.to_ne_bytes()
        );
    }
    map.write(4095, &0x5Au8).unwrap();
    assert_eq!(map.read::<u8>(4095).unwrap(), 0x5A);
    // Zero-sized reads at the very end are in bounds.
    map.read::<()>(4096).unwrap();
}

#[test]
fn views_borrow_in_place() {
    let (_dir, mut map) = map(4096);
    let header = Header {
        magic: 1,
        version: 2,
        count: 3,
    };
    map.write(64, &header).unwrap();
    assert_eq!(*map.view::<Header>(64).unwrap(), header);
    map.view_mut::<Header>(64).unwrap().count = 99;
    assert_eq!(map.read::<u64>(72).unwrap(), 99);
    *map.view_mut::<u64>(4088).unwrap() = 7;
    // tidy:host-endian: a typed view writes the bytes in memory order.
    assert_eq!(map.as_slice()[4088..], 7u64.to_ne_bytes());
}

#[test]
fn misaligned_views_are_errors() {
    let (_dir, mut map) = map(4096);
    for offset in [1, 2, 4, 7, 9, 4076] {
        let err = map.view::<u64>(offset).unwrap_err();
        match err {
            Error::Misaligned {
                offset: o,
                align: 8,
            } => assert_eq!(o, offset),
            other => panic!("view at {offset}: {other:?}"),
        }
        assert!(matches!(
            map.view_mut::<Header>(offset),
            Err(Error::Misaligned { align: 8, .. })
        ));
    }
    assert!(matches!(
        map.view::<u32>(2),
        Err(Error::Misaligned {
            offset: 2,
            align: 4
        })
    ));
    map.view::<u32>(4).unwrap();
    let text = map.view::<u64>(12).unwrap_err().to_string();
    assert!(text.contains("12") && text.contains('8'), "{text}");
}

#[test]
fn alignment_is_of_the_address_not_the_offset() {
    // A view starting 3 bytes into the file: view offset 5 is file offset 8, page offset 8.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shifted.bin");
    std::fs::write(&path, (0..64u8).collect::<Vec<_>>()).unwrap();
    let map = MapOptions::new().offset(3).open(&path).unwrap();
    assert_eq!(
        *map.view::<u64>(5).unwrap(),
        // tidy:host-endian: a typed view sees the bytes in memory order.
        u64::from_ne_bytes([8, 9, 10, 11, 12, 13, 14, 15])
    );
    assert!(matches!(
        map.view::<u64>(0),
        Err(Error::Misaligned {
            offset: 0,
            align: 8
        })
    ));
    assert!(matches!(map.view::<u64>(8), Err(Error::Misaligned { .. })));
    // Reads take any alignment.
    assert_eq!(map.read::<u8>(0).unwrap(), 3);
}

#[test]
fn out_of_bounds_accesses_are_errors() {
    let (_dir, mut map) = map(4096);
    let cases: [(usize, usize); 6] = [
        (4096, 1),
        (4089, 8),
        (4097, 0),
        (usize::MAX, 1),
        (usize::MAX - 3, 8),
        (usize::MAX - 7, 8),
    ];
    for (offset, len) in cases {
        let expect = |err: Error| match err {
            Error::OutOfBounds {
                offset: o,
                len: l,
                map_len: 4096,
            } => {
                assert_eq!((o, l), (offset, len), "reported numbers");
            }
            other => panic!("({offset}, {len}): {other:?}"),
        };
        expect(map.slice(offset, len).unwrap_err());
        expect(map.slice_mut(offset, len).unwrap_err());
        if len == 8 {
            expect(map.read::<u64>(offset).unwrap_err());
            expect(map.write(offset, &0u64).unwrap_err());
            if offset % 8 == 0 {
                expect(map.view::<u64>(offset).unwrap_err());
                expect(map.view_mut::<u64>(offset).unwrap_err());
            }
        }
    }
    // `usize::MAX - 7` is 8-aligned: the bounds check runs before the alignment check.
    assert!(matches!(
        map.view::<u64>(usize::MAX - 7),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.view::<Header>(4088),
        Err(Error::OutOfBounds { .. })
    ));
    let text = map.slice(4000, 200).unwrap_err().to_string();
    assert!(
        text.contains("4000") && text.contains("200") && text.contains("4096"),
        "{text}"
    );
    // Nothing was written by the failed calls.
    assert!(map.as_slice().iter().all(|&b| b == 0));
    // Slices at the exact edge are fine.
    assert_eq!(map.slice(4096, 0).unwrap(), &[] as &[u8]);
    assert_eq!(map.slice(0, 4096).unwrap().len(), 4096);
}

#[test]
fn shared_and_back_keeps_bytes() {
    let (_dir, mut map) = map(4096);
    map.write(0, &42u64).unwrap();
    let shared = map.into_shared();
    assert_eq!(shared.read::<u64>(0).unwrap(), 42);
    shared.write(8, &7u32).unwrap();
    let map = shared.into_map();
    assert_eq!(map.read::<u32>(8).unwrap(), 7);
}
