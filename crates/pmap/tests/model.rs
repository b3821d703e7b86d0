//! A model test: random sequences of open, write, grow, reserve, flush, refresh (after another
//! handle or plain file I/O changed the file), finish and close/reopen, checked after every
//! step against a `Vec<u8>` holding what the file's bytes must be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use pmap::{Map, MapOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Write through the map at `at` (reduced modulo the view's length).
    Write {
        at: usize,
        data: Vec<u8>,
    },
    /// Write through a `SharedMap` (the same handle, converted and back).
    SharedWrite {
        at: usize,
        data: Vec<u8>,
    },
    Grow(usize),
    Reserve(usize),
    Flush,
    FlushAsync,
    FlushRange {
        at: usize,
        len: usize,
    },
    /// Another handle (a second mapping) grows the file and writes its new tail.
    OtherMapGrows {
        extra: usize,
        data: Vec<u8>,
    },
    /// Plain file I/O appends bytes.
    FileAppends(Vec<u8>),
    /// Plain file I/O overwrites bytes inside the file.
    FileWrites {
        at: usize,
        data: Vec<u8>,
    },
    Refresh,
    /// Close (or drop) and open again asking for `size` bytes.
    Reopen {
        size: usize,
        close: bool,
    },
    /// Finish at `used` (reduced modulo the view's length, plus one) and reopen.
    FinishAndReopen {
        used: usize,
        size: usize,
    },
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..max)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<usize>(), bytes(300)).prop_map(|(at, data)| Op::Write { at, data }),
        2 => (any::<usize>(), bytes(100)).prop_map(|(at, data)| Op::SharedWrite { at, data }),
        2 => (1usize..20_000).prop_map(Op::Grow),
        2 => (1usize..20_000).prop_map(Op::Reserve),
        1 => Just(Op::Flush),
        1 => Just(Op::FlushAsync),
        1 => (any::<usize>(), 0usize..5000).prop_map(|(at, len)| Op::FlushRange { at, len }),
        2 => (1usize..9000, bytes(64)).prop_map(|(extra, data)| Op::OtherMapGrows { extra, data }),
        1 => bytes(200).prop_map(Op::FileAppends),
        1 => (any::<usize>(), bytes(64)).prop_map(|(at, data)| Op::FileWrites { at, data }),
        3 => Just(Op::Refresh),
        1 => (0usize..20_000, any::<bool>()).prop_map(|(size, close)| Op::Reopen { size, close }),
        1 => (any::<usize>(), 1usize..10_000).prop_map(|(used, size)| Op::FinishAndReopen { used, size }),
    ]
}

fn check(path: &Path, map: &Map, model: &[u8]) {
    let disk = fs::read(path).unwrap();
    assert_eq!(disk.len(), model.len(), "file length");
    assert!(disk == model, "file bytes differ from the model");
    // The view shows the file's first `len` bytes (it may lag a file grown elsewhere).
    assert!(map.len() <= model.len());
    assert!(
        map.as_slice() == &model[..map.len()],
        "view differs from the model"
    );
}

/// Reopens like `open-mapping`: never shrinks, extends to `size`.
fn reopen(path: &Path, size: usize, model: &mut Vec<u8>) -> Map {
    let size = size.max(if model.is_empty() { 1 } else { 0 });
    if model.len() < size {
        model.resize(size, 0);
    }
    pmap::Map::create(path, size as u64).unwrap()
}

fn run(initial: usize, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    let mut map = pmap::Map::create(&path, initial as u64).unwrap();
    let mut model = vec![0u8; initial];
    check(&path, &map, &model);

    for op in ops {
        match op {
            Op::Write { at, data } => {
                let at = at % map.len();
                let n = data.len().min(map.len() - at);
                model[at..at + n].copy_from_slice(&data[..n]);
                map.slice_mut(at, n).unwrap().copy_from_slice(&data[..n]);
            }
            Op::SharedWrite { at, data } => {
                let at = at % map.len();
                let n = data.len().min(map.len() - at);
                model[at..at + n].copy_from_slice(&data[..n]);
                let shared = map.into_shared();
                shared.write_at(at, &data[..n]).unwrap();
                let mut back = vec![0; n];
                shared.read_at(at, &mut back).unwrap();
                assert_eq!(back, data[..n]);
                map = shared.into_map();
            }
            Op::Grow(len) => {
                let before = map.len();
                map.grow(len).unwrap();
                if len > before {
                    // The remap also catches up with the file, if it grew elsewhere.
                    model.resize(model.len().max(len), 0);
                    assert_eq!(map.len(), model.len());
                } else {
                    assert_eq!(map.len(), before);
                }
            }
            Op::Reserve(len) => {
                let before = map.len();
                map.reserve(len).unwrap();
                if len > before {
                    assert_eq!(map.len(), len.max(before * 2).max(model.len()));
                } else {
                    assert_eq!(map.len(), before);
                }
                model.resize(model.len().max(map.len()), 0);
            }
            Op::Flush => map.flush().unwrap(),
            Op::FlushAsync => map.flush_async().unwrap(),
            Op::FlushRange { at, len } => {
                let at = at % (map.len() + 1);
                let len = len.min(map.len() - at);
                map.flush_range(at, len).unwrap();
            }
            Op::OtherMapGrows { extra, data } => {
                let mut other = MapOptions::new().must_exist().open(&path).unwrap();
                let old = other.len();
                other.grow(old + extra).unwrap();
                let n = data.len().min(extra);
                other
                    .slice_mut(old + extra - n, n)
                    .unwrap()
                    .copy_from_slice(&data[..n]);
                other.close().unwrap();
                model.resize(old + extra, 0);
                let len = model.len();
                model[len - n..].copy_from_slice(&data[..n]);
            }
            Op::FileAppends(data) => {
                let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
                file.write_all(&data).unwrap();
                model.extend_from_slice(&data);
            }
            Op::FileWrites { at, data } => {
                let at = at % model.len();
                let n = data.len().min(model.len() - at);
                let mut file = fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.seek(SeekFrom::Start(at as u64)).unwrap();
                file.write_all(&data[..n]).unwrap();
                model[at..at + n].copy_from_slice(&data[..n]);
            }
            Op::Refresh => {
                let lagging = map.len() != model.len();
                assert_eq!(map.refresh().unwrap(), lagging, "refresh reports a change");
                assert_eq!(map.len(), model.len(), "refresh follows the file");
                assert!(!map.refresh().unwrap(), "a second refresh changes nothing");
            }
            Op::Reopen { size, close } => {
                if close {
                    map.close().unwrap();
                } else {
                    drop(map);
                }
                map = reopen(&path, size, &mut model);
                assert_eq!(map.len(), model.len());
            }
            Op::FinishAndReopen { used, size } => {
                let used = used % (map.len() + 1);
                assert_eq!(map.finish(used as u64).unwrap(), used as u64);
                // The file is cut at the end of what was used (the view starts at 0), even
                // when it had grown elsewhere past the view.
                model.truncate(used);
                assert_eq!(fs::read(&path).unwrap(), model);
                map = reopen(&path, size, &mut model);
            }
        }
        check(&path, &map, &model);
    }
    map.close().unwrap();
    assert_eq!(fs::read(&path).unwrap(), model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn file_matches_the_model(initial in 1usize..10_000, ops in prop::collection::vec(op(), 1..40)) {
        run(initial, ops);
    }
}
