//! Every platform but Linux: wait by polling with short, growing sleeps (macOS and Windows have
//! no documented cross-process futex), the creation mode on other Unixes, what the
//! reservation of a file's new blocks needs (which errors mean "cannot allocate here", which
//! mean "no space", and positioned writes for the zero-filling fallback), and the memory of
//! rings: a `shm_open` object on other Unixes, a pagefile section and two views on Windows.

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

/// Fills `buf` from file offset `offset` (`ReadFile` at an offset until it is full; it moves
/// the cursor, which pmap never uses).
#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at file offset `offset` ([`write_at`] until it is written).
#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match write_at(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// No file identity the standard library exposes here (Windows' volume serial and file index
/// need `GetFileInformationByHandle`), so callers cannot tell two opens of one file apart.
#[cfg(not(unix))]
pub(crate) fn file_identity(_file: &File) -> Option<(u64, u64)> {
    None
}

/// No positioned read on this platform.
#[cfg(not(any(unix, windows)))]
pub(crate) fn read_exact_at(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// No positioned write on this platform.
#[cfg(not(any(unix, windows)))]
pub(crate) fn write_all_at(_file: &File, _buf: &[u8], _offset: u64) -> io::Result<()> {
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
    current_pid, dont_need, file_identity, lock_range, process_state, read_exact_at, space,
    unlock_range, write_all_at, write_at,
};

#[cfg(unix)]
#[cfg_attr(target_os = "linux", allow(unused_imports))]
pub(crate) use crate::os_unix::{map_twice, page_size as ring_granularity, unmap_twice};

/// The memory behind an anonymous ring on a Unix without `memfd_create`: a POSIX shared-memory
/// object (`shm_open`, what macOS and the BSDs have), unlinked at once so that no name outlives
/// this call, of `len` bytes. The name only has to be new: this process's id and a counter,
/// with `O_EXCL` and another try when a dead process left the same name behind.
#[cfg(unix)]
pub(crate) fn anonymous_ring_file(len: usize) -> io::Result<Option<std::fs::File>> {
    use std::os::fd::FromRawFd;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // macOS refuses names longer than 31 bytes; this one has 23 at most.
    const TRIES: u32 = 64;
    for _ in 0..TRIES {
        let name = format!(
            "/pmap-{:08x}-{:08x}\0",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // `shm_open` is variadic on Apple's targets, where a `mode_t` (u16) cannot be passed.
        #[cfg(target_vendor = "apple")]
        let mode = 0o600 as libc::c_uint;
        #[cfg(not(target_vendor = "apple"))]
        let mode: libc::mode_t = 0o600;
        // SAFETY: `name` is NUL-terminated (built above) and outlives the call, which only
        // reads it.
        let fd = unsafe {
            libc::shm_open(
                name.as_ptr().cast::<libc::c_char>(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                mode,
            )
        };
        if fd < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EEXIST) {
                continue;
            }
            return Err(error);
        }
        // SAFETY: as for `shm_open`; the object stays alive through `fd`.
        unsafe { libc::shm_unlink(name.as_ptr().cast::<libc::c_char>()) };
        // SAFETY: `fd` was just returned by `shm_open`, is open and owned by nothing else.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.set_len(len as u64)?;
        return Ok(Some(file));
    }
    Err(io::ErrorKind::AlreadyExists.into())
}

#[cfg(windows)]
pub(crate) use windows_ring::{anonymous_ring_file, map_twice, ring_granularity, unmap_twice};

/// Rings on Windows: a section (`CreateFileMappingW`, over the pagefile for an anonymous ring
/// or over the file) viewed twice, back to back, with `MapViewOfFileEx` at addresses found by
/// reserving the whole range and releasing it again. Another thread may take part of the range
/// between the release and the views; a view then fails and the whole attempt starts again
/// (`VirtualAlloc2` placeholders close that window but need Windows 10 1803 and onecore.lib;
/// this uses only kernel32, as std does). Not compiled on the Linux machines pmap is tested
/// on: kept to the documented signatures and nothing more.
#[cfg(windows)]
mod windows_ring {
    use std::ffi::c_void;
    use std::fs::File;
    use std::io;
    use std::os::windows::io::AsRawHandle;

    type Handle = *mut c_void;
    const PAGE_NOACCESS: u32 = 0x01;
    const PAGE_READWRITE: u32 = 0x04;
    const MEM_RESERVE: u32 = 0x2000;
    const MEM_RELEASE: u32 = 0x8000;
    const FILE_MAP_WRITE: u32 = 0x0002;
    const FILE_MAP_READ: u32 = 0x0004;
    /// Attempts before a race with other threads' allocations is reported as an error.
    const TRIES: u32 = 16;

    /// `SYSTEM_INFO` of `GetSystemInfo`, as the Windows SDK lays it out.
    #[repr(C)]
    struct SystemInfo {
        processor_architecture: u16,
        reserved: u16,
        page_size: u32,
        minimum_application_address: *mut c_void,
        maximum_application_address: *mut c_void,
        active_processor_mask: usize,
        number_of_processors: u32,
        processor_type: u32,
        allocation_granularity: u32,
        processor_level: u16,
        processor_revision: u16,
    }

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetSystemInfo(info: *mut SystemInfo);
        fn CreateFileMappingW(
            file: Handle,
            attributes: *const c_void,
            protect: u32,
            size_high: u32,
            size_low: u32,
            name: *const u16,
        ) -> Handle;
        fn MapViewOfFileEx(
            mapping: Handle,
            access: u32,
            offset_high: u32,
            offset_low: u32,
            bytes: usize,
            base: *mut c_void,
        ) -> *mut c_void;
        fn UnmapViewOfFile(base: *const c_void) -> i32;
        fn VirtualAlloc(address: *mut c_void, size: usize, kind: u32, protect: u32) -> *mut c_void;
        fn VirtualFree(address: *mut c_void, size: usize, kind: u32) -> i32;
        fn CloseHandle(handle: Handle) -> i32;
    }

    /// The allocation granularity (64 KiB): views start only at its multiples, in the address
    /// space and in the section alike.
    pub(crate) fn ring_granularity() -> usize {
        let mut info = std::mem::MaybeUninit::<SystemInfo>::zeroed();
        // SAFETY: `GetSystemInfo` fills the struct it is given, which is ours and zeroed, so
        // every field is initialised whatever it writes.
        let info = unsafe {
            GetSystemInfo(info.as_mut_ptr());
            info.assume_init()
        };
        (info.allocation_granularity as usize).max(4096)
    }

    /// No file at all: the section is made over the pagefile by [`map_twice`].
    pub(crate) fn anonymous_ring_file(_len: usize) -> io::Result<Option<File>> {
        Ok(None)
    }

    fn split(value: usize) -> (u32, u32) {
        let value = value as u64;
        ((value >> 32) as u32, value as u32)
    }

    /// As the Unix `map_twice`: `prefix + capacity` bytes of the section from its start, then
    /// the `capacity` bytes after the prefix again right behind them.
    pub(crate) fn map_twice(
        file: Option<&File>,
        prefix: usize,
        capacity: usize,
    ) -> io::Result<*mut u8> {
        let too_large = || io::Error::from(io::ErrorKind::InvalidInput);
        let first_len = prefix.checked_add(capacity).ok_or_else(too_large)?;
        let total = first_len.checked_add(capacity).ok_or_else(too_large)?;
        // INVALID_HANDLE_VALUE: a section over the pagefile.
        let handle = file.map_or(usize::MAX as Handle, |f| f.as_raw_handle());
        let (size_high, size_low) = split(first_len);
        // SAFETY: `handle` is the open file (borrowed for the call) or INVALID_HANDLE_VALUE; no
        // attributes, no name. The call reads nothing else of ours.
        let section = unsafe {
            CreateFileMappingW(
                handle,
                std::ptr::null(),
                PAGE_READWRITE,
                size_high,
                size_low,
                std::ptr::null(),
            )
        };
        if section.is_null() {
            return Err(io::Error::last_os_error());
        }
        let (offset_high, offset_low) = split(prefix);
        let access = FILE_MAP_READ | FILE_MAP_WRITE;
        let mut outcome = Err(io::Error::from(io::ErrorKind::AddrInUse));
        for _ in 0..TRIES {
            // SAFETY: a reservation at an address the system picks, released at once: only
            // its address is used, as a hint for where `total` free bytes were.
            let base = unsafe {
                let base = VirtualAlloc(std::ptr::null_mut(), total, MEM_RESERVE, PAGE_NOACCESS);
                if !base.is_null() {
                    VirtualFree(base, 0, MEM_RELEASE);
                }
                base
            };
            if base.is_null() {
                outcome = Err(io::Error::last_os_error());
                break;
            }
            // SAFETY: `MapViewOfFileEx` never replaces a mapping: it fails when any page of
            // the asked range is in use (another thread took it since the release), and the
            // loop then tries again. The views stay alive after the section handle is closed.
            let first = unsafe { MapViewOfFileEx(section, access, 0, 0, first_len, base) };
            if first.is_null() {
                continue;
            }
            // Not `add`: after the release `base` is no allocation, only an address.
            let second_base = base.cast::<u8>().wrapping_add(first_len).cast::<c_void>();
            // SAFETY: as for the first view; `first_len < total`, so the address lies in the
            // range found free above.
            let second = unsafe {
                MapViewOfFileEx(
                    section,
                    access,
                    offset_high,
                    offset_low,
                    capacity,
                    second_base,
                )
            };
            if second.is_null() {
                // SAFETY: `first` is the view just made, handed to no one.
                unsafe { UnmapViewOfFile(first) };
                continue;
            }
            outcome = Ok(base.cast::<u8>());
            break;
        }
        // SAFETY: the section handle made above; the views keep the section itself alive.
        unsafe { CloseHandle(section) };
        outcome
    }

    /// Unmaps both views of [`map_twice`].
    ///
    /// # Safety
    /// As the Unix `unmap_twice`: one live double mapping, borrowed by nothing.
    pub(crate) unsafe fn unmap_twice(base: *mut u8, prefix: usize, capacity: usize) {
        // SAFETY: the caller's contract: `base` and `base + prefix + capacity` are the starts
        // of the two views `map_twice` made.
        unsafe {
            UnmapViewOfFile(base.add(prefix + capacity).cast::<c_void>());
            UnmapViewOfFile(base.cast::<c_void>());
        }
    }
}

/// No ring memory without Unix or Windows calls for it.
#[cfg(not(any(unix, windows)))]
pub(crate) fn ring_granularity() -> usize {
    4096
}

/// No ring memory without Unix or Windows calls for it: `Unsupported`.
#[cfg(not(any(unix, windows)))]
pub(crate) fn anonymous_ring_file(_len: usize) -> io::Result<Option<File>> {
    Err(io::ErrorKind::Unsupported.into())
}

/// No ring memory without Unix or Windows calls for it: `Unsupported`.
#[cfg(not(any(unix, windows)))]
pub(crate) fn map_twice(
    _file: Option<&File>,
    _prefix: usize,
    _capacity: usize,
) -> io::Result<*mut u8> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Nothing was mapped.
///
/// # Safety
/// None needed; `unsafe` only to match the other platforms' signature.
#[cfg(not(any(unix, windows)))]
pub(crate) unsafe fn unmap_twice(_base: *mut u8, _prefix: usize, _capacity: usize) {}

/// No fork here: the id never changes.
#[cfg(not(unix))]
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// No processor number without a platform call this crate makes here (macOS has none; on
/// Windows `GetCurrentProcessorNumber` would need a bindings crate): callers spread work by
/// thread instead.
#[inline]
pub(crate) fn current_cpu() -> Option<u32> {
    None
}

/// No probe without a platform API: the caller treats the process as alive.
#[cfg(not(unix))]
pub(crate) fn process_state(_pid: u32) -> crate::ProcessState {
    crate::ProcessState::Unknown
}

/// No populate-for-write advice here: the first store to each page faults it in, as usual.
pub(crate) fn populate_write(
    _raw: &crate::view::View,
    _offset: usize,
    _len: usize,
) -> std::io::Result<bool> {
    Ok(false)
}

/// `madvise` of the portable, non-destructive advices on Unix ([`crate::Advice::DontNeed`] goes
/// through [`dont_need`]). Huge-page advice is Linux's: `Ok(false)` here, as is every advice on
/// platforms without `madvise` (Windows: memmap2 exposes none).
pub(crate) fn advise(
    raw: &crate::view::View,
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
    raw: &crate::view::View,
    offset: usize,
    len: usize,
) -> io::Result<bool> {
    let _ = (raw, offset, len);
    Ok(false)
}

/// No `mlock` without Unix (`os/unix.rs` has it): `ErrorKind::Unsupported` (Windows'
/// `VirtualLock` is not wired up: untested here).
#[cfg(not(unix))]
pub(crate) fn lock_range(raw: &crate::view::View, offset: usize, len: usize) -> io::Result<()> {
    let _ = (raw, offset, len);
    Err(io::ErrorKind::Unsupported.into())
}

/// No `munlock` without Unix: `ErrorKind::Unsupported`.
#[cfg(not(unix))]
pub(crate) fn unlock_range(raw: &crate::view::View, offset: usize, len: usize) -> io::Result<()> {
    let _ = (raw, offset, len);
    Err(io::ErrorKind::Unsupported.into())
}

/// No per-open byte-range lock is used here (`crate::liveness`): POSIX record locks are
/// released by any close of the file in the process, and Windows' ranges are not wired yet.
pub(crate) const HAS_MARKS: bool = false;

/// Elsewhere a flushed view's bytes are not known to be durable until the file is synced too:
/// Windows' `FlushViewOfFile` does not flush the file's metadata or the device cache
/// (`FlushFileBuffers` does), and macOS and the BSDs do not promise that `msync` reaches the
/// disk the way `fsync` does.
pub(crate) const MSYNC_SYNCS_DATA: bool = false;

/// Never called where [`HAS_MARKS`] is false.
pub(crate) fn reopen(_file: &std::fs::File) -> std::io::Result<std::fs::File> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Never called where [`HAS_MARKS`] is false.
pub(crate) fn hold_mark(_file: &std::fs::File, _offset: u64) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Never called where [`HAS_MARKS`] is false.
pub(crate) fn try_lock_byte(
    _file: &std::fs::File,
    _offset: u64,
    _kind: crate::Lock,
) -> std::io::Result<bool> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Never called where [`HAS_MARKS`] is false.
pub(crate) fn locks_unsupported(_error: &std::io::Error) -> bool {
    false
}

/// Never called where [`HAS_MARKS`] is false.
pub(crate) fn release_mark(_file: &std::fs::File, _offset: u64) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Never called where [`HAS_MARKS`] is false.
pub(crate) fn mark_held_elsewhere(_file: &std::fs::File, _offset: u64) -> std::io::Result<bool> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
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

    /// The other Unixes' ring memory (a `shm_open` object, compiled on Linux too under test),
    /// mapped twice: a byte written through one view reads back through the other, and the
    /// object's name is gone at once.
    #[cfg(unix)]
    #[test]
    fn a_shared_memory_object_mapped_twice_aliases() {
        let page = super::ring_granularity();
        let file = super::anonymous_ring_file(2 * page).unwrap();
        assert!(file.is_some());
        let base = super::map_twice(file.as_ref(), 0, 2 * page).unwrap();
        drop(file);
        // SAFETY: `base` is a live double mapping of `4 * page` bytes made just above and used
        // by this test alone; it is unmapped at the end, after the last access.
        unsafe {
            base.add(3).write(7);
            base.add(2 * page + 5).write(9);
            assert_eq!(base.add(2 * page + 3).read(), 7);
            assert_eq!(base.add(5).read(), 9);
            super::unmap_twice(base, 0, 2 * page);
        }
        assert!(
            super::map_twice(None, 0, page).is_err(),
            "Unix rings need a file"
        );
        #[cfg(target_os = "linux")]
        {
            let left: Vec<_> = std::fs::read_dir("/dev/shm")
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(&format!("pmap-{:08x}-", std::process::id()))
                })
                .collect();
            assert!(left.is_empty(), "names left behind: {left:?}");
        }
    }

    /// The Unix advice and memory-lock paths (compiled on Linux too under test).
    #[cfg(unix)]
    #[test]
    fn advice_and_memory_locks_on_an_anonymous_range() {
        let raw = crate::view::View::from(memmap2::MmapRaw::from(
            memmap2::MmapOptions::new().len(8192).map_anon().unwrap(),
        ));
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
