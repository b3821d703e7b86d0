//! The rules of `MapStream`, `StreamOptions` and `with_stream`, one test per rule or error path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use pmap_stream::{Error, MapStream, StreamOptions, with_stream};

fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn typed(error: io::Error) -> Error {
    Error::from_io(error, "test", "")
}

#[test]
fn reads_stop_at_the_end_with_ok_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "a", b"0123456789");
    let mut stream = MapStream::open_read_only(&path).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(stream.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"0123");
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 6);
    assert_eq!(rest, b"456789");
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
    stream.seek(SeekFrom::Start(1000)).unwrap();
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
    assert_eq!(stream.position(), 1000);
    assert!(stream.read_exact(&mut buf).unwrap_err().kind() == io::ErrorKind::UnexpectedEof);
}

#[test]
fn growable_reads_never_show_the_reserved_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    let mut stream = StreamOptions::new().growable(8).open(&path).unwrap();
    assert_eq!((stream.len(), stream.capacity()), (0, 8));
    stream.write_all(b"abcdefghijk").unwrap();
    assert!(
        stream.capacity() >= 16,
        "reserve doubles: {}",
        stream.capacity()
    );
    assert_eq!(stream.len(), 11);
    stream.rewind().unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"abcdefghijk");
    assert_eq!(stream.seek(SeekFrom::End(0)).unwrap(), 11);
}

#[test]
fn fixed_stream_refuses_a_write_that_does_not_fit_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "f", b"0123456789");
    let mut stream = StreamOptions::new().fixed(0).open(&path).unwrap();
    assert!(!stream.is_growable());
    stream.seek(SeekFrom::Start(8)).unwrap();
    let error = stream.write(b"XYZ").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    match typed(error) {
        Error::NoRoom {
            pos,
            len,
            end,
            path: p,
        } => {
            assert_eq!((pos, len, end), (8, 3, 10));
            assert_eq!(p, path);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(stream.write_all(b"XYZ").is_err());
    assert_eq!(
        stream.position(),
        8,
        "a refused write does not move the position"
    );
    assert_eq!(
        stream.as_slice(),
        b"0123456789",
        "nothing partial was written"
    );
    // Exactly to the end fits.
    stream.write_all(b"XY").unwrap();
    assert_eq!(stream.as_slice(), b"01234567XY");
    assert_eq!(stream.finish().unwrap(), 10);
    assert_eq!(fs::read(&path).unwrap(), b"01234567XY");
}

#[test]
fn fixed_stream_accepts_an_empty_write_anywhere() {
    let mut stream = MapStream::fixed(pmap::Map::anonymous(4).unwrap());
    stream.seek(SeekFrom::Start(100)).unwrap();
    assert_eq!(stream.write(&[]).unwrap(), 0);
    assert_eq!((stream.len(), stream.position()), (4, 100));
}

#[test]
fn fixed_option_extends_a_small_file_and_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "f", b"abc");
    let stream = StreamOptions::new().fixed(4096).open(&path).unwrap();
    assert_eq!(stream.len(), 4096);
    assert_eq!(&stream.as_slice()[..4], b"abc\0");
    stream.finish().unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        4096,
        "a fixed stream is not trimmed"
    );
}

#[test]
fn seeking_past_the_end_then_writing_grows_with_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "g", b"ab");
    let mut stream = StreamOptions::new().growable(1).open(&path).unwrap();
    assert_eq!(stream.seek(SeekFrom::End(5)).unwrap(), 7);
    stream.write_all(b"cd").unwrap();
    assert_eq!(stream.as_slice(), b"ab\0\0\0\0\0cd");
    assert_eq!(stream.finish().unwrap(), 9);
    assert_eq!(fs::read(&path).unwrap(), b"ab\0\0\0\0\0cd");
}

#[test]
fn seeking_past_the_end_then_writing_errors_when_fixed() {
    let mut stream = MapStream::fixed(pmap::Map::anonymous(16).unwrap());
    stream.seek(SeekFrom::End(1)).unwrap();
    assert!(matches!(
        typed(stream.write(b"x").unwrap_err()),
        Error::NoRoom { pos: 17, .. }
    ));
    assert_eq!(stream.len(), 16);
}

#[test]
fn the_gap_reads_as_zeros_even_over_old_bytes_past_the_given_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "old", b"0123456789");
    let map = pmap::Map::open(&path).unwrap();
    let mut stream = MapStream::growable_with_len(map, 2).unwrap();
    assert_eq!(stream.as_slice(), b"01");
    stream.seek(SeekFrom::Start(5)).unwrap();
    stream.write_all(b"X").unwrap();
    assert_eq!(stream.as_slice(), b"01\0\0\0X");
    drop(stream);
    assert_eq!(
        fs::read(&path).unwrap(),
        b"01\0\0\0X",
        "drop trims to the high-water mark"
    );
}

#[test]
fn growable_with_len_beyond_the_mapping_is_an_error() {
    let map = pmap::Map::anonymous(8).unwrap();
    let error = MapStream::growable_with_len(map, 9).unwrap_err();
    assert!(matches!(
        error,
        Error::Map(pmap::Error::OutOfBounds {
            len: 9,
            map_len: 8,
            ..
        })
    ));
}

#[test]
fn seeking_before_zero_is_an_error_and_keeps_the_position() {
    let mut stream = MapStream::growable(pmap::Map::anonymous(10).unwrap());
    stream.seek(SeekFrom::Start(3)).unwrap();
    for from in [
        SeekFrom::Current(-4),
        SeekFrom::End(-11),
        SeekFrom::Current(i64::MIN),
    ] {
        let error = stream.seek(from).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(
            matches!(typed(error), Error::SeekOutOfRange { .. }),
            "{from:?}"
        );
        assert_eq!(stream.position(), 3);
    }
    assert_eq!(stream.seek(SeekFrom::Current(-3)).unwrap(), 0);
    assert_eq!(stream.seek(SeekFrom::End(-10)).unwrap(), 0);
    // Past u64::MAX is refused the same way.
    stream.seek(SeekFrom::Start(u64::MAX)).unwrap();
    let error = stream.seek(SeekFrom::Current(1)).unwrap_err();
    assert!(matches!(
        typed(error),
        Error::SeekOutOfRange {
            base: u64::MAX,
            offset: 1
        }
    ));
}

#[test]
fn a_write_at_a_position_beyond_the_address_space_is_too_large() {
    let mut stream = MapStream::growable(pmap::Map::anonymous(10).unwrap());
    stream.seek(SeekFrom::Start(u64::MAX)).unwrap();
    let error = stream.write(b"x").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(matches!(
        typed(error),
        Error::TooLarge {
            pos: u64::MAX,
            len: 1
        }
    ));
    assert_eq!(stream.len(), 10);
}

#[test]
fn a_read_only_mapping_refuses_writes_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "ro", b"data");
    for growable in [false, true] {
        let map = pmap::Map::open_read_only(&path).unwrap();
        let mut stream = if growable {
            MapStream::growable(map)
        } else {
            MapStream::fixed(map)
        };
        assert!(!stream.is_writable());
        let error = stream.write(b"x").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        let message = error.to_string();
        let named = message.contains(path.to_str().unwrap());
        assert!(message.contains("read-only") && named, "{message}");
        assert!(matches!(typed(error), Error::ReadOnly { .. }));
        assert_eq!(stream.position(), 0);
        assert!(stream.write(b"x").is_err());
        assert!(
            stream.write_all(b"").is_err(),
            "even an empty write is refused"
        );
        stream.flush().unwrap(); // nothing dirty: nothing to refuse
        assert_eq!(stream.finish().unwrap(), 4);
    }
    assert_eq!(fs::read(&path).unwrap(), b"data");
}

#[test]
fn growable_finish_and_drop_trim_to_the_high_water_mark() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let mut stream = MapStream::open(&path).unwrap();
    stream.write_all(b"hello world").unwrap();
    stream.seek(SeekFrom::Start(0)).unwrap();
    stream.write_all(b"HELLO").unwrap(); // rewriting does not lower the mark
    assert!(
        fs::metadata(&path).unwrap().len() > 11,
        "room reserved while open"
    );
    assert_eq!(stream.finish().unwrap(), 11);
    assert_eq!(fs::read(&path).unwrap(), b"HELLO world");

    let mut stream = MapStream::open(&path).unwrap();
    assert_eq!(stream.len(), 11, "re-opening holds the file's bytes");
    stream.seek(SeekFrom::End(0)).unwrap();
    stream.write_all(b"!").unwrap();
    drop(stream);
    assert_eq!(fs::read(&path).unwrap(), b"HELLO world!");
}

#[test]
fn into_inner_gives_back_the_untrimmed_mapping() {
    let mut stream = MapStream::growable(pmap::Map::anonymous(4).unwrap());
    stream.write_all(b"12345").unwrap();
    assert_eq!(stream.len(), 5);
    let map = stream.into_inner();
    assert_eq!(map.len(), 8, "doubled from 4");
    assert_eq!(&map.as_slice()[..5], b"12345");
}

#[test]
fn a_growable_stream_over_a_fixed_length_view_reports_the_map_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let map = pmap::MapOptions::new().len(16).open(&path).unwrap();
    let mut stream = MapStream::growable(map);
    stream.seek(SeekFrom::End(0)).unwrap();
    let error = stream.write(b"x").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    assert!(matches!(
        typed(error),
        Error::Map(pmap::Error::FixedLength { len: 16, .. })
    ));
    assert_eq!(stream.len(), 16);
}

#[test]
fn bufread_reads_lines_and_consumes() {
    let mut stream = MapStream::growable(pmap::Map::anonymous(1).unwrap());
    stream.write_all(b"alpha\nbeta\ngamma").unwrap();
    stream.rewind().unwrap();
    assert_eq!(stream.fill_buf().unwrap(), b"alpha\nbeta\ngamma");
    stream.consume(6);
    assert_eq!(stream.position(), 6);
    let lines: Vec<String> = (&mut stream).lines().map(Result::unwrap).collect();
    assert_eq!(lines, ["beta", "gamma"]);
    assert!(stream.fill_buf().unwrap().is_empty());
    stream.consume(10);
    assert_eq!(stream.position(), 26);
    assert!(stream.fill_buf().unwrap().is_empty());
}

#[test]
fn flush_syncs_what_was_written_and_the_file_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut stream = StreamOptions::new().fixed(8192).open(&path).unwrap();
    stream.flush().unwrap(); // nothing dirty
    stream.seek(SeekFrom::Start(5000)).unwrap();
    stream.write_all(b"durable").unwrap();
    stream.flush().unwrap();
    let on_disk = fs::read(&path).unwrap();
    assert_eq!(&on_disk[5000..5007], b"durable");
    stream.sync().unwrap();
}

#[test]
fn with_stream_runs_the_body_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w");
    let n = with_stream(&path, &StreamOptions::new(), |s| {
        s.write_all(b"scoped")?;
        Ok(s.position())
    })
    .unwrap();
    assert_eq!(n, 6);
    assert_eq!(
        fs::read(&path).unwrap(),
        b"scoped",
        "closing trimmed the file"
    );
    let text = with_stream(&path, &StreamOptions::new().read_only(), |s| {
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .unwrap();
    assert_eq!(text, "scoped");
}

#[test]
fn with_stream_surfaces_the_body_error_typed_and_still_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "e", b"abc");
    let error = with_stream(&path, &StreamOptions::new().fixed(0), |s| {
        s.write_all(b"toolong")
    })
    .unwrap_err();
    assert!(
        matches!(error, Error::NoRoom { len: 7, end: 3, .. }),
        "{error:?}"
    );

    let error = with_stream(&path, &StreamOptions::new(), |s| {
        s.write_all(b"def")?;
        Err::<(), _>(io::Error::new(io::ErrorKind::InvalidData, "body gave up"))
    })
    .unwrap_err();
    match error {
        Error::Io {
            op: "stream",
            path: p,
            source,
        } => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), io::ErrorKind::InvalidData);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The stream was closed (trimmed) even though the body failed.
    assert_eq!(fs::read(&path).unwrap(), b"def");
}

#[test]
fn opening_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for options in [
        StreamOptions::new().read_only(),
        StreamOptions::new().must_exist(),
    ] {
        let error = options.open(&missing).unwrap_err();
        assert!(
            matches!(error, Error::Map(pmap::Error::NotFound { .. })),
            "{error:?}"
        );
    }
    let error = with_stream(dir.path(), &StreamOptions::new(), |_| Ok(())).unwrap_err();
    assert!(
        matches!(error, Error::Map(pmap::Error::IsDirectory { .. })),
        "{error:?}"
    );
    let empty = file_with(dir.path(), "empty", b"");
    let error = MapStream::open_read_only(&empty).unwrap_err();
    assert!(
        matches!(error, Error::Map(pmap::Error::ZeroLength { .. })),
        "{error:?}"
    );
    assert!(!missing.exists(), "failed opens created nothing");
}

#[test]
fn a_read_only_file_cannot_be_opened_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "locked", b"keep");
    let mut perms = fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(&path, perms).unwrap();
    let error = MapStream::open(&path).unwrap_err();
    assert!(
        matches!(error, Error::Map(pmap::Error::ReadOnlyFile { .. })),
        "{error:?}"
    );
    assert_eq!(
        io::Error::from(error).kind(),
        io::ErrorKind::PermissionDenied
    );
    let stream = MapStream::open_read_only(&path).unwrap();
    assert_eq!(stream.as_slice(), b"keep");
}

#[test]
fn a_held_lock_makes_try_lock_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lock");
    let exclusive = StreamOptions::new().try_lock(pmap::Lock::Exclusive);
    let first = exclusive.open(&path).unwrap();
    let error = exclusive.open(&path).unwrap_err();
    assert!(
        matches!(error, Error::Map(pmap::Error::LockContended { .. })),
        "{error:?}"
    );
    first.finish().unwrap();
    exclusive.open(&path).unwrap().finish().unwrap();
}

#[test]
fn from_io_keeps_foreign_errors_and_kinds_map_sensibly() {
    let foreign = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
    match Error::from_io(foreign, "stream", "p") {
        Error::Io {
            op: "stream",
            source,
            ..
        } => assert_eq!(source.kind(), io::ErrorKind::BrokenPipe),
        other => panic!("unexpected {other:?}"),
    }
    let wrapped = io::Error::other(Box::<dyn std::error::Error + Send + Sync>::from("text"));
    assert!(matches!(
        Error::from_io(wrapped, "x", "p"),
        Error::Io { .. }
    ));
    let zero = Error::ZeroCapacity { path: "p".into() };
    assert_eq!(zero.kind(), io::ErrorKind::InvalidInput);
    let round = Error::from_io(io::Error::from(zero), "x", "q");
    assert!(matches!(round, Error::ZeroCapacity { .. }));
}

#[test]
fn concurrent_opener_waiting_for_the_lock_sees_the_trimmed_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared");
    let locked = StreamOptions::new()
        .growable(1 << 16)
        .lock(pmap::Lock::Exclusive);
    let mut first = locked.open(&path).unwrap();
    let waiter = {
        let (path, locked) = (path.clone(), locked.clone());
        std::thread::spawn(move || {
            // Blocks until `first` is finished; whenever it gets in, it must see exactly the
            // bytes `first` left, not the room `first` had reserved.
            let mut second = locked.open(&path).unwrap();
            let seen = second.as_slice().to_vec();
            second.seek(SeekFrom::End(0)).unwrap();
            second.write_all(b"+second").unwrap();
            second.finish().unwrap();
            seen
        })
    };
    first.write_all(b"first").unwrap();
    assert_eq!(first.finish().unwrap(), 5);
    assert_eq!(waiter.join().unwrap(), b"first");
    assert_eq!(fs::read(&path).unwrap(), b"first+second");
}

/// `StreamOptions` hands its shared setters to the `MapOptions` it wraps: the kind chosen last
/// decides the access, and a missing file a stream must not create stays missing.
#[test]
fn stream_options_delegate_to_the_map_options_they_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "data", b"abc");
    let stream = StreamOptions::new()
        .read_only()
        .growable(8)
        .open(&path)
        .unwrap();
    assert!(stream.is_writable() && stream.is_growable());
    assert_eq!(stream.finish().unwrap(), 3);
    let stream = StreamOptions::new()
        .fixed(0)
        .read_only()
        .open(&path)
        .unwrap();
    assert!(!stream.is_writable());
    drop(stream);
    let missing = dir.path().join("missing");
    for options in [
        StreamOptions::new().must_exist().growable(8),
        StreamOptions::new().must_exist().fixed(4096),
    ] {
        let error = options.open(&missing).unwrap_err();
        assert!(
            matches!(&error, Error::Map(pmap::Error::NotFound { path }) if path == &missing),
            "{error:?}"
        );
        assert!(!missing.exists(), "a must-exist open created the file");
    }
}
