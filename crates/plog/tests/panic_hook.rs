//! The panic hook writes a crashing thread's last words as an error record, then lets the
//! previous hook run; and a process that panics and aborts still leaves the record behind.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use plog::{Level, Log, PANIC_TAG, install_panic_hook};

static PREVIOUS_RAN: AtomicUsize = AtomicUsize::new(0);

#[test]
fn panic_hook_writes_the_message_location_and_thread_and_keeps_the_previous_hook() {
    if let Ok(path) = std::env::var("PLOG_PANIC_CHILD") {
        // The child role: a process that dies of its panic (abort, like panic = "abort").
        let log = Arc::new(Log::open(path).unwrap());
        install_panic_hook(Arc::clone(&log));
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            std::process::abort();
        }));
        panic!("disk on fire");
    }
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("p.plog")).unwrap());
    std::panic::set_hook(Box::new(|_| {
        PREVIOUS_RAN.fetch_add(1, Ordering::SeqCst);
    }));
    install_panic_hook(Arc::clone(&log));
    let joined = std::thread::Builder::new()
        .name("worker-7".into())
        .spawn(|| panic!("out of cheese: {}", 42))
        .unwrap()
        .join();
    assert!(joined.is_err());
    assert_eq!(
        PREVIOUS_RAN.load(Ordering::SeqCst),
        1,
        "the previous hook ran"
    );
    let records: Vec<_> = log.reader().collect();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(
        (record.level, record.tag.as_str()),
        (Level::Error, PANIC_TAG)
    );
    let text = record.message();
    assert!(text.contains("out of cheese: 42"), "{text}");
    assert!(text.contains("worker-7"), "{text}");
    assert!(text.contains("tests/panic_hook.rs:"), "{text}");

    // A process that aborts on its panic leaves the record in the file.
    let path = dir.path().join("child.plog");
    let status = pounds_testkit::child_command(
        "panic_hook_writes_the_message_location_and_thread_and_keeps_the_previous_hook",
    )
    .env("PLOG_PANIC_CHILD", &path)
    .stderr(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .status()
    .unwrap();
    assert!(!status.success(), "the child aborted");
    let child = Log::open_read_only(&path).unwrap();
    let last = child.reader().last().unwrap();
    assert_eq!(last.tag, PANIC_TAG);
    assert!(last.message().contains("disk on fire"));
}
