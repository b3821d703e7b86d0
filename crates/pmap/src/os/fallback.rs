//! Every platform but Linux: wait by polling with short, growing sleeps (macOS and Windows have
//! no documented cross-process futex), the creation mode on other Unixes, and what the
//! reservation of a file's new blocks needs (which errors mean "cannot allocate here", which
//! mean "no space", and positioned writes for the zero-filling fallback).

#[cfg(not(unix))]
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

#[cfg(unix)]
pub(crate) fn set_create_mode(options: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(mode);
}

#[cfg(not(unix))]
pub(crate) fn set_create_mode(_options: &mut OpenOptions, _mode: u32) {}

/// Whether the allocation failed because the file system cannot allocate, so that writing
/// zeros is the way to reserve the blocks: `ENOTSUP`/`EOPNOTSUPP`, `EINVAL` or `ENOSYS` on Unix.
#[cfg(unix)]
pub(crate) fn allocation_unsupported(error: &io::Error) -> bool {
    error.raw_os_error().is_some_and(|code| {
        code == libc::EOPNOTSUPP
            || code == libc::ENOTSUP
            || code == libc::EINVAL
            || code == libc::ENOSYS
    })
}

/// Whether the allocation failed because the file system cannot allocate, so that writing
/// zeros is the way to reserve the blocks: `ERROR_INVALID_FUNCTION` (1), `ERROR_NOT_SUPPORTED`
/// (50), `ERROR_INVALID_PARAMETER` (87) or `ERROR_CALL_NOT_IMPLEMENTED` (120) on Windows.
#[cfg(not(unix))]
pub(crate) fn allocation_unsupported(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Unsupported
        || matches!(error.raw_os_error(), Some(1 | 50 | 87 | 120))
}

/// Whether the error says the disk is full or a quota is exhausted (`ENOSPC`/`EDQUOT` on
/// Unix; `ERROR_DISK_FULL`, `ERROR_HANDLE_DISK_FULL` and `ERROR_DISK_QUOTA_EXCEEDED` (1295) on
/// Windows).
pub(crate) fn is_no_space(error: &io::Error) -> bool {
    #[cfg(unix)]
    let quota = error.raw_os_error() == Some(libc::EDQUOT);
    #[cfg(not(unix))]
    let quota = error.raw_os_error() == Some(1295);
    error.kind() == io::ErrorKind::StorageFull || quota
}

/// The file system's free and available bytes (`GetDiskFreeSpaceExW` through `fs4`, for the
/// path), or `None` when the call fails or reports no size.
#[cfg(not(unix))]
pub(crate) fn space(_file: &File, path: &std::path::Path) -> Option<crate::reserve::Space> {
    let stats = fs4::statvfs(path).ok()?;
    (stats.total_space() > 0).then(|| crate::reserve::Space {
        free: stats.free_space(),
        available: stats.available_space(),
    })
}

/// One positioned write (`WriteFile` at an offset; it moves the cursor, which pmap never uses).
#[cfg(windows)]
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(file, buf, offset)
}

/// No positioned write on this platform.
#[cfg(not(any(unix, windows)))]
pub(crate) fn write_at(_file: &File, _buf: &[u8], _offset: u64) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// An error [`allocation_unsupported`] recognises, for tests.
#[cfg(all(test, unix))]
pub(crate) fn unsupported_allocation_error() -> io::Error {
    io::Error::from_raw_os_error(libc::EOPNOTSUPP)
}

/// An error [`allocation_unsupported`] recognises, for tests.
#[cfg(all(test, not(unix)))]
pub(crate) fn unsupported_allocation_error() -> io::Error {
    io::Error::from_raw_os_error(50)
}

const FIRST_SLEEP: Duration = Duration::from_micros(20);
const LONGEST_SLEEP: Duration = Duration::from_millis(1);

/// Polls the word until it differs from `expected` or `timeout` passes.
///
/// # Safety
/// `addr` must point to a 4-aligned word inside a live mapping for the whole call.
pub(crate) unsafe fn wait_u32(addr: *const u32, expected: u32, timeout: Option<Duration>) {
    // A timeout too long to add to an instant (`Duration::MAX`) is no deadline, as on Linux,
    // where the futex clamps it; `Instant + Duration` would panic.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut sleep = FIRST_SLEEP;
    loop {
        // SAFETY: aligned and live per the caller's contract; only loaded, and relaxed, which
        // is the load std promises works on read-only memory (the word may be mapped so).
        let now = unsafe { AtomicU32::from_ptr(addr.cast_mut()) }.load(Ordering::Relaxed);
        if now != expected {
            fence(Ordering::Acquire);
            return;
        }
        let nap = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => sleep.min(left),
                _ => return,
            },
            None => sleep,
        };
        std::thread::sleep(nap);
        sleep = (sleep * 2).min(LONGEST_SLEEP);
    }
}

/// Pollers notice changes by themselves.
///
/// # Safety
/// None needed; `unsafe` only to match the Linux signature.
pub(crate) unsafe fn wake_u32(_addr: *const u32) {}

#[cfg(unix)]
// Unused only where this file is compiled beside linux.rs for its tests.
#[cfg_attr(target_os = "linux", allow(unused_imports))]
pub(crate) use crate::os_unix::{
    current_pid, dont_need, lock_range, process_state, space, unlock_range, write_at,
};

/// No fork here: the id never changes.
#[cfg(not(unix))]
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// No probe without a platform API: the caller treats the process as alive.
#[cfg(not(unix))]
pub(crate) fn process_state(_pid: u32) -> crate::ProcessState {
    crate::ProcessState::Unknown
}

/// No populate-for-write advice here: the first store to each page faults it in, as usual.
pub(crate) fn populate_write(
    _raw: &memmap2::MmapRaw,
    _offset: usize,
    _len: usize,
) -> std::io::Result<bool> {
    Ok(false)
}

/// `madvise` of the portable, non-destructive advices on Unix ([`crate::Advice::DontNeed`] goes
/// through [`dont_need`]). Huge-page advice is Linux's: `Ok(false)` here, as is every advice on
/// platforms without `madvise` (Windows: memmap2 exposes none).
pub(crate) fn advise(
    raw: &memmap2::MmapRaw,
    offset: usize,
    len: usize,
    advice: crate::Advice,
) -> io::Result<bool> {
    if advice.is_huge_page() {
        return Ok(false);
    }
    #[cfg(unix)]
    {
        use crate::Advice;
        let advice = match advice {
            Advice::Normal => memmap2::Advice::Normal,
            Advice::Sequential => memmap2::Advice::Sequential,
            Advice::Random => memmap2::Advice::Random,
            Advice::WillNeed => memmap2::Advice::WillNeed,
            Advice::HugePage | Advice::NoHugePage => return Ok(false),
            Advice::DontNeed => return Err(io::ErrorKind::InvalidInput.into()),
        };
        raw.advise_range(advice, offset, len).map(|()| true)
    }
    #[cfg(not(unix))]
    {
        let _ = (raw, offset, len, advice);
        Ok(false)
    }
}

/// No `MADV_DONTNEED` without Unix (`os/unix.rs` has it): `Ok(false)`, nothing done.
///
/// # Safety
/// `raw` must be a shared file mapping (`MAP_SHARED` over a file), so that the next access
/// reads back the very bytes that were there; on a private anonymous mapping the pages could
/// come back zeroed under any reference into them.
#[cfg(not(unix))]
pub(crate) unsafe fn dont_need(
    raw: &memmap2::MmapRaw,
    offset: usize,
    len: usize,
) -> io::Result<bool> {
    let _ = (raw, offset, len);
    Ok(false)
}

/// No `mlock` without Unix (`os/unix.rs` has it): `ErrorKind::Unsupported` (Windows'
/// `VirtualLock` is not wired up: untested here).
#[cfg(not(unix))]
pub(crate) fn lock_range(raw: &memmap2::MmapRaw, offset: usize, len: usize) -> io::Result<()> {
    let _ = (raw, offset, len);
    Err(io::ErrorKind::Unsupported.into())
}

/// No `munlock` without Unix: `ErrorKind::Unsupported`.
#[cfg(not(unix))]
pub(crate) fn unlock_range(raw: &memmap2::MmapRaw, offset: usize, len: usize) -> io::Result<()> {
    let _ = (raw, offset, len);
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use super::{wait_u32, wake_u32};

    fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        // SAFETY: `word` is a live, aligned `AtomicU32` for the whole call.
        unsafe { wait_u32(word.as_ptr(), expected, timeout) }
    }

    #[test]
    fn polling_wait_returns_on_mismatch_and_timeout() {
        let word = AtomicU32::new(5);
        let start = Instant::now();
        wait(&word, 6, Some(Duration::from_secs(30)));
        wait(&word, 5, Some(Duration::from_millis(5)));
        wait(&word, 5, Some(Duration::ZERO));
        assert!(
            start.elapsed() >= Duration::from_millis(5),
            "returned before the timeout"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn polling_wait_takes_a_timeout_too_long_for_an_instant() {
        let word = AtomicU32::new(5);
        // The word already differs, so this returns at once, rather than panicking on the
        // deadline's overflow.
        wait(&word, 6, Some(Duration::MAX));
        let start = Instant::now();
        let joined = std::thread::scope(|s| {
            let waiter = s.spawn(|| wait(&word, 5, Some(Duration::MAX)));
            word.store(7, Ordering::Release);
            waiter.join()
        });
        assert!(joined.is_ok(), "the wait panicked");
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn polling_wait_sees_another_threads_store() {
        let word = Arc::new(AtomicU32::new(0));
        let waiter = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                let start = Instant::now();
                // Long enough that a poller that missed the store fails the assertion below.
                wait(&word, 0, Some(Duration::from_secs(20)));
                (word.load(Ordering::Relaxed), start.elapsed())
            })
        };
        word.store(1, Ordering::Release);
        // SAFETY: a live, aligned word; the poller's wake does nothing anyway.
        unsafe { wake_u32(word.as_ptr()) };
        let (seen, waited) = waiter.join().unwrap();
        assert_eq!(seen, 1);
        assert!(waited < Duration::from_secs(20), "{waited:?}");
    }

    /// The Unix advice and memory-lock paths (compiled on Linux too under test).
    #[cfg(unix)]
    #[test]
    fn advice_and_memory_locks_on_an_anonymous_range() {
        let raw = memmap2::MmapRaw::from(memmap2::MmapOptions::new().len(8192).map_anon().unwrap());
        for advice in crate::Advice::ALL {
            if advice == crate::Advice::DontNeed {
                continue;
            }
            let taken = super::advise(&raw, 3, 5000, advice).unwrap();
            assert_eq!(taken, !advice.is_huge_page(), "{advice:?}");
        }
        super::lock_range(&raw, 3, 100).unwrap();
        super::unlock_range(&raw, 3, 100).unwrap();
    }
}
