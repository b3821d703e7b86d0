//! An `AppendWriter` and a `LineSink` (rolling or not) on a full disk get an error from
//! `write`, never a `SIGBUS`, and keep every byte written before: on a real 4 MiB tmpfs (the test needs root, as CI runs). The
//! writing runs in a child process (this test binary again), so that dying of a signal shows as
//! a failed test rather than a crashed test binary.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::io::Write;

use pmap_stream::{AppendOptions, Error};
use pounds_testkit::{Tmpfs, child_command, child_role_path, reported, run_child};

const ROLE: &str = "PMAP_STREAM_FULL_DISK_ROLE";
const DIR: &str = "PMAP_STREAM_FULL_DISK_DIR";
const WRITTEN: &str = "FULL_DISK_WRITTEN=";

/// The byte at offset `at` of the stream.
fn byte_at(at: u64) -> u8 {
    (at * 31 + 7) as u8
}

fn chunk_at(at: u64, len: u64) -> Vec<u8> {
    (at..at + len).map(byte_at).collect()
}

const CHUNK: u64 = 4000;

#[test]
fn full_disk_append_writer_gets_an_error_and_keeps_what_it_wrote() {
    const TEST: &str = "full_disk_append_writer_gets_an_error_and_keeps_what_it_wrote";
    if let Some((_, dir)) = child_role_path(ROLE, DIR) {
        // The child: append until the disk is full.
        let path = dir.join("out.log");
        let mut out = AppendOptions::new().capacity(64 << 10).open(&path).unwrap();
        let mut written = 0u64;
        let error = loop {
            match out.write_all(&chunk_at(written, CHUNK)) {
                Ok(()) => written += CHUNK,
                Err(e) => break e,
            }
            assert!(written < 64 << 20, "wrote far past the size of the disk");
        };
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
        let typed = Error::from_io(error, "write", &path);
        assert!(
            matches!(typed, Error::Map(pmap::Error::NoSpace { .. })),
            "{typed:?}"
        );
        let message = typed.to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("disk space"),
            "{message}"
        );
        // The failed write left nothing behind; the stream still works and finishes.
        assert_eq!(out.len(), written);
        out.sync().unwrap();
        assert_eq!(out.finish().unwrap(), written);
        println!("{WRITTEN}{written}");
        return;
    }

    let disk = Tmpfs::mount("4m");
    let stdout = run_child(
        child_command(TEST).env(ROLE, "writer").env(DIR, disk.dir()),
        "writer",
    );
    let written = reported(&stdout, WRITTEN);
    // Growth falls back from doubling to the bytes needed, so the writer filled the disk to
    // within a chunk and a page.
    assert!(
        written > (4 << 20) - CHUNK - 4096,
        "only {written} bytes written"
    );
    let bytes = fs::read(disk.path("out.log")).unwrap();
    assert_eq!(
        bytes.len() as u64,
        written,
        "finish trimmed to the bytes written"
    );
    assert!(
        bytes == chunk_at(0, written),
        "the bytes written before differ"
    );

    // Re-opening asks for room the full disk does not have: a clear error, the file unchanged.
    let path = disk.path("out.log");
    match AppendOptions::new().capacity(64 << 10).open(&path) {
        Err(Error::Map(pmap::Error::NoSpace { .. })) => {}
        other => panic!("expected NoSpace re-opening on a full disk, got {other:?}"),
    }
    assert!(
        fs::read(&path).unwrap() == bytes,
        "a refused open changed the file"
    );
}

/// Line `n` of the sink tests: numbered, 64 bytes with its newline.
fn sink_line(n: u64) -> String {
    format!("line {n:08} {}\n", "=".repeat(50))
}

/// The child of the sink tests: one thread appends lines through `io::Write` until one fails,
/// checks that the failure is the typed full-disk error, closes the sink and reports how many
/// lines went in.
fn fill_a_sink(dir: &std::path::Path, options: &pmap_stream::LineSinkOptions) {
    let path = dir.join("app.log");
    let sink = options.open(&path).unwrap();
    let mut written = 0u64;
    let error = loop {
        match (&sink).write_all(sink_line(written).as_bytes()) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 1 << 20, "wrote far past the size of the disk");
    };
    assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
    let typed = Error::from_io(error, "write", &path);
    assert!(
        matches!(typed, Error::Map(pmap::Error::NoSpace { .. })),
        "{typed:?}"
    );
    // The next line fails the same way, and closing still trims.
    assert!((&sink).write_all(sink_line(written).as_bytes()).is_err());
    sink.close().unwrap();
    println!("{WRITTEN}{written}");
}

/// The lines in `dir`'s `app.log` and its rolled files, oldest first.
fn sink_lines(dir: &std::path::Path) -> String {
    let mut rolled: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("app.log."))
        .collect();
    rolled.sort();
    rolled.push("app.log".into());
    rolled
        .iter()
        .filter_map(|name| fs::read_to_string(dir.join(name)).ok())
        .collect()
}

#[test]
fn full_disk_line_sink_gets_a_typed_error_and_keeps_the_lines_before() {
    const TEST: &str = "full_disk_line_sink_gets_a_typed_error_and_keeps_the_lines_before";
    if let Some((_, dir)) = child_role_path(ROLE, DIR) {
        fill_a_sink(
            &dir,
            &pmap_stream::LineSinkOptions::new().capacity(64 << 10),
        );
        return;
    }
    let disk = Tmpfs::mount("4m");
    let stdout = run_child(
        child_command(TEST).env(ROLE, "sink").env(DIR, disk.dir()),
        "sink writer",
    );
    let written = reported(&stdout, WRITTEN);
    // Doubling from 64 KiB: the 2 MiB generation fits the 4 MiB disk, the 4 MiB one does not.
    assert!(written * 64 >= 1 << 20, "only {written} lines");
    let expected: String = (0..written).map(sink_line).collect();
    assert!(
        sink_lines(disk.dir()) == expected,
        "the lines before the full disk differ"
    );
}

#[test]
fn full_disk_rolling_line_sink_gets_a_typed_error_and_keeps_every_file() {
    const TEST: &str = "full_disk_rolling_line_sink_gets_a_typed_error_and_keeps_every_file";
    if let Some((_, dir)) = child_role_path(ROLE, DIR) {
        let options = pmap_stream::LineSinkOptions::new()
            .capacity(64 << 10)
            .roll(pmap_stream::Roll::Size(256 << 10));
        fill_a_sink(&dir, &options);
        return;
    }
    let disk = Tmpfs::mount("4m");
    let stdout = run_child(
        child_command(TEST)
            .env(ROLE, "rolling")
            .env(DIR, disk.dir()),
        "rolling sink writer",
    );
    let written = reported(&stdout, WRITTEN);
    // Rolled files are trimmed, so they fill the disk to within a live file's room.
    assert!(written * 64 >= 3 << 20, "only {written} lines");
    let rolled = fs::read_dir(disk.dir()).unwrap().count();
    assert!(rolled >= 12, "{rolled} files");
    let expected: String = (0..written).map(sink_line).collect();
    assert!(
        sink_lines(disk.dir()) == expected,
        "the lines before the full disk differ"
    );
}
