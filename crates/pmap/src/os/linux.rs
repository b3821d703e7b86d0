//! Linux: a shared futex for wait/wake across processes, the creation mode, what the
//! reservation of a file's new blocks needs (which errors mean "cannot allocate here", which
//! mean "no space", and positioned writes for the zero-filling fallback), and the anonymous
//! backing of rings (`memfd_create`).

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

pub(crate) fn set_create_mode(options: &mut OpenOptions, mode: u32) {
    options.mode(mode);
}

/// Whether `fallocate` failed because the file system cannot allocate (some FUSE and NFS
/// mounts: `EOPNOTSUPP`, `EINVAL` for a mode it does not know, `ENOSYS` under old kernels or
/// seccomp filters), so that writing zeros is the way to reserve the blocks.
pub(crate) fn allocation_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS)
    )
}

/// Whether the error says the disk is full (`ENOSPC`) or a quota is exhausted (`EDQUOT`).
pub(crate) fn is_no_space(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::StorageFull || error.raw_os_error() == Some(libc::EDQUOT)
}

/// An error [`allocation_unsupported`] recognises, for tests.
#[cfg(test)]
pub(crate) fn unsupported_allocation_error() -> io::Error {
    io::Error::from_raw_os_error(libc::EOPNOTSUPP)
}

/// `FUTEX_WAIT` without `FUTEX_PRIVATE_FLAG`: the kernel keys the wait on the file page, so a
/// waker in another process that maps the same file finds this waiter.
///
/// # Safety
/// `addr` must point to a 4-aligned word inside a live mapping for the whole call.
pub(crate) unsafe fn wait_u32(addr: *const u32, expected: u32, timeout: Option<Duration>) {
    let timespec = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let timespec_ptr = timespec
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the kernel only reads the word at `addr` (valid per the caller's contract) and the
    // timespec (a live local or null). Any failure (EAGAIN: the value already differs, EINTR,
    // ETIMEDOUT) means "return and let the caller re-check", which is this function's contract.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAIT,
            expected,
            timespec_ptr,
            0usize,
            0u32,
        );
    }
}

/// `FUTEX_WAKE` of every waiter, shared across processes.
///
/// # Safety
/// `addr` must point to a 4-aligned word inside a live mapping for the whole call.
pub(crate) unsafe fn wake_u32(addr: *const u32) {
    // SAFETY: FUTEX_WAKE only uses `addr` to find waiters; it is valid per the caller's
    // contract. A failure leaves nobody woken, which waiters' timeouts tolerate.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
    }
}

pub(crate) use crate::os_unix::{
    current_pid, dont_need, file_identity, lock_range, map_twice, page_size as ring_granularity,
    process_state, read_exact_at, space, unlock_range, unmap_twice, write_all_at, write_at,
};

/// `sched_getcpu`: glibc answers from the thread's `rseq` area (or the vDSO), without a system
/// call; -1 (no such support) is `None`.
#[inline]
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no argument and touches no memory of ours; it returns the
    // processor number or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// The memory behind an anonymous ring: a `memfd_create` file of `len` bytes, which lives in
/// memory only, has no name in any directory, and goes away with its last descriptor and
/// mapping. [`map_twice`] maps it twice; the descriptor may be closed once it has.
pub(crate) fn anonymous_ring_file(len: usize) -> io::Result<Option<std::fs::File>> {
    use std::os::fd::FromRawFd;
    // SAFETY: the name is a NUL-terminated literal that the kernel only reads (it shows in
    // /proc/PID/maps); `memfd_create` touches no other memory of ours.
    let fd = unsafe { libc::memfd_create(c"pmap-ring".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by `memfd_create`, is open and owned by nothing else, so
    // the `File` becomes its one owner and closes it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.set_len(len as u64)?;
    Ok(Some(file))
}

/// `madvise(MADV_POPULATE_WRITE)` over a range of a writable mapping (Linux 5.14+): faults the
/// pages in writable now, as writing each would, so that later stores take no page fault.
/// `Ok(false)` where the kernel does not know the advice (`EINVAL`).
pub(crate) fn populate_write(
    raw: &crate::view::View,
    offset: usize,
    len: usize,
) -> std::io::Result<bool> {
    match raw.advise_range(memmap2::Advice::PopulateWrite, offset, len) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `madvise` of one of the non-destructive advices ([`crate::Advice::DontNeed`] goes through
/// [`dont_need`]) over a range of a mapping. `Ok(false)` where the kernel refuses a huge-page
/// advice (`EINVAL`: built without transparent huge pages, or a file mapping it cannot back
/// with them).
pub(crate) fn advise(
    raw: &crate::view::View,
    offset: usize,
    len: usize,
    advice: crate::Advice,
) -> io::Result<bool> {
    use crate::Advice;
    let advice_value = match advice {
        Advice::Normal => memmap2::Advice::Normal,
        Advice::Sequential => memmap2::Advice::Sequential,
        Advice::Random => memmap2::Advice::Random,
        Advice::WillNeed => memmap2::Advice::WillNeed,
        Advice::HugePage => memmap2::Advice::HugePage,
        Advice::NoHugePage => memmap2::Advice::NoHugePage,
        Advice::DontNeed => return Err(io::ErrorKind::InvalidInput.into()),
    };
    match raw.advise_range(advice_value, offset, len) {
        Ok(()) => Ok(true),
        Err(e) if advice.is_huge_page() && e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Open file description locks serve liveness marks here (`crate::liveness`).
pub(crate) const HAS_MARKS: bool = true;

/// `msync(MS_SYNC)` of a shared file mapping is a data sync of the range here: the kernel
/// (`mm/msync.c`) calls `vfs_fsync_range(file, start, end, datasync = 1)`, which writes the
/// range's dirty pages back, commits the metadata needed to read them and flushes the device
/// cache, as `fdatasync` does for the whole file. A flush therefore needs no `fdatasync` after
/// it; one cost as much again (150-220 us against the `msync`'s 310-490 us on ext4, measured
/// with `strace -T`).
pub(crate) const MSYNC_SYNCS_DATA: bool = true;

/// One `F_OFD_*` call on the byte at `offset`; returns the lock description the kernel filled
/// in (for `F_OFD_GETLK`).
fn ofd_lock(
    file: &std::fs::File,
    command: libc::c_int,
    kind: libc::c_int,
    offset: u64,
) -> io::Result<libc::flock> {
    use std::os::fd::AsRawFd;
    let start =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: `flock` is a plain C struct of integers, for which all zero bytes are a valid
    // value; the fields that matter are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start;
    lock.l_len = 1;
    // OFD locks require `l_pid == 0` (zeroed above).
    // SAFETY: the descriptor is open for the whole call (borrowed from `file`), and `lock` is a
    // live, initialised `flock` that the kernel reads and, for `F_OFD_GETLK`, writes.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), command, &mut lock) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock)
}

/// A new open of `file`'s file, read-only, with an open file description of its own (through
/// `/proc/self/fd`, which names the open file itself, not its path: the same file even when
/// renamed or unlinked). A mark taken on it belongs to no other handle and to no process this
/// one forks before it (a duplicate of a map's descriptor would share the map's description,
/// which a forked child inherits).
pub(crate) fn reopen(file: &std::fs::File) -> io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    std::fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Takes a shared lock on the byte at `offset` for `file`'s open file description, without
/// waiting (no handle ever holds an exclusive one there).
pub(crate) fn hold_mark(file: &std::fs::File, offset: u64) -> io::Result<()> {
    ofd_lock(file, libc::F_OFD_SETLK, libc::F_RDLCK, offset).map(|_| ())
}

/// Tries to take a `kind` lock on the byte at `offset` for `file`'s open file description
/// (an exclusive one needs `file` open for writing), without waiting: `Ok(false)` when another
/// open file description holds a conflicting lock there.
pub(crate) fn try_lock_byte(
    file: &std::fs::File,
    offset: u64,
    kind: crate::Lock,
) -> io::Result<bool> {
    let kind = match kind {
        crate::Lock::Shared => libc::F_RDLCK,
        crate::Lock::Exclusive => libc::F_WRLCK,
        crate::Lock::None => libc::F_UNLCK,
    };
    match ofd_lock(file, libc::F_OFD_SETLK, kind, offset) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a lock call failed because the file system has no byte-range locks (`ENOLCK`,
/// some network and FUSE file systems; `EOPNOTSUPP`, `ENOSYS`).
pub(crate) fn locks_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS)
    )
}

/// Drops `file`'s lock on the byte at `offset`.
pub(crate) fn release_mark(file: &std::fs::File, offset: u64) -> io::Result<()> {
    ofd_lock(file, libc::F_OFD_SETLK, libc::F_UNLCK, offset).map(|_| ())
}

/// Whether another open file description holds a lock on the byte at `offset` (a test for an
/// exclusive lock, which any holder would conflict with; `file`'s own lock never does).
pub(crate) fn mark_held_elsewhere(file: &std::fs::File, offset: u64) -> io::Result<bool> {
    let lock = ofd_lock(file, libc::F_OFD_GETLK, libc::F_WRLCK, offset)?;
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}
