//! Opening and creating mappings: the `open-mapping` semantics, every option and every error
//! that opening can report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use pmap::{Error, Map, MapOptions};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn open_creates_and_extends_to_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.bin");
    let map = pmap::Map::create(&path, 5000).unwrap();
    assert_eq!(map.len(), 5000);
    assert!(map.is_writable());
    assert!(!map.is_anonymous());
    assert_eq!(map.path(), path);
    assert!(map.as_slice().iter().all(|&b| b == 0));
    assert_eq!(file_len(&path), 5000);
}

#[test]
fn open_keeps_existing_contents_and_extends_a_smaller_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.bin");
    let old = pattern(3000);
    fs::write(&path, &old).unwrap();

    let map = pmap::Map::create(&path, 8192).unwrap();
    assert_eq!(map.len(), 8192);
    assert_eq!(&map.as_slice()[..3000], &old[..]);
    assert!(map.as_slice()[3000..].iter().all(|&b| b == 0));
    map.close().unwrap();
    assert_eq!(file_len(&path), 8192);
    assert_eq!(&fs::read(&path).unwrap()[..3000], &old[..]);
}

#[test]
fn open_never_shrinks_a_larger_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let old = pattern(10_000);
    fs::write(&path, &old).unwrap();

    let map = pmap::Map::create(&path, 100).unwrap();
    assert_eq!(map.len(), 10_000);
    assert_eq!(map.as_slice(), &old[..]);
    drop(map);
    // Size 0 on an existing non-empty file opens it as it is.
    let map = pmap::Map::create(&path, 0).unwrap();
    assert_eq!(map.len(), 10_000);
    drop(map);
    assert_eq!(fs::read(&path).unwrap(), old);
}

#[test]
fn writes_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.bin");
    let mut map = pmap::Map::create(&path, 4096).unwrap();
    map.as_mut_slice().unwrap()[100..105].copy_from_slice(b"hello");
    map.slice_mut(4090, 6).unwrap().copy_from_slice(b"world!");
    map.close().unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[100..105], b"hello");
    assert_eq!(&bytes[4090..], b"world!");
}

#[test]
fn zero_size_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.bin");
    let err = pmap::Map::create(&path, 0).unwrap_err();
    assert!(
        matches!(&err, Error::ZeroLength { path: p } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    // A failed open must not leave an empty file behind.
    assert!(!path.exists(), "open(path, 0) created the file");

    // The same at an offset: the file must not be created or extended to the offset.
    let err = MapOptions::new().offset(4096).open(&path).unwrap_err();
    assert!(matches!(err, Error::ZeroLength { .. }), "{err:?}");
    assert!(!path.exists());

    // An existing empty file stays empty.
    fs::write(&path, b"").unwrap();
    assert!(matches!(
        pmap::Map::create(&path, 0),
        Err(Error::ZeroLength { .. })
    ));
    assert!(matches!(
        Map::open_read_only(&path),
        Err(Error::ZeroLength { .. })
    ));
    // An existing short file is not extended to an offset that leaves no view.
    fs::write(&path, b"abc").unwrap();
    assert!(matches!(
        MapOptions::new().offset(10).open(&path),
        Err(Error::ZeroLength { .. } | Error::ViewPastEnd { .. })
    ));
    assert_eq!(file_len(&path), 3);

    // A fixed length of zero.
    let err = MapOptions::new().len(0).open(&path).unwrap_err();
    assert!(matches!(err, Error::ZeroLength { .. }), "{err:?}");
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for result in [
        pmap::Map::create(dir.path(), 4096),
        Map::open_read_only(dir.path()),
        MapOptions::new().must_exist().open(dir.path()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::IsDirectory { path } if path == dir.path()),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(dir.path().to_str().unwrap()),
            "{err}"
        );
        assert!(err.to_string().contains("directory"), "{err}");
    }
}

#[test]
fn a_read_only_file_opened_for_writing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.bin");
    fs::write(&path, pattern(4096)).unwrap();
    let mut perms = fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(&path, perms).unwrap();

    // Tests may run as root, where open(2) itself would succeed: pmap checks the bits.
    let err = pmap::Map::create(&path, 4096).unwrap_err();
    assert!(
        matches!(&err, Error::ReadOnlyFile { path: p } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(matches!(
        MapOptions::new().must_exist().open(&path),
        Err(Error::ReadOnlyFile { .. })
    ));

    // Reading it is fine.
    let map = Map::open_read_only(&path).unwrap();
    assert_eq!(map.as_slice(), &pattern(4096)[..]);
}

#[test]
fn must_exist_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.bin");
    let err = MapOptions::new()
        .must_exist()
        .size(4096)
        .open(&path)
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { path: p } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert!(!path.exists());

    // An existing file opens, and is still extended to the size asked for.
    fs::write(&path, b"abc").unwrap();
    let map = MapOptions::new()
        .must_exist()
        .size(4096)
        .open(&path)
        .unwrap();
    assert_eq!(map.len(), 4096);
    assert_eq!(&map.as_slice()[..3], b"abc");
}

#[test]
fn read_only_maps_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.bin");
    fs::write(&path, pattern(4096)).unwrap();
    let mut map = Map::open_read_only(&path).unwrap();
    assert!(!map.is_writable());
    assert_eq!(map.len(), 4096);
    assert_eq!(map.as_slice(), &pattern(4096)[..]);
    assert_eq!(
        map.read::<u32>(1).unwrap(),
        // tidy:host-endian: a typed read sees the bytes in memory order.
        u32::from_ne_bytes([7, 14, 21, 28])
    );

    let err = map.as_mut_slice().unwrap_err();
    assert!(
        matches!(&err, Error::ReadOnlyMapping { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert!(matches!(
        map.slice_mut(0, 1),
        Err(Error::ReadOnlyMapping { .. })
    ));
    assert!(matches!(
        map.write(0, &1u8),
        Err(Error::ReadOnlyMapping { .. })
    ));
    assert!(matches!(
        map.view_mut::<u64>(0),
        Err(Error::ReadOnlyMapping { .. })
    ));
    assert!(matches!(map.grow(8192), Err(Error::ReadOnlyMapping { .. })));
    assert!(matches!(
        map.reserve(8192),
        Err(Error::ReadOnlyMapping { .. })
    ));
    // Growing to a size it already has is not a write.
    map.grow(100).unwrap();
    // Flushing a reader has nothing to write back and succeeds.
    map.flush().unwrap();
    map.flush_async().unwrap();
    map.flush_range(0, 10).unwrap();

    let shared = map.into_shared();
    assert!(matches!(
        shared.write_at(0, b"x"),
        Err(Error::ReadOnlyMapping { .. })
    ));
    drop(shared);
    assert_eq!(fs::read(&path).unwrap(), pattern(4096));
}

#[test]
fn open_needs_an_existing_file_and_create_makes_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let err = Map::open(&path).unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { path: p } if p == &path),
        "{err:?}"
    );
    assert!(!path.exists(), "Map::open created the file");
    let mut map = Map::create(&path, 4096).unwrap();
    map.as_mut_slice().unwrap()[..2].copy_from_slice(b"hi");
    drop(map);
    // Neither opens again truncate: `create` keeps the contents and a larger file's length.
    let map = Map::create(&path, 100).unwrap();
    assert_eq!((map.len(), &map.as_slice()[..2]), (4096, &b"hi"[..]));
    drop(map);
    let map = Map::open(&path).unwrap();
    assert!(map.is_writable());
    assert_eq!((map.len(), &map.as_slice()[..2]), (4096, &b"hi"[..]));
}

#[test]
fn read_only_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.bin");
    let err = Map::open_read_only(&missing).unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { path } if path == &missing),
        "{err:?}"
    );
    assert!(!missing.exists(), "a read-only open created the file");
    // The default (create when absent) does not make a read-only open create anything.
    let err = MapOptions::new().read_only().open(&missing).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(!missing.exists());

    let path = dir.path().join("short.bin");
    fs::write(&path, pattern(1000)).unwrap();
    // A size larger than the file.
    let err = MapOptions::new()
        .read_only()
        .size(2000)
        .open(&path)
        .unwrap_err();
    match &err {
        Error::ViewPastEnd {
            path: p,
            offset: 0,
            len: 2000,
            file_len: 1000,
        } if p == &path => {}
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(path.to_str().unwrap()) && text.contains("2000"),
        "{text}"
    );
    assert!(text.contains("1000"), "{text}");
    // An offset past the end.
    let err = MapOptions::new()
        .read_only()
        .offset(5000)
        .open(&path)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ViewPastEnd {
                offset: 5000,
                file_len: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    // A fixed view running past the end.
    let err = MapOptions::new()
        .read_only()
        .offset(900)
        .len(101)
        .open(&path)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ViewPastEnd {
                offset: 900,
                len: 101,
                ..
            }
        ),
        "{err:?}"
    );
    // An offset exactly at the end leaves nothing to map.
    let err = MapOptions::new()
        .read_only()
        .offset(1000)
        .open(&path)
        .unwrap_err();
    assert!(matches!(err, Error::ZeroLength { .. }), "{err:?}");
    // And nothing was extended.
    assert_eq!(file_len(&path), 1000);
    // A view that fits exactly is fine.
    let map = MapOptions::new()
        .read_only()
        .offset(900)
        .len(100)
        .open(&path)
        .unwrap();
    assert_eq!(map.as_slice(), &pattern(1000)[900..]);
}

#[test]
fn offset_views_at_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offsets.bin");
    let bytes = pattern(20_000);
    fs::write(&path, &bytes).unwrap();

    for offset in [0u64, 1, 3, 4095, 4096, 4097, 8191, 12_345] {
        // A view to the end of the file.
        let map = MapOptions::new().offset(offset).open(&path).unwrap();
        assert_eq!(map.len() as u64, 20_000 - offset);
        assert_eq!(map.as_slice(), &bytes[offset as usize..], "offset {offset}");
        drop(map);
        // A fixed-length view.
        let map = MapOptions::new()
            .read_only()
            .offset(offset)
            .len(777)
            .open(&path)
            .unwrap();
        assert_eq!(map.len(), 777);
        assert_eq!(
            map.as_slice(),
            &bytes[offset as usize..offset as usize + 777]
        );
    }

    // Writes through a view land at `offset + i` in the file.
    let mut map = MapOptions::new().offset(4099).len(10).open(&path).unwrap();
    map.as_mut_slice().unwrap().copy_from_slice(b"0123456789");
    map.close().unwrap();
    let after = fs::read(&path).unwrap();
    assert_eq!(&after[4099..4109], b"0123456789");
    assert_eq!(&after[..4099], &bytes[..4099]);
    assert_eq!(&after[4109..], &bytes[4109..]);
}

#[test]
fn offset_views_extend_the_file_when_writable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ext.bin");
    let map = MapOptions::new().offset(5000).len(300).open(&path).unwrap();
    assert_eq!(map.len(), 300);
    assert_eq!(file_len(&path), 5300);
    drop(map);
    let map = MapOptions::new()
        .offset(6000)
        .size(1000)
        .open(&path)
        .unwrap();
    assert_eq!(map.len(), 1000);
    assert_eq!(file_len(&path), 7000);
}

#[test]
fn fixed_length_views_refuse_growth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixed.bin");
    fs::write(&path, pattern(8192)).unwrap();
    let mut map = MapOptions::new().offset(10).len(100).open(&path).unwrap();

    let err = map.grow(200).unwrap_err();
    match &err {
        Error::FixedLength { path: p, len: 100 } if p == &path => {}
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("100") && err.to_string().contains(path.to_str().unwrap()));
    assert!(matches!(
        map.reserve(101),
        Err(Error::FixedLength { len: 100, .. })
    ));
    map.grow(50).unwrap();
    map.reserve(100).unwrap();
    assert_eq!(map.len(), 100);

    // Another handle grows the file: a fixed view does not follow.
    pmap::Map::create(&path, 20_000).unwrap().close().unwrap();
    assert!(!map.refresh().unwrap());
    assert_eq!(map.len(), 100);

    // Finishing a fixed view leaves the file's length alone.
    assert_eq!(map.finish(40).unwrap(), 40);
    assert_eq!(file_len(&path), 20_000);
}

#[test]
fn populate_maps_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pop.bin");
    fs::write(&path, pattern(3 * 4096)).unwrap();
    let mut map = MapOptions::new().populate().open(&path).unwrap();
    assert_eq!(map.as_slice(), &pattern(3 * 4096)[..]);
    // The option survives a remap.
    map.grow(5 * 4096).unwrap();
    assert_eq!(&map.as_slice()[..3 * 4096], &pattern(3 * 4096)[..]);
    let ro = MapOptions::new()
        .read_only()
        .populate()
        .offset(5)
        .open(&path)
        .unwrap();
    assert_eq!(&ro.as_slice()[..100], &pattern(3 * 4096)[5..105]);
}

#[test]
fn too_large_sizes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.bin");
    let err = MapOptions::new()
        .offset(u64::MAX - 10)
        .size(100)
        .open(&path)
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { requested: 100, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("100"));
    assert!(!path.exists(), "a refused open created the file");
}

#[cfg(unix)]
#[test]
fn creation_mode_sets_permission_bits() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Owner bits survive any sensible umask.
    for mode in [0o600, 0o700, 0o400] {
        let path = dir.path().join(format!("mode-{mode:o}.bin"));
        let map = MapOptions::new().size(4096).mode(mode).open(&path).unwrap();
        drop(map);
        let bits = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(bits, mode, "created with {mode:o}, got {bits:o}");
    }
    // The mode applies to creation only: an existing file keeps its bits.
    let path = dir.path().join("mode-600.bin");
    MapOptions::new()
        .size(8192)
        .mode(0o700)
        .open(&path)
        .unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn debug_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dbg.bin");
    let map = pmap::Map::create(&path, 4096).unwrap();
    let text = format!("{map:?}");
    assert!(text.contains("dbg.bin") && text.contains("4096"), "{text}");
}

#[test]
fn read_only_then_read_write_is_a_plain_read_write_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flip.bin");
    let map = MapOptions::new()
        .read_only()
        .read_write()
        .size(64)
        .open(&path)
        .unwrap();
    assert!(map.is_writable());
    assert_eq!(map.len(), 64);
    // must_exist survives the flip.
    let missing = dir.path().join("missing.bin");
    let err = MapOptions::new()
        .must_exist()
        .read_only()
        .read_write()
        .size(64)
        .open(&missing);
    assert!(matches!(err, Err(Error::NotFound { .. })), "{err:?}");
}
