//! Two processes on one file: the test binary re-executes itself as the child, which grows the
//! file and writes bytes (the parent sees them after `refresh`), and changes a shared word and
//! wakes the parent blocked in `wait_u32` (a shared futex on Linux, polling elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pmap::MapOptions;
use pounds_testkit::{child_command, child_role_path};

const ROLE: &str = "PMAP_TEST_CHILD_ROLE";
const FILE: &str = "PMAP_TEST_CHILD_FILE";
const TAIL: &[u8] = b"written by the child process";
/// Offsets of the words the wait/wake test shares.
const READY: usize = 0;
const WORD: usize = 64;
/// Long enough that a missed wake fails the elapsed-time check instead of passing by luck, and
/// bounds how long a broken wake can hang the test.
const WAIT: Duration = Duration::from_secs(20);

fn spawn_child(test: &str, role: &str, path: &Path) -> std::process::Child {
    child_command(test)
        .env(ROLE, role)
        .env(FILE, path)
        .spawn()
        .unwrap()
}

/// The child's side: does nothing unless started by a parent test.
#[test]
fn processes_child() {
    let Some((role, path)) = child_role_path(ROLE, FILE) else {
        return;
    };
    match role.as_str() {
        "grow" => {
            let mut map = MapOptions::new().must_exist().open(&path).unwrap();
            assert_eq!(map.len(), 4096, "the parent's file");
            assert_eq!(&map.as_slice()[..6], b"parent");
            map.grow(3 * 4096).unwrap();
            map.slice_mut(3 * 4096 - TAIL.len(), TAIL.len())
                .unwrap()
                .copy_from_slice(TAIL);
            map.flush().unwrap();
            map.close().unwrap();
        }
        "wake" => {
            let shared = MapOptions::new()
                .must_exist()
                .open(&path)
                .unwrap()
                .into_shared();
            // Wait until the parent says it is about to block on WORD.
            let deadline = Instant::now() + WAIT;
            while shared.load_u32(READY, Ordering::Acquire).unwrap() == 0 {
                shared
                    .wait_u32(READY, 0, Some(Duration::from_millis(100)))
                    .unwrap();
                assert!(Instant::now() < deadline, "the parent never got ready");
            }
            shared.atomic_u32(WORD).unwrap().store(1, Ordering::Release);
            shared.wake_u32(WORD).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn two_processes_grow_then_refresh() {
    if child_role_path(ROLE, FILE).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grown.bin");
    let mut map = pmap::Map::create(&path, 4096).unwrap();
    map.slice_mut(0, 6).unwrap().copy_from_slice(b"parent");
    map.flush().unwrap();

    let status = spawn_child("processes_child", "grow", &path)
        .wait()
        .unwrap();
    assert!(status.success(), "child failed: {status}");

    assert_eq!(map.len(), 4096, "the view does not change by itself");
    assert!(map.refresh().unwrap(), "refresh noticed the growth");
    assert_eq!(map.len(), 3 * 4096);
    assert_eq!(&map.as_slice()[3 * 4096 - TAIL.len()..], TAIL);
    assert_eq!(&map.as_slice()[..6], b"parent");
    assert!(
        map.as_slice()[4096..3 * 4096 - TAIL.len()]
            .iter()
            .all(|&b| b == 0)
    );
    assert!(!map.refresh().unwrap());
}

#[test]
fn two_processes_wait_and_wake() {
    if child_role_path(ROLE, FILE).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("futex.bin");
    let shared = pmap::Map::create(&path, 4096).unwrap().into_shared();
    // The waiter is a read-only mapping, as a log follower's is: the shared futex is keyed on
    // the file page, so the writer's wake still finds it.
    let reader = pmap::Map::open_read_only(&path).unwrap().into_shared();
    let mut child = spawn_child("processes_child", "wake", &path);

    let start = Instant::now();
    shared
        .atomic_u32(READY)
        .unwrap()
        .store(1, Ordering::Release);
    shared.wake_u32(READY).unwrap();
    while reader.load_u32(WORD, Ordering::Acquire).unwrap() == 0 {
        // Returns when the child wakes us (or at once if it already changed the word).
        reader.wait_u32(WORD, 0, Some(WAIT)).unwrap();
        assert!(start.elapsed() < WAIT, "the cross-process wake was missed");
    }
    assert_eq!(reader.load_u32(WORD, Ordering::Acquire).unwrap(), 1);
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
}
