//! What every Unix shares: probing a process by pid, this process's pid kept fresh across
//! `fork`, free space, positioned writes, `MADV_DONTNEED`, `mlock`, and the double mapping of
//! rings (a reserved range with two `MAP_FIXED` views of one file). Used by both
//! `os/linux.rs` and the other Unixes' `os/fallback.rs`.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// `kill(pid, 0)`: probes for the process without sending a signal.
pub(crate) fn process_state(pid: u32) -> crate::ProcessState {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return crate::ProcessState::Unknown;
    };
    // SAFETY: signal 0 sends nothing; the call only checks that `pid` exists and may be
    // signalled. It touches no memory of ours.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc == 0 {
        return crate::ProcessState::Alive;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => crate::ProcessState::Dead,
        Some(libc::EPERM) => crate::ProcessState::Alive,
        _ => crate::ProcessState::Unknown,
    }
}

/// The cached process id; 0 until the first call.
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static ATFORK: std::sync::Once = std::sync::Once::new();

extern "C" fn refresh_pid_in_child() {
    // Runs in the child right after fork, single-threaded: getpid is async-signal-safe.
    // SAFETY: getpid has no preconditions and touches no memory.
    let pid = unsafe { libc::getpid() };
    PID.store(pid as u32, std::sync::atomic::Ordering::Relaxed);
}

/// This process's id, cached; a `pthread_atfork` child handler refreshes it after a fork.
pub(crate) fn current_pid() -> u32 {
    use std::sync::atomic::Ordering;
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    ATFORK.call_once(|| {
        // SAFETY: the handler is a plain `extern "C" fn` with no captured state that lives for
        // the whole program; registering it has no other precondition. If registration fails
        // (ENOMEM), the cache is never refreshed after a fork: the id below is still right for
        // this process.
        unsafe {
            libc::pthread_atfork(None, None, Some(refresh_pid_in_child));
        }
        PID.store(std::process::id(), Ordering::Relaxed);
    });
    PID.load(Ordering::Relaxed)
}

/// The file system's free and available bytes (`fstatvfs` on the open file, so a relative path
/// and a later `chdir` do not matter), or `None` when the call fails or the file system reports
/// no size (a tmpfs without a limit reports zero blocks).
pub(crate) fn space(file: &File, _path: &Path) -> Option<crate::reserve::Space> {
    let mut stats = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `file` is open for the whole call, so its descriptor is valid; `fstatvfs` only
    // writes a `statvfs` into the buffer we own, which is read only after it reported success.
    let stats = unsafe {
        if libc::fstatvfs(file.as_raw_fd(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    if stats.f_blocks == 0 {
        return None;
    }
    let unit = if stats.f_frsize == 0 {
        stats.f_bsize
    } else {
        stats.f_frsize
    };
    // The field types are u32 on some 32-bit targets, u64 elsewhere.
    #[allow(clippy::unnecessary_cast)]
    let bytes = |blocks: libc::fsblkcnt_t| (blocks as u64).saturating_mul(unit as u64);
    Some(crate::reserve::Space {
        free: bytes(stats.f_bfree),
        available: bytes(stats.f_bavail),
    })
}

/// One positioned write (`pwrite`); the file's cursor is not used.
pub(crate) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    file.write_at(buf, offset)
}

/// `madvise(MADV_DONTNEED)` over a range: the pages leave this process's page tables and the
/// next access faults them in again from the file (on the BSDs and macOS the advice is a hint
/// that may leave the pages resident).
///
/// # Safety
/// `raw` must be a shared file mapping (`MAP_SHARED` over a file), so that the next access
/// reads back the very bytes that were there; on a private anonymous mapping the pages would
/// come back zeroed under any reference into them.
pub(crate) unsafe fn dont_need(
    raw: &memmap2::MmapRaw,
    offset: usize,
    len: usize,
) -> io::Result<bool> {
    // SAFETY: forwarded to the caller: a shared file mapping's contents are re-read from the
    // page cache (dirty pages stay there and reach the file), so no byte under any reference
    // changes.
    unsafe { raw.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) }?;
    Ok(true)
}

/// The page size: what `mmap` offsets and `MAP_FIXED` addresses must be multiples of, and so
/// the allocation granularity of rings.
pub(crate) fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions and touches no memory of ours.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096).max(1)
}

/// The page-aligned start and length covering `offset..offset + len` of `raw`, for `mlock`,
/// which POSIX allows to refuse an unaligned address. The caller has checked the range.
fn page_range(raw: &memmap2::MmapRaw, offset: usize, len: usize) -> (*const libc::c_void, usize) {
    let page = page_size();
    let addr = (raw.as_ptr() as usize).wrapping_add(offset);
    let head = addr % page;
    (
        (addr - head) as *const libc::c_void,
        len.saturating_add(head),
    )
}

/// `mlock` of the pages covering a checked range of a live mapping.
pub(crate) fn lock_range(raw: &memmap2::MmapRaw, offset: usize, len: usize) -> io::Result<()> {
    let (addr, len) = page_range(raw, offset, len);
    // SAFETY: `addr..addr + len` covers whole pages of the live mapping `raw` (the caller
    // checked `offset + len <= raw.len()`, and the page holding the view's first byte is mapped
    // too, as mappings start on a page). `mlock` only pins those pages; it reads and writes no
    // byte of them.
    if unsafe { libc::mlock(addr, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `munlock` of the pages covering a checked range of a live mapping.
pub(crate) fn unlock_range(raw: &memmap2::MmapRaw, offset: usize, len: usize) -> io::Result<()> {
    let (addr, len) = page_range(raw, offset, len);
    // SAFETY: as in `lock_range`: whole pages of the live mapping; `munlock` only unpins them.
    if unsafe { libc::munlock(addr, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Maps a ring's memory: `prefix + capacity` bytes of `file` from its start, then the
/// `capacity` bytes after the prefix again right behind them, so that the ring's data (file
/// bytes `prefix..prefix + capacity`) appears twice in a row in the address space. Returns the
/// start of the `prefix + 2 * capacity` bytes. `prefix` and `capacity` are multiples of
/// [`page_size`] (the caller's contract; `mmap` refuses an unaligned offset with `EINVAL`) and
/// the file is at least `prefix + capacity` bytes long. On Unix every ring has a file (an
/// anonymous one's from `anonymous_ring_file`): `None` is `InvalidInput`.
///
/// The range is reserved first (`PROT_NONE`, no backing), so the two `MAP_FIXED` views replace
/// only pages of that reservation: `MAP_FIXED` over an address this function does not own would
/// silently unmap whatever another part of the process had there.
pub(crate) fn map_twice(
    file: Option<&File>,
    prefix: usize,
    capacity: usize,
) -> io::Result<*mut u8> {
    let file = file.ok_or(io::ErrorKind::InvalidInput)?;
    let too_large = || io::Error::from(io::ErrorKind::InvalidInput);
    let first_len = prefix.checked_add(capacity).ok_or_else(too_large)?;
    let total = first_len.checked_add(capacity).ok_or_else(too_large)?;
    let prefix_offset = libc::off_t::try_from(prefix).map_err(|_| too_large())?;
    // SAFETY: a fresh anonymous `PROT_NONE` mapping at an address the kernel picks: it replaces
    // nothing and no byte of it can be touched until the views below are put over it. Being
    // neither writable nor backed, it is not charged against the commit limit (no
    // `MAP_NORESERVE`, which not every Unix has, is needed).
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let view = |at: *mut libc::c_void, len: usize, offset: libc::off_t| {
        // SAFETY: `at..at + len` lies inside the reservation made above, which this function
        // owns and nothing else in the process knows of, so `MAP_FIXED` replaces only its own
        // `PROT_NONE` pages. The descriptor is open for the call (borrowed from `file`).
        let mapped = unsafe {
            libc::mmap(
                at,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                offset,
            )
        };
        if mapped == libc::MAP_FAILED {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: `first_len <= total`, so the second view's start is inside the reservation.
    let second = unsafe { base.cast::<u8>().add(first_len) }.cast::<libc::c_void>();
    let mapped = view(base, first_len, 0).and_then(|()| view(second, capacity, prefix_offset));
    if let Err(error) = mapped {
        // SAFETY: `base..base + total` is the reservation and whatever views were put over it,
        // all made by this call and handed to no one.
        unsafe { libc::munmap(base, total) };
        return Err(error);
    }
    Ok(base.cast::<u8>())
}

/// Unmaps what [`map_twice`] mapped.
///
/// # Safety
/// `base`, `prefix` and `capacity` are those of one [`map_twice`] call, not unmapped yet, and
/// no reference into the range outlives this call.
pub(crate) unsafe fn unmap_twice(base: *mut u8, prefix: usize, capacity: usize) {
    let total = prefix + 2 * capacity;
    // SAFETY: the caller's contract: the range is exactly one live double mapping that nothing
    // borrows any more. `munmap` of a mapped range only fails for bad arguments, which that
    // contract rules out, so the result is not looked at.
    unsafe { libc::munmap(base.cast::<libc::c_void>(), total) };
}
