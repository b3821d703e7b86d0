//! `SharedMap`: racing-safe copies at every alignment, checked atomics, loads on read-only
//! maps, and wait/wake between threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pmap::{Error, Map, SharedMap};

fn shared(len: u64) -> (tempfile::TempDir, SharedMap) {
    let dir = tempfile::tempdir().unwrap();
    let map = pmap::Map::create(dir.path().join("shared.bin"), len)
        .unwrap()
        .into_shared();
    (dir, map)
}

/// Every offset 0..16 (so every alignment of the head) and every length 0..40 (heads, whole
/// words and tails in every combination), against a `Vec<u8>` model.
#[test]
fn read_at_and_write_at_match_a_model_at_every_alignment() {
    const LEN: usize = 64;
    let (_dir, map) = shared(4096);
    let mut model = vec![0u8; LEN];
    let mut stamp = 1u8;
    for offset in 0..16 {
        for len in 0..40 {
            let data: Vec<u8> = (0..len)
                .map(|i| stamp.wrapping_add((i as u8).wrapping_mul(31)))
                .collect();
            stamp = stamp.wrapping_add(1);
            map.write_at(offset, &data).unwrap();
            model[offset..offset + len].copy_from_slice(&data);

            // The same range back, and the whole region, through read_at.
            let mut back = vec![0xEEu8; len];
            map.read_at(offset, &mut back).unwrap();
            assert_eq!(back, data, "read_at({offset}, {len})");
            let mut all = vec![0xEEu8; LEN];
            map.read_at(0, &mut all).unwrap();
            assert_eq!(all, model, "after write_at({offset}, {len})");
            // And reads at every other alignment of the same bytes.
            for start in 0..8 {
                let mut part = vec![0xEEu8; LEN - start - 8];
                map.read_at(start, &mut part).unwrap();
                assert_eq!(
                    part,
                    model[start..LEN - 8],
                    "read_at({start}) after ({offset}, {len})"
                );
            }
        }
    }
    // Beyond the model region, nothing was touched.
    let map = map.into_map();
    assert!(map.as_slice()[LEN..].iter().all(|&b| b == 0));
    assert_eq!(&map.as_slice()[..LEN], &model[..]);
}

#[test]
fn copies_out_of_bounds_are_errors_and_write_nothing() {
    let (_dir, map) = shared(4096);
    let mut buf = [0u8; 16];
    for (offset, len) in [
        (4096, 1),
        (4081, 16),
        (4097, 0),
        (usize::MAX, 1),
        (usize::MAX - 7, 16),
    ] {
        let err = map.read_at(offset, &mut buf[..len]).unwrap_err();
        assert!(
            matches!(err, Error::OutOfBounds { offset: o, len: l, map_len: 4096 } if o == offset && l == len),
            "{err:?}"
        );
        let err = map.write_at(offset, &[0xFF; 16][..len]).unwrap_err();
        assert!(matches!(err, Error::OutOfBounds { .. }), "{err:?}");
    }
    map.read_at(4096, &mut []).unwrap();
    map.write_at(4080, &[1; 16]).unwrap();
    let mut back = [0u8; 16];
    map.read_at(4080, &mut back).unwrap();
    assert_eq!(back, [1; 16]);
    let map = map.into_map();
    assert!(map.as_slice()[..4080].iter().all(|&b| b == 0));
}

#[test]
fn typed_copies() {
    let (_dir, map) = shared(4096);
    for offset in [0, 1, 5, 8, 4088] {
        map.write(offset, &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(map.read::<u64>(offset).unwrap(), 0x1122_3344_5566_7788);
    }
    assert!(matches!(
        map.read::<u64>(4089),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.write(4089, &0u64),
        Err(Error::OutOfBounds { .. })
    ));
}

#[test]
fn atomics_are_checked() {
    let (dir, map) = shared(4096);
    let counter = map.atomic_u64(8).unwrap();
    assert_eq!(counter.fetch_add(5, Ordering::AcqRel), 0);
    assert_eq!(counter.fetch_add(5, Ordering::AcqRel), 5);
    assert_eq!(map.load_u64(8, Ordering::Acquire).unwrap(), 10);
    assert_eq!(map.read::<u64>(8).unwrap(), 10);
    map.atomic_u32(4092)
        .unwrap()
        .store(0xABCD, Ordering::Release);
    assert_eq!(map.load_u32(4092, Ordering::Acquire).unwrap(), 0xABCD);

    for offset in [1, 2, 4, 7, 12, 4084] {
        let err = map.atomic_u64(offset).unwrap_err();
        assert!(
            matches!(err, Error::Misaligned { offset: o, align: 8 } if o == offset),
            "{err:?}"
        );
        assert!(matches!(
            map.load_u64(offset, Ordering::Relaxed),
            Err(Error::Misaligned { .. })
        ));
    }
    for offset in [1, 2, 3, 6, 4089] {
        let err = map.atomic_u32(offset).unwrap_err();
        assert!(
            matches!(err, Error::Misaligned { offset: o, align: 4 } if o == offset),
            "{err:?}"
        );
        assert!(matches!(
            map.load_u32(offset, Ordering::Relaxed),
            Err(Error::Misaligned { .. })
        ));
        assert!(matches!(
            map.wait_u32(offset, 0, None),
            Err(Error::Misaligned { .. })
        ));
        assert!(matches!(
            map.wake_u32(offset),
            Err(Error::Misaligned { .. })
        ));
    }
    // Aligned but past the end, or overflowing: out of bounds, checked before alignment.
    for offset in [4096, 4104, usize::MAX - 7] {
        assert!(
            matches!(map.atomic_u64(offset), Err(Error::OutOfBounds { .. })),
            "{offset}"
        );
    }
    assert!(matches!(
        map.atomic_u64(4096),
        Err(Error::OutOfBounds { len: 8, .. })
    ));
    assert!(matches!(
        map.atomic_u32(4096),
        Err(Error::OutOfBounds { len: 4, .. })
    ));
    assert!(matches!(
        map.atomic_u32(usize::MAX - 3),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.load_u32(4096, Ordering::Relaxed),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.wait_u32(4096, 0, None),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.wake_u32(usize::MAX - 3),
        Err(Error::OutOfBounds { .. })
    ));
    map.flush().unwrap();

    // Another handle, read-only: loads work, atomics (which could store) are refused.
    let reader = Map::open_read_only(dir.path().join("shared.bin"))
        .unwrap()
        .into_shared();
    for order in [Ordering::Relaxed, Ordering::Acquire, Ordering::SeqCst] {
        assert_eq!(reader.load_u64(8, order).unwrap(), 10);
        assert_eq!(reader.load_u32(4092, order).unwrap(), 0xABCD);
    }
    let err = reader.atomic_u64(8).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReadOnlyMapping {
                op: "atomic_u64",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        reader.atomic_u32(8),
        Err(Error::ReadOnlyMapping {
            op: "atomic_u32",
            ..
        })
    ));
    let mut buf = [0u8; 8];
    reader.read_at(8, &mut buf).unwrap();
    // tidy:host-endian: the bytes of a native atomic word.
    assert_eq!(u64::from_ne_bytes(buf), 10);
    // Waiting needs only reads: a mismatched value returns at once on a read-only map too.
    reader
        .wait_u32(4092, 0, Some(Duration::from_secs(10)))
        .unwrap();
    reader.wake_u32(4092).unwrap();

    // Changes through the writer are seen by the reader at once (same pages).
    map.atomic_u64(8).unwrap().fetch_add(1, Ordering::Release);
    assert_eq!(reader.load_u64(8, Ordering::Acquire).unwrap(), 11);
}

#[test]
fn wait_returns_on_mismatch_and_on_timeout() {
    let (_dir, map) = shared(4096);
    map.atomic_u32(0).unwrap().store(7, Ordering::Release);

    // A value that differs already: back at once (well before the long timeout).
    let start = Instant::now();
    map.wait_u32(0, 8, Some(Duration::from_secs(30))).unwrap();
    // Even with a timeout no clock can represent (no panic, no overflowed timespec).
    map.wait_u32(0, 8, Some(Duration::MAX)).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        start.elapsed()
    );

    // The value matches and nobody wakes: the timeout ends the wait (perhaps early: the
    // caller re-checks, so loop until the time has passed).
    let timeout = Duration::from_millis(30);
    let start = Instant::now();
    while start.elapsed() < timeout {
        map.wait_u32(0, 7, Some(timeout)).unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(map.load_u32(0, Ordering::Acquire).unwrap(), 7);

    // A zero timeout returns.
    map.wait_u32(0, 7, Some(Duration::ZERO)).unwrap();
}

#[test]
fn wait_wakes_when_another_thread_changes_the_word() {
    let (_dir, map) = shared(4096);
    let map = Arc::new(map);
    const WORD: usize = 64;
    const READY: usize = 128;
    // Long enough that a missed wake fails the elapsed-time assertion instead of passing.
    const TIMEOUT: Duration = Duration::from_secs(20);

    let waiter = {
        let map = Arc::clone(&map);
        std::thread::spawn(move || {
            let start = Instant::now();
            map.atomic_u32(READY).unwrap().store(1, Ordering::Release);
            map.wake_u32(READY).unwrap();
            while map.load_u32(WORD, Ordering::Acquire).unwrap() == 0 {
                map.wait_u32(WORD, 0, Some(TIMEOUT)).unwrap();
                assert!(start.elapsed() < TIMEOUT, "the wake was missed");
            }
            start.elapsed()
        })
    };
    // Wait (with the same primitive) until the waiter is about to block.
    let deadline = Instant::now() + TIMEOUT;
    while map.load_u32(READY, Ordering::Acquire).unwrap() == 0 {
        map.wait_u32(READY, 0, Some(Duration::from_millis(100)))
            .unwrap();
        assert!(Instant::now() < deadline, "the waiter never started");
    }
    map.atomic_u32(WORD).unwrap().store(1, Ordering::Release);
    map.wake_u32(WORD).unwrap();
    let waited = waiter.join().unwrap();
    assert!(waited < TIMEOUT, "waited {waited:?}");
}

/// Words written whole by one thread are never seen torn by a reader in another: the copies
/// move aligned words with single atomic accesses.
#[test]
fn concurrent_copies_never_tear_aligned_words() {
    const WORDS: usize = 64;
    let rounds = pounds_testkit::stress_rounds(2000, 1) as usize;
    let (_dir, map) = shared(4096);
    let map = Arc::new(map);
    let writer = {
        let map = Arc::clone(&map);
        std::thread::spawn(move || {
            for round in 0..rounds {
                let byte = (round % 251) as u8 + 1;
                map.write_at(0, &[byte; WORDS * 8]).unwrap();
            }
        })
    };
    let mut buf = [0u8; WORDS * 8];
    let mut seen_nonzero = false;
    while !writer.is_finished() {
        map.read_at(0, &mut buf).unwrap();
        for word in buf.chunks_exact(8) {
            assert!(word.iter().all(|&b| b == word[0]), "torn word {word:?}");
            seen_nonzero |= word[0] != 0;
        }
    }
    writer.join().unwrap();
    map.read_at(0, &mut buf).unwrap();
    assert!(seen_nonzero || buf[0] != 0);
    assert!(buf.iter().all(|&b| b == ((rounds - 1) % 251) as u8 + 1));
}

#[test]
fn populate_for_write_faults_pages_in_and_changes_no_byte() {
    let (dir, map) = shared(64 * 4096);
    map.write_at(4096 * 3 + 5, b"kept").unwrap();
    // Linux 5.14 and later (this machine and CI) do it; elsewhere it is a no-op.
    let done = map.populate_for_write(0, map.len()).unwrap();
    assert_eq!(done, cfg!(target_os = "linux"));
    let mut back = [0u8; 4];
    map.read_at(4096 * 3 + 5, &mut back).unwrap();
    assert_eq!(&back, b"kept");
    let mut zeros = vec![1u8; 4096];
    map.read_at(4096 * 10, &mut zeros).unwrap();
    assert!(zeros.iter().all(|&b| b == 0), "no byte written");
    assert!(matches!(
        map.populate_for_write(map.len() - 10, 11),
        Err(Error::OutOfBounds { .. })
    ));
    let ro = Map::open_read_only(dir.path().join("shared.bin"))
        .unwrap()
        .into_shared();
    assert!(matches!(
        ro.populate_for_write(0, 4096),
        Err(Error::ReadOnlyMapping { .. })
    ));
}

/// `file_len` is the file's length now, not the view's: another handle's truncation and growth
/// show at once, while `len` stays the view's (whose pages past the new end would raise
/// `SIGBUS`: the test touches none of them).
#[test]
fn file_len_sees_another_handle_truncate_and_grow_the_file() {
    let (dir, map) = shared(8192);
    let other = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("shared.bin"))
        .unwrap();
    assert_eq!((map.len(), map.file_len().unwrap()), (8192, 8192));
    other.set_len(100).unwrap();
    assert_eq!((map.len(), map.file_len().unwrap()), (8192, 100));
    other.set_len(20_000).unwrap();
    assert_eq!((map.len(), map.file_len().unwrap()), (8192, 20_000));
    let anonymous = Map::anonymous(4096).unwrap().into_shared();
    assert_eq!(anonymous.file_len().unwrap(), 4096);
}

/// A span is checked once against the map (bounds, writability, alignment, at least a word),
/// and then only against its own length: every offset and length around its ends, against a
/// `Vec<u8>` model of the whole map, and its words are the map's words.
#[test]
fn spans_are_checked_once_and_write_only_inside() {
    let (_dir, map) = shared(4096);
    assert!(matches!(
        map.span(4096 - 56, 64),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        map.span(usize::MAX - 3, 8),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(map.span(4, 64), Err(Error::Misaligned { .. })));
    assert!(matches!(map.span(4092, 0), Err(Error::OutOfBounds { .. })));
    assert_eq!(
        map.span(4088, 0).unwrap().len(),
        8,
        "a span holds its first word"
    );
    let base = 256;
    let span = map.span(base, 64).unwrap();
    assert_eq!(span.len(), 64);
    let mut model = vec![0u8; 4096];
    let mut stamp = 1u8;
    for offset in [0, 1, 7, 8, 9, 31, 56, 57, 63, 64, 65, usize::MAX] {
        for len in [0, 1, 7, 8, 9, 40, 56, 63, 64] {
            let data: Vec<u8> = (0..len).map(|i| stamp.wrapping_add(i as u8)).collect();
            stamp = stamp.wrapping_add(17);
            let fits = offset.checked_add(len).is_some_and(|end| end <= 64);
            assert_eq!(span.write_at(offset, &data), fits, "{offset} {len}");
            if fits {
                model[base + offset..base + offset + len].copy_from_slice(&data);
            }
            let mut back = vec![0u8; 4096];
            map.read_at(0, &mut back).unwrap();
            assert!(
                back == model,
                "{offset} {len}: a byte outside the write changed"
            );
        }
    }
    span.first_u64()
        .store(0x0102_0304_0506_0708, Ordering::Release);
    assert_eq!(
        map.load_u64(base, Ordering::Acquire).unwrap(),
        0x0102_0304_0506_0708
    );
    span.atomic_u64(56).unwrap().store(9, Ordering::Relaxed);
    assert_eq!(map.load_u64(base + 56, Ordering::Acquire).unwrap(), 9);
    span.atomic_u32(60).unwrap().store(5, Ordering::Relaxed);
    assert_eq!(map.load_u32(base + 60, Ordering::Acquire).unwrap(), 5);
    assert!(span.atomic_u64(60).is_none(), "misaligned");
    assert!(span.atomic_u64(64).is_none(), "past the end");
    assert!(span.atomic_u64(usize::MAX - 7).is_none(), "overflow");
    assert!(span.atomic_u32(62).is_none(), "misaligned");
    assert!(span.atomic_u32(64).is_none(), "past the end");
}

#[test]
fn spans_need_a_writable_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.bin");
    drop(pmap::Map::create(&path, 4096).unwrap());
    let map = Map::open_read_only(&path).unwrap().into_shared();
    assert!(matches!(
        map.span(0, 64),
        Err(Error::ReadOnlyMapping { .. })
    ));
}

/// A positioned write goes through the file: the map, and a second, read-only map of the file,
/// show its bytes at once; it never grows the file, and a read-only map refuses it.
#[test]
fn write_file_at_is_seen_through_every_map_and_stays_inside_the_view() {
    let (dir, map) = shared(8192);
    let path = dir.path().join("shared.bin");
    let reader = pmap::MapOptions::new()
        .read_only()
        .open(&path)
        .unwrap()
        .into_shared();
    map.write_file_at(4093, b"across a page").unwrap();
    let mut back = [0u8; 13];
    map.read_at(4093, &mut back).unwrap();
    assert_eq!(&back, b"across a page");
    let mut back = [0u8; 13];
    reader.read_at(4093, &mut back).unwrap();
    assert_eq!(&back, b"across a page");
    assert_eq!(
        reader.load_u64(4096, Ordering::Acquire).unwrap(),
        u64::from_le_bytes(*b"oss a pa")
    );
    assert!(matches!(
        map.write_file_at(8190, b"past"),
        Err(Error::OutOfBounds { .. })
    ));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
    assert!(matches!(
        reader.write_file_at(0, b"x"),
        Err(Error::ReadOnlyMapping { .. })
    ));
}
