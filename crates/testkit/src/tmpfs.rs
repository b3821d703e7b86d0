//! [`Tmpfs`]: a real small disk for the full-disk tests, and [`fill_until_full`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size mounted on a fresh temporary directory, unmounted on drop. It needs
/// root (as CI runs). A mount that fails fails the test: the full-disk tests never pass by
/// skipping.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `"4m"`).
    ///
    /// # Panics
    /// If `mount` cannot be run or fails.
    #[must_use]
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temporary directory to mount on");
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

    /// The mount point.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The path of `name` in the mount.
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The bytes free on the disk.
    #[must_use]
    pub fn available(&self) -> u64 {
        fs4::available_space(self.dir.path()).expect("the free space of the tmpfs")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Busy (a failing test still holds a file): detach it instead.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Writes a new file at `path`, 4 KiB at a time, until the disk is full; returns the bytes it
/// got.
///
/// # Panics
/// On any error but a full disk.
pub fn fill_until_full(path: &Path) -> u64 {
    let mut file = fs::File::create(path).expect("creating the filler file");
    let chunk = vec![0x5Au8; 4096];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return written,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}
