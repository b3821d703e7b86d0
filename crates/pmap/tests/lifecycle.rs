//! Growth, reserve, refresh, flush, finish, close, anonymous mappings and advisory locks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use pmap::{Error, Lock, Map, MapOptions};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + 5) as u8).collect()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn grow_keeps_contents_and_zero_fills() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.bin");
    let mut map = pmap::Map::create(&path, 4096).unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(&pattern(4096));
    map.grow(3 * 4096 + 17).unwrap();
    assert_eq!(map.len(), 3 * 4096 + 17);
    assert_eq!(file_len(&path), 3 * 4096 + 17);
    assert_eq!(&map.as_slice()[..4096], &pattern(4096)[..]);
    assert!(map.as_slice()[4096..].iter().all(|&b| b == 0));
    // The new bytes are writable and reach the file.
    map.as_mut_slice().unwrap()[3 * 4096 + 16] = 0xAB;
    // Growing to a smaller size does nothing.
    map.grow(10).unwrap();
    assert_eq!(map.len(), 3 * 4096 + 17);
    map.close().unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 3 * 4096 + 17);
    assert_eq!(bytes[3 * 4096 + 16], 0xAB);
    assert_eq!(&bytes[..4096], &pattern(4096)[..]);
}

#[test]
fn grow_at_an_offset_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow-offset.bin");
    fs::write(&path, pattern(5000)).unwrap();
    let mut map = MapOptions::new().offset(4097).open(&path).unwrap();
    assert_eq!(map.len(), 903);
    map.grow(2000).unwrap();
    assert_eq!(map.len(), 2000);
    assert_eq!(file_len(&path), 4097 + 2000);
    assert_eq!(&map.as_slice()[..903], &pattern(5000)[4097..]);
    assert!(map.as_slice()[903..].iter().all(|&b| b == 0));
}

#[test]
fn reserve_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reserve.bin");
    let mut map = pmap::Map::create(&path, 4096).unwrap();
    map.as_mut_slice().unwrap()[..4].copy_from_slice(b"head");
    let mut sizes = vec![map.len()];
    // Appending one byte at a time: each growth at least doubles, so 64 KiB takes 4 remaps.
    for need in 4097..=65_536 {
        map.reserve(need).unwrap();
        if *sizes.last().unwrap() != map.len() {
            sizes.push(map.len());
        }
        assert!(map.len() >= need);
    }
    assert_eq!(sizes, [4096, 8192, 16_384, 32_768, 65_536]);
    // A request beyond double is taken as asked.
    map.reserve(500_000).unwrap();
    assert_eq!(map.len(), 500_000);
    // A request already satisfied does nothing.
    map.reserve(10).unwrap();
    assert_eq!(map.len(), 500_000);
    assert_eq!(&map.as_slice()[..4], b"head");
    assert_eq!(file_len(&path), 500_000);
}

#[test]
fn refresh_follows_a_file_grown_by_another_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refresh.bin");
    let mut reader = pmap::Map::create(&path, 4096).unwrap();
    let mut ro = Map::open_read_only(&path).unwrap();
    let mut at_offset = MapOptions::new()
        .read_only()
        .offset(1000)
        .open(&path)
        .unwrap();
    assert!(!reader.refresh().unwrap(), "nothing changed yet");

    let mut writer = pmap::Map::open(&path).unwrap();
    writer.grow(3 * 4096).unwrap();
    writer
        .slice_mut(3 * 4096 - 5, 5)
        .unwrap()
        .copy_from_slice(b"tail!");
    writer.flush().unwrap();

    assert_eq!(reader.len(), 4096);
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.len(), 3 * 4096);
    assert_eq!(&reader.as_slice()[3 * 4096 - 5..], b"tail!");
    assert!(
        !reader.refresh().unwrap(),
        "a second refresh has nothing to do"
    );

    assert!(ro.refresh().unwrap());
    assert_eq!(&ro.as_slice()[3 * 4096 - 5..], b"tail!");
    assert!(at_offset.refresh().unwrap());
    assert_eq!(at_offset.len(), 3 * 4096 - 1000);
    assert_eq!(&at_offset.as_slice()[3 * 4096 - 1005..], b"tail!");

    // Plain file writes (not through a mapping) grow it too.
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, b"appended").unwrap();
    assert!(reader.refresh().unwrap());
    assert_eq!(&reader.as_slice()[3 * 4096..], b"appended");
}

#[test]
fn refresh_reports_a_file_shrunk_below_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrunk.bin");
    fs::write(&path, pattern(8192)).unwrap();
    let mut map = MapOptions::new()
        .read_only()
        .offset(5000)
        .open(&path)
        .unwrap();
    // Shrinking a mapped file is what pounds never does; here the view is dropped at once,
    // before anything reads the lost pages.
    let shrunk = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100);
    if cfg!(windows) {
        // Windows refuses to cut a file under a mapped view (docs/pmap.md): nothing changed.
        assert!(shrunk.is_err());
        assert!(!map.refresh().unwrap());
        assert_eq!(map.as_slice(), &pattern(8192)[5000..]);
        return;
    }
    shrunk.unwrap();
    let err = map.refresh().unwrap_err();
    assert!(
        matches!(
            err,
            Error::ViewPastEnd {
                offset: 5000,
                file_len: 100,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(map.is_empty());
    assert_eq!(map.as_slice(), &[] as &[u8]);
    assert!(matches!(
        map.read::<u8>(0),
        Err(Error::OutOfBounds { map_len: 0, .. })
    ));
}

#[test]
fn flush_all_range_and_async() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flush.bin");
    let mut map = pmap::Map::create(&path, 3 * 4096).unwrap();
    map.slice_mut(5000, 3).unwrap().copy_from_slice(b"abc");
    map.flush().unwrap();
    map.flush_async().unwrap();
    for (offset, len) in [
        (0, 0),
        (0, 1),
        (5000, 3),
        (4095, 2),
        (1, 3 * 4096 - 1),
        (3 * 4096, 0),
    ] {
        map.flush_range(offset, len).unwrap();
    }
    assert_eq!(&fs::read(&path).unwrap()[5000..5003], b"abc");

    for (offset, len) in [
        (0, 3 * 4096 + 1),
        (3 * 4096, 1),
        (3 * 4096 + 1, 0),
        (usize::MAX, 2),
    ] {
        let err = map.flush_range(offset, len).unwrap_err();
        match err {
            Error::OutOfBounds {
                offset: o,
                len: l,
                map_len: 12_288,
            } => {
                assert_eq!((o, l), (offset, len));
            }
            other => panic!("flush_range({offset}, {len}): {other:?}"),
        }
    }
    let text = map.flush_range(12_000, 1000).unwrap_err().to_string();
    assert!(
        text.contains("12000") && text.contains("1000") && text.contains("12288"),
        "{text}"
    );

    // At a view whose start is not page-aligned.
    let mut view = MapOptions::new()
        .offset(4099)
        .len(5000)
        .open(&path)
        .unwrap();
    view.slice_mut(10, 2).unwrap().copy_from_slice(b"zz");
    view.flush_range(10, 2).unwrap();
    view.flush_range(4000, 1000).unwrap();
    assert_eq!(&fs::read(&path).unwrap()[4109..4111], b"zz");
}

#[test]
fn finish_trims_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("finish.bin");
    let mut map = pmap::Map::create(&path, 4096).unwrap();
    map.reserve(10_000).unwrap();
    map.slice_mut(0, 11)
        .unwrap()
        .copy_from_slice(b"hello world");
    assert_eq!(map.finish(11).unwrap(), 11);
    assert_eq!(fs::read(&path).unwrap(), b"hello world");

    // Finishing an offset view trims to offset + used.
    let mut map = MapOptions::new().offset(6).size(100).open(&path).unwrap();
    map.slice_mut(0, 3).unwrap().copy_from_slice(b"moo");
    assert_eq!(map.finish(3).unwrap(), 3);
    assert_eq!(fs::read(&path).unwrap(), b"hello moo");

    // More than the view is refused and the file is left as it was.
    let map = pmap::Map::open(&path).unwrap();
    let err = map.finish(10).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                len: 10,
                map_len: 9,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), b"hello moo");

    // Finishing with everything used keeps everything.
    let map = pmap::Map::open(&path).unwrap();
    assert_eq!(map.finish(9).unwrap(), 9);
    assert_eq!(fs::read(&path).unwrap(), b"hello moo");
}

#[test]
fn finish_on_a_read_only_map_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("finish-ro.bin");
    fs::write(&path, pattern(100)).unwrap();
    let map = Map::open_read_only(&path).unwrap();
    let err = map.finish(10).unwrap_err();
    assert!(
        matches!(err, Error::ReadOnlyMapping { op: "finish", .. }),
        "{err:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), pattern(100));
}

#[test]
fn close_reports_success_and_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.bin");
    let map = MapOptions::new()
        .size(4096)
        .lock(Lock::Exclusive)
        .open(&path)
        .unwrap();
    assert!(matches!(
        MapOptions::new().try_lock(Lock::Shared).open(&path),
        Err(Error::LockContended { .. })
    ));
    map.close().unwrap();
    MapOptions::new()
        .try_lock(Lock::Exclusive)
        .open(&path)
        .unwrap()
        .close()
        .unwrap();
    // Dropping releases too.
    drop(MapOptions::new().lock(Lock::Exclusive).open(&path).unwrap());
    MapOptions::new()
        .try_lock(Lock::Exclusive)
        .open(&path)
        .unwrap();
}

#[test]
fn anonymous_mappings() {
    let mut map = Map::anonymous(10_000).unwrap();
    assert!(map.is_anonymous());
    assert!(map.is_writable());
    assert_eq!(map.path(), Path::new("<anonymous>"));
    assert_eq!(map.len(), 10_000);
    assert!(map.as_slice().iter().all(|&b| b == 0));
    map.as_mut_slice()
        .unwrap()
        .copy_from_slice(&pattern(10_000));
    map.write(9992, &0x0102_0304_0506_0708u64).unwrap();

    map.grow(50_000).unwrap();
    assert_eq!(map.len(), 50_000);
    assert_eq!(&map.as_slice()[..9992], &pattern(10_000)[..9992]);
    assert_eq!(map.read::<u64>(9992).unwrap(), 0x0102_0304_0506_0708);
    assert!(map.as_slice()[10_000..].iter().all(|&b| b == 0));
    map.reserve(50_001).unwrap();
    assert_eq!(map.len(), 100_000);
    assert_eq!(&map.as_slice()[..9992], &pattern(10_000)[..9992]);

    // File operations have no file to act on and succeed.
    assert!(!map.refresh().unwrap());
    map.flush().unwrap();
    map.flush_async().unwrap();
    map.flush_range(0, 10).unwrap();
    map.lock(Lock::Exclusive).unwrap();
    map.try_lock(Lock::Exclusive).unwrap();
    map.unlock().unwrap();
    assert!(matches!(
        map.flush_range(99_999, 2),
        Err(Error::OutOfBounds { .. })
    ));

    // A shared anonymous map works the same.
    let shared = map.into_shared();
    shared.write_at(0, b"xy").unwrap();
    assert_eq!(
        shared
            .atomic_u32(4)
            .unwrap()
            .fetch_add(1, Ordering::Relaxed),
        // tidy:host-endian: the atomic is a native word over these bytes.
        u32::from_ne_bytes([4 * 13 + 5, 5 * 13 + 5, 6 * 13 + 5, 7 * 13 + 5])
    );
    assert_eq!(shared.finish(100).unwrap(), 100);

    let err = Map::anonymous(0).unwrap_err();
    assert!(matches!(&err, Error::ZeroLength { path } if path == Path::new("<anonymous>")));
    assert!(err.to_string().contains("<anonymous>"));
}

#[test]
fn try_locks_conflict_between_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locks.bin");
    let a = MapOptions::new()
        .size(4096)
        .try_lock(Lock::Exclusive)
        .open(&path)
        .unwrap();
    // Two handles in one process are two open file descriptions: flock makes them conflict.
    for kind in [Lock::Shared, Lock::Exclusive] {
        let err = MapOptions::new().try_lock(kind).open(&path).unwrap_err();
        match &err {
            Error::LockContended { path: p, kind: k } if p == &path && *k == kind => {}
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        assert!(err.to_string().contains(&format!("{kind:?}")), "{err}");
    }
    // A read-only handle can be locked too.
    let b = Map::open_read_only(&path).unwrap();
    assert!(matches!(
        b.try_lock(Lock::Shared),
        Err(Error::LockContended { .. })
    ));
    // Lock::None never conflicts.
    b.try_lock(Lock::None).unwrap();
    b.lock(Lock::None).unwrap();

    a.unlock().unwrap();
    b.try_lock(Lock::Shared).unwrap();
    // Shared locks coexist; an exclusive one does not.
    let c = MapOptions::new()
        .try_lock(Lock::Shared)
        .open(&path)
        .unwrap();
    assert!(matches!(
        a.try_lock(Lock::Exclusive),
        Err(Error::LockContended { .. })
    ));
    b.unlock().unwrap();
    assert!(matches!(
        a.try_lock(Lock::Exclusive),
        Err(Error::LockContended { .. })
    ));
    c.unlock().unwrap();
    a.try_lock(Lock::Exclusive).unwrap();
    // Relocking one's own lock is no conflict.
    a.try_lock(Lock::Exclusive).unwrap();
    assert!(matches!(
        c.try_lock(Lock::Shared),
        Err(Error::LockContended { .. })
    ));
}

#[test]
fn blocking_lock_waits_for_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("blocking.bin"));
    let holder = MapOptions::new()
        .size(4096)
        .lock(Lock::Exclusive)
        .open(&*path)
        .unwrap();
    let acquired = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::channel();

    let waiter = {
        let (path, acquired) = (Arc::clone(&path), Arc::clone(&acquired));
        std::thread::spawn(move || {
            let map = pmap::Map::open(&*path).unwrap();
            started_tx.send(()).unwrap();
            map.lock(Lock::Shared).unwrap();
            acquired.store(true, Ordering::SeqCst);
            map
        })
    };
    started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Still held: a third handle cannot take it, and the waiter has not got it.
    assert!(matches!(
        MapOptions::new().try_lock(Lock::Shared).open(&*path),
        Err(Error::LockContended { .. })
    ));
    assert!(
        !acquired.load(Ordering::SeqCst),
        "a shared lock was granted beside an exclusive one"
    );
    holder.unlock().unwrap();
    let map = waiter.join().unwrap();
    assert!(acquired.load(Ordering::SeqCst));
    // The waiter now holds a shared lock: exclusive is refused, shared allowed.
    assert!(matches!(
        holder.try_lock(Lock::Exclusive),
        Err(Error::LockContended { .. })
    ));
    holder.try_lock(Lock::Shared).unwrap();
    drop(map);
}

#[test]
fn failed_growth_leaves_the_old_view_usable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toobig.bin");
    let mut map = pmap::Map::create(&path, 4096).unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(&pattern(4096));
    // No file system has room for a file this large, and none takes a length past i64::MAX:
    // the reservation of the new blocks fails after the view was dropped.
    for len in [1usize << 62, usize::MAX] {
        let err = map.grow(len).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io { .. } | Error::TooLarge { .. } | Error::NoSpace { .. }
            ),
            "{err:?}"
        );
        assert_eq!(map.len(), 4096, "the old view is mapped again");
        assert_eq!(map.as_slice(), &pattern(4096)[..]);
        assert!(map.reserve(len).is_err());
        assert_eq!(map.len(), 4096);
    }
    map.write(0, &1u8).unwrap();
    assert_eq!(file_len(&path), 4096);

    let mut anon = Map::anonymous(4096).unwrap();
    anon.write(100, &7u32).unwrap();
    assert!(anon.grow(1usize << 62).is_err());
    assert_eq!(anon.len(), 4096);
    assert_eq!(anon.read::<u32>(100).unwrap(), 7);
}

#[test]
fn is_fixed_length_reports_the_view_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kind.bin");
    let whole = pmap::Map::create(&path, 8192).unwrap();
    assert!(!whole.is_fixed_length());
    drop(whole);
    let fixed = pmap::MapOptions::new()
        .offset(100)
        .len(1000)
        .open(&path)
        .unwrap();
    assert!(fixed.is_fixed_length());
    assert!(!pmap::Map::anonymous(64).unwrap().is_fixed_length());
}

/// The `flock` rules on every platform (Windows' `LockFileEx` alone would stack locks on one
/// handle and fail to unlock nothing): relocking is a no-op, the other kind converts, unlocking
/// nothing is fine, and a failed conversion leaves no lock.
#[test]
fn one_handle_relocks_converts_and_unlocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relock.bin");
    let contends = |kind| {
        matches!(
            MapOptions::new().try_lock(kind).open(&path),
            Err(Error::LockContended { .. })
        )
    };

    // No lock held: unlocking and closing succeed.
    let a = pmap::Map::create(&path, 4096).unwrap();
    a.unlock().unwrap();
    a.unlock().unwrap();
    a.close().unwrap();

    let a = MapOptions::new().lock(Lock::Exclusive).open(&path).unwrap();
    // A blocking relock of the lock one holds returns at once.
    a.lock(Lock::Exclusive).unwrap();
    a.try_lock(Lock::Exclusive).unwrap();
    assert!(contends(Lock::Shared));
    // Exclusive -> shared: others may share, not take it exclusively.
    a.lock(Lock::Shared).unwrap();
    assert!(!contends(Lock::Shared));
    assert!(contends(Lock::Exclusive));
    // One unlock releases it, however often it was taken.
    a.lock(Lock::Shared).unwrap();
    a.unlock().unwrap();
    assert!(!contends(Lock::Exclusive));
    a.unlock().unwrap();

    // A conversion that fails leaves no lock behind.
    a.lock(Lock::Shared).unwrap();
    let b = MapOptions::new().lock(Lock::Shared).open(&path).unwrap();
    assert!(matches!(
        a.try_lock(Lock::Exclusive),
        Err(Error::LockContended { .. })
    ));
    b.close().unwrap();
    assert!(!contends(Lock::Exclusive));
    a.close().unwrap();

    // Several threads locking one shared handle hold one lock, released by one unlock.
    let shared = pmap::Map::create(&path, 4096).unwrap().into_shared();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| shared.lock(Lock::Shared).unwrap());
        }
    });
    assert!(contends(Lock::Exclusive));
    shared.unlock().unwrap();
    assert!(!contends(Lock::Exclusive));
    shared.close().unwrap();
}

/// A size the file system accepts but `mmap` cannot map (tmpfs takes a 4 EiB sparse file; no
/// address space holds it): both maps at the new length fail, and the old view must still come
/// back at its old length, not be lost. pmap itself reserves the blocks it grows into, so a
/// growth that large is refused before the map (`NoSpace`, the file left alone); the sparse
/// file is made by another handle, as another program would, and then grow and refresh alike
/// try to map it.
#[cfg(target_os = "linux")]
#[test]
fn growth_the_file_takes_but_mmap_refuses_keeps_the_old_view() {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        return; // No tmpfs here: the other failed-growth test covers the refused resize.
    };
    let path = dir.path().join("huge.bin");
    let mut map = pmap::Map::create(&path, 4096).unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(&pattern(4096));
    let huge = 1usize << 62;
    let err = map.grow(huge).unwrap_err();
    assert!(matches!(err, Error::NoSpace { .. }), "{err:?}");
    assert_eq!(
        file_len(&path),
        4096,
        "a refused reservation leaves the file alone"
    );
    assert_eq!(map.len(), 4096, "the old view is mapped again");
    assert_eq!(map.as_slice(), &pattern(4096)[..]);

    // Another handle makes the file huge and sparse, as another program could.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(huge as u64)
        .unwrap();
    let err = map.grow(huge).unwrap_err();
    assert!(matches!(err, Error::Io { op: "map", .. }), "{err:?}");
    assert_eq!(map.len(), 4096, "the old view is mapped again");
    assert_eq!(map.as_slice(), &pattern(4096)[..]);
    map.write(0, &9u8).unwrap();
    // A refresh tries the huge map again; it fails the same way and keeps the view too.
    assert!(map.refresh().is_err());
    assert_eq!(map.len(), 4096);
    assert_eq!(map.read::<u8>(0).unwrap(), 9);
    assert_eq!(map.finish(4096).unwrap(), 4096);
    assert_eq!(file_len(&path), 4096);
}
