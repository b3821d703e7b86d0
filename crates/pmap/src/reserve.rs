//! Extending a file with the disk blocks of its new range reserved, so that a full disk is an
//! error when the file grows rather than a `SIGBUS` when a mapped page is first written.
//!
//! The reservation is `fs4`'s `allocate` (`fallocate` on Linux, `F_PREALLOCATE` on macOS,
//! `SetFileInformationByHandle` on Windows). A file system that cannot allocate (`EOPNOTSUPP`
//! or `EINVAL` from `fallocate`, as some FUSE and NFS mounts answer) gets zeros written over
//! the new range instead, with ordinary positioned writes: the new range only, in chunks,
//! never the existing bytes. A reservation that fails gives the file back its old length.
//!
//! A request larger than the file system's free space is refused before anything is
//! allocated: ext4 would otherwise allocate (or the fallback write) every free block before
//! failing, filling the disk for everyone for as long as that takes.

use std::fs::File;
use std::io;
use std::path::Path;

use fs4::fs_std::FileExt;

use crate::{Error, Result, os};

/// The chunk of zeros the fallback writes at a time.
const ZERO_CHUNK: usize = 64 * 1024;
static ZEROS: [u8; ZERO_CHUNK] = [0; ZERO_CHUNK];

/// A file system's space, in bytes, as `statvfs` reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Space {
    /// Free blocks: the most any request (even root's) can get.
    pub(crate) free: u64,
    /// Blocks available to unprivileged users.
    pub(crate) available: u64,
}

/// Extends `file` to `new_len` bytes with the blocks of the new range reserved. A file already
/// that long is left alone (never shrunk). On failure the file is cut back to the length it had
/// and the error is [`Error::NoSpace`] for a full disk or quota, [`Error::TooLarge`] for a
/// length no file can have, [`Error::Io`] otherwise.
pub(crate) fn extend(file: &File, path: &Path, new_len: u64) -> Result<()> {
    extend_with(file, path, new_len, <File as FileExt>::allocate, |file| {
        os::space(file, path)
    })
}

/// [`extend`] with the allocation and the space query given, so that tests can make the first
/// unsupported and skip the second.
fn extend_with(
    file: &File,
    path: &Path,
    new_len: u64,
    allocate: impl Fn(&File, u64) -> io::Result<()>,
    space: impl Fn(&File) -> Option<Space>,
) -> Result<()> {
    let io_error = |op, source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let old_len = file.metadata().map_err(|e| io_error("stat", e))?.len();
    if new_len <= old_len {
        return Ok(());
    }
    // File offsets are signed: beyond `i64::MAX` no file system takes the length, and
    // `fallocate` would see a negative one (`EINVAL`, which reads as "cannot allocate here").
    if i64::try_from(new_len).is_err() {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            requested: new_len,
        });
    }
    let requested = new_len - old_len;
    let no_space = |source, space: Option<Space>| Error::NoSpace {
        path: path.to_path_buf(),
        requested,
        len: new_len,
        available: space.map(|s| s.available),
        source,
    };
    if let Some(before) = space(file) {
        if requested > before.free {
            let source = io::Error::new(
                io::ErrorKind::StorageFull,
                "more than the file system has free",
            );
            return Err(no_space(source, Some(before)));
        }
    }
    let reserved = loop {
        match allocate(file, new_len) {
            // tmpfs gives up a long fallocate when a signal arrives; what it did is kept or
            // undone, and allocating again is harmless either way.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if os::allocation_unsupported(&e) => break write_zeros(file, old_len, new_len),
            other => break other,
        }
    };
    // `allocate` extends the file; a platform whose allocate does not leaves it to `set_len`.
    let extended = reserved.and_then(|()| match file.metadata()?.len() {
        len if len < new_len => file.set_len(new_len),
        _ => Ok(()),
    });
    let Err(source) = extended else {
        return Ok(());
    };
    // Give back whatever was extended or allocated (a same-length truncate also frees blocks
    // ext4 allocated past the end). Never lengthen a file that is now shorter. The original
    // error is the one worth reporting.
    if file.metadata().is_ok_and(|meta| meta.len() >= old_len) {
        let _ = file.set_len(old_len);
    }
    if os::is_no_space(&source) {
        Err(no_space(source, space(file)))
    } else {
        Err(io_error("allocate", source))
    }
}

/// Writes zeros over `from..to` with positioned writes, `ZERO_CHUNK` bytes at a time.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(ZERO_CHUNK, |left| left.min(ZERO_CHUNK));
        match os::write_at(file, &ZEROS[..n], at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => at += written as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn unsupported(_: &File, _: u64) -> io::Result<()> {
        Err(os::unsupported_allocation_error())
    }

    /// No space figures: the request goes straight to the allocation.
    fn unknown(_: &File) -> Option<Space> {
        None
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 1) as u8).collect()
    }

    fn open_rw(path: &Path) -> File {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn the_fallback_writes_zeros_over_the_new_range_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, pattern(10_000)).unwrap();
        let file = open_rw(&path);
        let calls = AtomicU32::new(0);
        // Not a multiple of the chunk, so the last write is a short one.
        let new_len = 10_000 + 3 * ZERO_CHUNK as u64 + 123;
        let counted = |f: &File, len| {
            calls.fetch_add(1, Ordering::Relaxed);
            unsupported(f, len)
        };
        extend_with(&file, &path, new_len, counted, unknown).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, new_len);
        assert_eq!(&bytes[..10_000], &pattern(10_000)[..]);
        assert!(bytes[10_000..].iter().all(|&b| b == 0));
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // Written blocks, not a hole: the file system allocated the whole length.
            let allocated = fs::metadata(&path).unwrap().blocks() * 512;
            assert!(
                allocated >= new_len / 4096 * 4096,
                "{allocated} of {new_len}"
            );
        }
        // Never shrinks, never allocates when the file is long enough.
        extend_with(&file, &path, 5, |_, _| panic!("allocated"), unknown).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), new_len);
    }

    #[test]
    fn a_failed_reservation_cuts_the_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, pattern(5000)).unwrap();
        let file = open_rw(&path);
        // An allocator that extends the file, then reports a full disk (as ext4 may, having
        // allocated part of the range).
        let full = |f: &File, len: u64| {
            f.set_len(len / 2)?;
            Err(io::Error::from(io::ErrorKind::StorageFull))
        };
        match extend_with(&file, &path, 1 << 20, full, unknown) {
            Err(Error::NoSpace {
                requested,
                len,
                available: None,
                ..
            }) => assert_eq!((requested, len), ((1 << 20) - 5000, 1 << 20)),
            other => panic!("expected NoSpace, got {other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), pattern(5000));
        // Any other failure is an I/O error, also cut back.
        let broken = |f: &File, len: u64| {
            f.set_len(len)?;
            Err(io::Error::other("broken"))
        };
        assert!(matches!(
            extend_with(&file, &path, 1 << 20, broken, unknown),
            Err(Error::Io { op: "allocate", .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), pattern(5000));
    }

    #[test]
    fn a_request_beyond_the_free_space_or_any_file_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, pattern(100)).unwrap();
        let file = open_rw(&path);
        let never = |_: &File, _: u64| -> io::Result<()> { panic!("allocated") };
        let small = |_: &File| {
            Some(Space {
                free: 1000,
                available: 500,
            })
        };
        match extend_with(&file, &path, 1101, never, small) {
            Err(Error::NoSpace {
                requested: 1001,
                len: 1101,
                available: Some(500),
                source,
                ..
            }) => assert_eq!(source.kind(), io::ErrorKind::StorageFull),
            other => panic!("expected NoSpace, got {other:?}"),
        }
        // Exactly the free space goes on to the allocation.
        extend_with(&file, &path, 1100, |f, len| f.set_len(len), small).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 1100);
        // No file is longer than i64::MAX bytes.
        assert!(matches!(
            extend_with(&file, &path, 1 << 63, never, unknown),
            Err(Error::TooLarge { requested, .. }) if requested == 1 << 63
        ));
        assert_eq!(fs::metadata(&path).unwrap().len(), 1100);
    }

    #[cfg(unix)]
    #[test]
    fn a_full_disk_and_an_exhausted_quota_are_no_space() {
        assert!(os::is_no_space(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(os::is_no_space(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!os::is_no_space(&io::Error::from_raw_os_error(libc::EFBIG)));
        assert!(os::allocation_unsupported(
            &os::unsupported_allocation_error()
        ));
        assert!(!os::allocation_unsupported(&io::Error::from_raw_os_error(
            libc::ENOSPC
        )));
    }

    /// A real full disk (a 1 MiB tmpfs; needs root, as CI runs), with the free-space check
    /// skipped so that the allocation itself fails: `fallocate`, and the zero-writing fallback.
    /// Each is `NoSpace`, and the blocks taken before the failure are given back.
    #[cfg(target_os = "linux")]
    #[test]
    fn full_disk_a_failed_allocation_or_fallback_is_no_space_and_gives_the_blocks_back() {
        let disk = pounds_testkit::Tmpfs::mount("1m");
        let dir = disk.dir();
        let free = || os::space(&File::open(dir).unwrap(), dir).unwrap();
        let path = dir.join("f");
        fs::write(&path, pattern(5000)).unwrap();
        // The old bytes hold two pages.
        assert_eq!(free().available, (1 << 20) - 2 * 4096);
        let file = open_rw(&path);
        let fallocate = <File as FileExt>::allocate;
        let real = |f: &File| os::space(f, &path);
        for (name, result) in [
            (
                "fallocate",
                extend_with(&file, &path, 2 << 20, fallocate, unknown),
            ),
            (
                "fallback",
                extend_with(&file, &path, 2 << 20, unsupported, unknown),
            ),
        ] {
            match result {
                Err(Error::NoSpace {
                    requested,
                    available,
                    source,
                    ..
                }) => {
                    assert_eq!(requested, (2 << 20) - 5000, "{name}");
                    assert_eq!(available, None, "{name}: the space query was skipped");
                    assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{name}");
                }
                other => panic!("{name}: expected NoSpace, got {other:?}"),
            }
            assert_eq!(fs::read(&path).unwrap(), pattern(5000), "{name}");
            assert_eq!(free().available, (1 << 20) - 2 * 4096, "{name}");
        }
        // With the check, the same request is refused before anything is allocated.
        assert!(matches!(
            extend_with(&file, &path, 2 << 20, never_allocate, real),
            Err(Error::NoSpace { .. })
        ));
        // What fits is reserved: the file system's free space drops by it.
        extend_with(&file, &path, 512 << 10, unsupported, real).unwrap();
        assert_eq!(free().available, 512 << 10);
        extend_with(&file, &path, 768 << 10, fallocate, real).unwrap();
        assert_eq!(free().available, 256 << 10);
    }

    fn never_allocate(_: &File, _: u64) -> io::Result<()> {
        panic!("allocated")
    }
}
