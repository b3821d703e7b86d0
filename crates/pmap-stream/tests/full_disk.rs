//! An `AppendWriter` on a full disk gets an error from `write`, never a `SIGBUS`, and keeps
//! every byte written before: on a real 4 MiB tmpfs (the test needs root, as CI runs). The
//! writing runs in a child process (this test binary again), so that dying of a signal shows as
//! a failed test rather than a crashed test binary.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pmap_stream::{AppendWriter, Error};

const ROLE: &str = "PMAP_STREAM_FULL_DISK_ROLE";
const DIR: &str = "PMAP_STREAM_FULL_DISK_DIR";
const WRITTEN: &str = "FULL_DISK_WRITTEN=";

/// A tmpfs of a fixed size mounted on a fresh temporary directory, unmounted on drop. A mount
/// that fails fails the test: it never passes by skipping.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Tmpfs { dir },
            Ok(out) => panic!(
                "cannot mount a {size} tmpfs on {} (the full-disk tests need root): {}",
                dir.path().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("cannot run mount (the full-disk tests need it): {e}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Runs `test` of this binary again as a child with `role`, and returns its stdout after
/// checking that it exited, successfully, rather than died of a signal.
fn run_child(test: &str, role: &str, dir: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DIR, dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(signal) = out.status.signal() {
        panic!("the {role} child died of signal {signal} (7 is SIGBUS):\n{stderr}");
    }
    assert!(out.status.success(), "the {role} child failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn child_role() -> Option<(String, PathBuf)> {
    Some((std::env::var(ROLE).ok()?, std::env::var_os(DIR)?.into()))
}

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
    if let Some((_, dir)) = child_role() {
        // The child: append until the disk is full.
        let path = dir.join("out.log");
        let mut out = AppendWriter::with_capacity(&path, 64 << 10).unwrap();
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
    let stdout = run_child(TEST, "writer", disk.path());
    // The harness prints the test's name on the line the child's report joins.
    let written: u64 = stdout
        .split_once(WRITTEN)
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the child reported nothing: {stdout}"))
        .parse()
        .unwrap();
    // Growth falls back from doubling to the bytes needed, so the writer filled the disk to
    // within a chunk and a page.
    assert!(
        written > (4 << 20) - CHUNK - 4096,
        "only {written} bytes written"
    );
    let bytes = fs::read(disk.path().join("out.log")).unwrap();
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
    let path = disk.path().join("out.log");
    match AppendWriter::with_capacity(&path, 64 << 10) {
        Err(Error::Map(pmap::Error::NoSpace { .. })) => {}
        other => panic!("expected NoSpace re-opening on a full disk, got {other:?}"),
    }
    assert!(
        fs::read(&path).unwrap() == bytes,
        "a refused open changed the file"
    );
}
