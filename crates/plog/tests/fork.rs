//! A process that forks while it holds a log (with a background flush thread, which the child
//! does not inherit): the child writes through the inherited handle, stamps its own pid, and
//! drops the log cleanly.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Mutex;
use std::time::Duration;

use plog::{Level, LogOptions};
use pmap::testing::{ChildExit, fork_and_run, wait_child};

#[test]
fn fork_children_write_and_drop_an_inherited_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fork.plog");
    let log = LogOptions::new()
        .flush_every(Duration::from_millis(1))
        .open(&path)
        .unwrap();
    log.write(Level::Info, "parent", "before").unwrap();
    let slot = Mutex::new(Some(log));
    for i in 0..20 {
        // Dirty the whole ring, so that the flush thread is likely inside its msync, holding
        // its mutex, at the moment of the fork (what made children hang).
        if let Some(log) = slot.lock().unwrap().as_ref() {
            for n in 0..16384u32 {
                log.write(Level::Debug, "fill", n.to_le_bytes()).unwrap();
            }
        }
        let pid = fork_and_run(|| {
            // The child's copy of the slot: take the log and drop it here, as a child that
            // ends would.
            let Some(log) = slot.lock().ok().and_then(|mut s| s.take()) else {
                return 3;
            };
            let written = log.write(Level::Info, "child", format!("{i}"));
            drop(log);
            if written.is_ok() { 0 } else { 4 }
        })
        .unwrap();
        let exit = wait_child(pid, Duration::from_secs(20)).unwrap();
        assert_eq!(
            exit,
            Some(ChildExit::Code(0)),
            "child {i} (pid {pid}): hung (None), died of a signal, or failed"
        );
        let guard = slot.lock().unwrap();
        let log = guard.as_ref().unwrap();
        let record = log
            .reader()
            .find(|r| r.tag == "child" && r.message() == i.to_string())
            .unwrap_or_else(|| panic!("child {i}'s record"));
        assert_eq!(record.pid, pid, "child {i} stamps its own pid");
    }
    let log = slot.lock().unwrap().take().unwrap();
    // The parent's flush thread still runs and stops on drop.
    log.write(Level::Info, "parent", "after").unwrap();
    drop(log);
}
