//! Advice and residency: every `Advice` on file maps changes no byte, `DontNeed` keeps a file
//! mapping's data and is refused on anonymous memory, ranges are checked, and `mlock`/`munlock`
//! of a range.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pmap::{Advice, Error, Map, MapOptions};

const LEN: usize = 3 * 4096 + 100;

fn pattern() -> Vec<u8> {
    (0..LEN).map(|i| (i * 7 + 3) as u8).collect()
}

fn filled() -> (tempfile::TempDir, Map) {
    let dir = tempfile::tempdir().unwrap();
    let mut map = pmap::Map::create(dir.path().join("advice.bin"), LEN as u64).unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(&pattern());
    (dir, map)
}

#[test]
fn every_advice_on_a_file_map_returns_and_changes_no_byte() {
    let (_dir, map) = filled();
    for advice in Advice::ALL {
        // The whole view, an unaligned middle range and the last byte.
        for (offset, len) in [(0, LEN), (5, 4096 + 17), (LEN - 1, 1)] {
            map.advise(offset, len, advice)
                .unwrap_or_else(|e| panic!("{advice:?} at {offset}+{len}: {e}"));
            assert!(map.as_slice() == pattern(), "{advice:?} changed a byte");
        }
    }
    let shared = map.into_shared();
    for advice in Advice::ALL {
        shared.advise(0, LEN, advice).unwrap();
    }
    let mut back = vec![0; LEN];
    shared.read_at(0, &mut back).unwrap();
    assert_eq!(back, pattern());
}

#[cfg(target_os = "linux")]
#[test]
fn the_portable_advices_are_taken_on_linux() {
    let (_dir, map) = filled();
    for advice in [
        Advice::Normal,
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::DontNeed,
    ] {
        assert!(map.advise(0, LEN, advice).unwrap(), "{advice:?}");
    }
    // An empty range is in bounds and does nothing.
    assert!(!map.advise(LEN, 0, Advice::WillNeed).unwrap());
}

#[cfg(target_os = "linux")]
#[test]
fn dont_need_on_a_file_mapping_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dontneed.bin");
    let mut map = pmap::Map::create(&path, LEN as u64).unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(&pattern());
    // Dirty, unflushed pages: dropping them from the page tables must not lose them.
    assert!(map.advise(0, LEN, Advice::DontNeed).unwrap());
    assert!(map.as_slice() == pattern());
    map.write(4096 + 1, &0xABu8).unwrap();
    assert!(map.advise(4096, 10, Advice::DontNeed).unwrap());
    assert_eq!(map.read::<u8>(4096 + 1).unwrap(), 0xAB);
    // Another handle (and the file itself) sees the same bytes.
    let mut expected = pattern();
    expected[4096 + 1] = 0xAB;
    drop(map);
    assert_eq!(std::fs::read(&path).unwrap(), expected);
}

#[test]
fn dont_need_is_refused_on_anonymous_memory_and_changes_nothing() {
    let mut map = Map::anonymous(LEN).unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(&pattern());
    assert!(matches!(
        map.advise(0, LEN, Advice::DontNeed),
        Err(Error::Unsupported { .. })
    ));
    assert!(map.as_slice() == pattern());
    // The other advices are fine there (huge pages are for anonymous memory).
    for advice in Advice::ALL.into_iter().filter(|a| *a != Advice::DontNeed) {
        map.advise(0, LEN, advice).unwrap();
    }
    assert!(map.as_slice() == pattern());
}

#[test]
fn out_of_bounds_advice_is_an_error() {
    let (_dir, map) = filled();
    for advice in Advice::ALL {
        for (offset, len) in [(0, LEN + 1), (LEN, 1), (LEN + 1, 0), (1, usize::MAX)] {
            assert!(
                matches!(
                    map.advise(offset, len, advice),
                    Err(Error::OutOfBounds { .. })
                ),
                "{advice:?} at {offset}+{len}"
            );
        }
    }
    let shared = map.into_shared();
    assert!(matches!(
        shared.advise(usize::MAX, 2, Advice::Normal),
        Err(Error::OutOfBounds { .. })
    ));
}

#[test]
fn read_only_maps_accept_the_read_advices() {
    let (dir, map) = filled();
    map.flush().unwrap();
    drop(map);
    let ro = MapOptions::new()
        .read_only()
        .open(dir.path().join("advice.bin"))
        .unwrap();
    for advice in [
        Advice::Normal,
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::DontNeed,
    ] {
        ro.advise(0, LEN, advice).unwrap();
        assert!(ro.as_slice() == pattern(), "{advice:?}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn lock_and_unlock_a_small_range() {
    let (_dir, map) = filled();
    // CI runs as root; elsewhere RLIMIT_MEMLOCK (8 MiB by default) allows a page or two.
    map.lock_in_memory(10, 100).unwrap();
    map.unlock_in_memory(10, 100).unwrap();
    assert!(map.as_slice() == pattern());
    let shared = map.into_shared();
    shared.lock_in_memory(0, 4096).unwrap();
    shared.unlock_in_memory(0, 4096).unwrap();
    // Unlocking what was never locked is fine, and an empty range does nothing.
    shared.unlock_in_memory(4096, 4096).unwrap();
    shared.lock_in_memory(LEN, 0).unwrap();
}

#[test]
fn locking_an_out_of_bounds_range_is_an_error() {
    let (_dir, map) = filled();
    for (offset, len) in [(0, LEN + 1), (LEN, 1), (usize::MAX, 1)] {
        assert!(matches!(
            map.lock_in_memory(offset, len),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            map.unlock_in_memory(offset, len),
            Err(Error::OutOfBounds { .. })
        ));
    }
}
