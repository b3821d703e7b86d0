//! A view larger than the file: with `MapOptions::reserve_address_space`, growth and refresh
//! inside the reservation map the new bytes behind the old ones, so the view keeps its
//! address; past it, growth falls back to unmapping and mapping again. The bytes are the
//! file's throughout, and flush, advice and memory locks work on such a view.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pmap::{Advice, MapOptions};

const MIB: usize = 1 << 20;

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + seed) % 251) as u8).collect()
}

#[test]
fn growth_within_the_reservation_keeps_the_view_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.bin");
    let mut map = MapOptions::new()
        .size(4096)
        .reserve_address_space(4 * MIB)
        .open(&path)
        .unwrap();
    assert_eq!(map.len(), 4096);
    assert!(map.reserved_len() >= 4 * MIB, "{}", map.reserved_len());
    let start = map.as_slice().as_ptr();
    map.as_mut_slice()
        .unwrap()
        .copy_from_slice(&pattern(4096, 1));

    // Unaligned and page-aligned sizes, by growth and by doubling.
    for len in [5000, 64 << 10, MIB + 3, 4 * MIB] {
        map.grow(len).unwrap();
        assert_eq!(map.len(), len);
        assert_eq!(
            map.as_slice().as_ptr(),
            start,
            "growth to {len} moved the view"
        );
        assert_eq!(&map.as_slice()[..4096], &pattern(4096, 1)[..]);
    }
    assert!(
        map.as_slice()[4096..].iter().all(|&b| b == 0),
        "new bytes read zero"
    );
    let tail = pattern(4 * MIB - 4096, 2);
    map.as_mut_slice().unwrap()[4096..].copy_from_slice(&tail);
    map.flush().unwrap();
    drop(map);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 4 * MIB);
    assert_eq!(
        (&bytes[..4096], &bytes[4096..]),
        (&pattern(4096, 1)[..], &tail[..])
    );
}

#[test]
fn growth_past_the_reservation_falls_back_to_a_remap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("past.bin");
    let mut map = MapOptions::new()
        .size(8192)
        .reserve_address_space(64 << 10)
        .open(&path)
        .unwrap();
    map.as_mut_slice()
        .unwrap()
        .copy_from_slice(&pattern(8192, 3));
    map.reserve(64 << 10).unwrap();
    let inside = map.as_slice().as_ptr();
    map.grow(3 * MIB).unwrap();
    assert_eq!(map.len(), 3 * MIB);
    assert_eq!(&map.as_slice()[..8192], &pattern(8192, 3)[..]);
    assert!(map.reserved_len() >= 3 * MIB);
    // The new view is a reservation again (of at least its length): the next growth that
    // fits stays in place.
    let moved = map.as_slice().as_ptr();
    map.grow(map.reserved_len()).unwrap();
    assert_eq!(map.as_slice().as_ptr(), moved);
    let _ = inside;
}

#[test]
fn refresh_after_another_handle_grew_the_file_maps_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("follow.bin");
    let mut writer = pmap::Map::create(&path, 4096).unwrap();
    writer
        .as_mut_slice()
        .unwrap()
        .copy_from_slice(&pattern(4096, 4));
    // A read-only follower, as a log reader is, with room to follow the file in place.
    let mut reader = MapOptions::new()
        .read_only()
        .reserve_address_space(MIB)
        .open(&path)
        .unwrap();
    let start = reader.as_slice().as_ptr();
    writer.grow(300_000).unwrap();
    writer.as_mut_slice().unwrap()[4096..].copy_from_slice(&pattern(300_000 - 4096, 5));
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 300_000);
    assert_eq!(reader.as_slice().as_ptr(), start);
    assert_eq!(&reader.as_slice()[4096..], &pattern(300_000 - 4096, 5)[..]);
    assert!(!reader.refresh().unwrap());
}

#[test]
fn a_view_at_an_unaligned_offset_grows_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offset.bin");
    std::fs::write(&path, pattern(10_000, 6)).unwrap();
    let mut map = MapOptions::new()
        .offset(4099)
        .reserve_address_space(MIB)
        .open(&path)
        .unwrap();
    assert_eq!(map.as_slice(), &pattern(10_000, 6)[4099..]);
    let start = map.as_slice().as_ptr();
    map.grow(200_000).unwrap();
    assert_eq!(map.as_slice().as_ptr(), start);
    map.slice_mut(199_990, 10)
        .unwrap()
        .copy_from_slice(b"at the end");
    map.flush_range(199_990, 10).unwrap();
    drop(map);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 4099 + 200_000);
    assert_eq!(&bytes[..10_000], &pattern(10_000, 6)[..]);
    assert_eq!(&bytes[4099 + 199_990..], b"at the end");
}

#[test]
fn flush_advice_locks_and_conversion_work_on_a_reserved_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.bin");
    let mut map = MapOptions::new()
        .size(3 * 4096 + 100)
        .offset(10)
        .reserve_address_space(MIB)
        .open(&path)
        .unwrap();
    let len = map.len();
    map.as_mut_slice()
        .unwrap()
        .copy_from_slice(&pattern(len, 7));
    for advice in Advice::ALL {
        map.advise(5, len - 5, advice).unwrap();
        assert_eq!(map.as_slice(), &pattern(len, 7)[..], "{advice:?}");
    }
    map.flush().unwrap();
    map.flush_async().unwrap();
    map.flush_range(1, 4096).unwrap();
    map.lock_in_memory(3, 5000).unwrap();
    map.unlock_in_memory(3, 5000).unwrap();
    map.make_read_only().unwrap();
    assert!(map.reserved_len() >= MIB);
    map.make_writable().unwrap();
    map.grow(len + 4096).unwrap();
    assert_eq!(&map.as_slice()[..len], &pattern(len, 7)[..]);
    assert_eq!(map.finish(len as u64).unwrap(), len as u64);
    assert_eq!(std::fs::read(&path).unwrap().len(), 10 + len);
}

#[test]
fn without_a_reservation_the_reserved_len_is_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let map = pmap::Map::create(dir.path().join("plain.bin"), 5000).unwrap();
    assert_eq!(map.reserved_len(), 5000);
    // A reservation smaller than the view is the view.
    let small = MapOptions::new()
        .reserve_address_space(10)
        .open(dir.path().join("plain.bin"))
        .unwrap();
    assert!(small.reserved_len() >= 5000);
}

/// The `Locked:` kilobytes of the mapping that holds `address`, from `/proc/self/smaps` (only
/// this mapping's, so other tests' locks running meanwhile do not count).
#[cfg(target_os = "linux")]
fn locked_kib_at(address: usize) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                inside = (start..end).contains(&address);
                continue;
            }
        }
        if inside {
            if let Some(kib) = line.strip_prefix("Locked:") {
                return kib.trim().trim_end_matches("kB").trim().parse().unwrap();
            }
        }
    }
    panic!("no mapping holds {address:#x}");
}

/// Growth in place leaves the old pages mapped: pages locked in memory stay locked, which a
/// remap (a fresh mapping, even at the same address) does not keep.
#[cfg(target_os = "linux")]
#[test]
fn growth_in_place_keeps_the_old_pages_mapped_and_locked() {
    let dir = tempfile::tempdir().unwrap();
    let mut map = MapOptions::new()
        .size(16 << 10)
        .reserve_address_space(MIB)
        .open(dir.path().join("locked.bin"))
        .unwrap();
    map.lock_in_memory(0, 16 << 10).unwrap();
    let start = map.as_slice().as_ptr() as usize;
    assert_eq!(locked_kib_at(start), 16);
    map.grow(256 << 10).unwrap();
    assert_eq!(map.as_slice().as_ptr() as usize, start);
    assert_eq!(locked_kib_at(start), 16, "the old pages were mapped anew");

    // The same without a reservation: the remapped view is not locked any more.
    let mut plain = MapOptions::new()
        .size(16 << 10)
        .open(dir.path().join("plain.bin"))
        .unwrap();
    plain.lock_in_memory(0, 16 << 10).unwrap();
    plain.grow(256 << 10).unwrap();
    assert_eq!(locked_kib_at(plain.as_slice().as_ptr() as usize), 0);
}
