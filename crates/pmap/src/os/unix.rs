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
/// Inlined (it is on every log write): one relaxed load and a branch once cached.
#[inline]
pub(crate) fn current_pid() -> u32 {
    use std::sync::atomic::Ordering;
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    first_pid()
}

/// The first call of [`current_pid`]: registers the fork handler and caches the id.
#[cold]
#[inline(never)]
fn first_pid() -> u32 {
    use std::sync::atomic::Ordering;
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

/// The file's identity: its device and inode numbers (`None` if `fstat` fails).
pub(crate) fn file_identity(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = file.metadata().ok()?;
    Some((metadata.dev(), metadata.ino()))
}

/// Fills `buf` from file offset `offset` (`pread` until it is full); the cursor is not used.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}

/// Writes all of `buf` at file offset `offset` (`pwrite` until it is written).
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)
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
    raw: &crate::view::View,
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
fn page_range(raw: &crate::view::View, offset: usize, len: usize) -> (*const libc::c_void, usize) {
    let page = page_size();
    let addr = (raw.as_ptr() as usize).wrapping_add(offset);
    let head = addr % page;
    (
        (addr - head) as *const libc::c_void,
        len.saturating_add(head),
    )
}

/// `mlock` of the pages covering a checked range of a live mapping.
pub(crate) fn lock_range(raw: &crate::view::View, offset: usize, len: usize) -> io::Result<()> {
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
pub(crate) fn unlock_range(raw: &crate::view::View, offset: usize, len: usize) -> io::Result<()> {
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

/// A file view placed at the start of a larger reserved range of address space, so that it
/// grows in place: the new pages are mapped behind the old ones (`MAP_FIXED` over the
/// reservation's own `PROT_NONE` pages), the old ones are never unmapped, and the view keeps
/// its address. Unix only: Windows cannot extend a file under a view, so there growth remaps.
#[derive(Debug)]
pub(crate) struct ReservedView {
    /// The reservation's start, page-aligned.
    base: *mut u8,
    /// The reservation's length: whole pages.
    reserved: usize,
    /// Where the view starts after `base`: the file offset's distance from its page.
    head: usize,
    /// The view's length.
    len: usize,
    /// The bytes from `base` that are mapped over the file: whole pages covering the view.
    mapped: usize,
    /// The file offset `base` maps: the view's offset rounded down to a page.
    file_offset: u64,
    writable: bool,
}

// SAFETY: the view owns its mapping (unmapped only in `drop`) and holds nothing tied to a
// thread, as memmap2's `MmapRaw`, which is `Send`: the pointer is only an address of memory
// that the `Core` around it reaches by the same discipline as an `MmapRaw`'s.
unsafe impl Send for ReservedView {}
// SAFETY: as for `Send`; `&ReservedView` reads only the geometry fields.
unsafe impl Sync for ReservedView {}

impl Drop for ReservedView {
    fn drop(&mut self) {
        // SAFETY: `base..base + reserved` is the reservation `map` made, with the views it
        // and `extend` put over it; this is the one unmap. The `Core` that owns this view
        // hands out references only through borrows of itself, so none outlives it.
        unsafe { libc::munmap(self.base.cast::<libc::c_void>(), self.reserved) };
    }
}

fn round_up_to_page(len: usize) -> io::Result<usize> {
    len.checked_next_multiple_of(page_size())
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

fn protection(writable: bool) -> libc::c_int {
    if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    }
}

impl ReservedView {
    /// Maps `len` bytes of `file` from `offset`, at the start of a reservation of room for
    /// `reserve` bytes of view (at least `len`). The caller has checked that the view lies
    /// inside the file and is not empty.
    pub(crate) fn map(
        file: &File,
        offset: u64,
        len: usize,
        reserve: usize,
        writable: bool,
        populate: bool,
    ) -> io::Result<ReservedView> {
        let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
        let head = (offset % page_size() as u64) as usize;
        let reserved = round_up_to_page(head.checked_add(reserve.max(len)).ok_or_else(invalid)?)?;
        let mapped = round_up_to_page(head + len)?;
        // SAFETY: a fresh anonymous `PROT_NONE` mapping at an address the kernel picks: it
        // replaces nothing and no byte of it is reachable until the view is put over it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut view = ReservedView {
            base: base.cast::<u8>(),
            reserved,
            head,
            len: 0,
            mapped: 0,
            file_offset: offset - head as u64,
            writable,
        };
        // From here on `view`'s drop unmaps the reservation if mapping the file fails.
        view.map_pages(file, mapped, populate)?;
        view.len = len;
        Ok(view)
    }

    /// Maps the file over the reservation from `self.mapped` up to `mapped` bytes from the
    /// start (whole pages, at most the reservation).
    fn map_pages(&mut self, file: &File, mapped: usize, populate: bool) -> io::Result<()> {
        if mapped <= self.mapped {
            return Ok(());
        }
        let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
        if mapped > self.reserved {
            return Err(invalid());
        }
        let file_offset = self
            .file_offset
            .checked_add(self.mapped as u64)
            .and_then(|at| libc::off_t::try_from(at).ok())
            .ok_or_else(invalid)?;
        #[cfg(target_os = "linux")]
        let populate_flag = if populate { libc::MAP_POPULATE } else { 0 };
        #[cfg(not(target_os = "linux"))]
        let populate_flag = {
            let _ = populate;
            0
        };
        // SAFETY: `self.mapped..mapped` lies inside the reservation (checked above), whose
        // pages there are still its own `PROT_NONE` ones (`self.mapped` only grows), so
        // `MAP_FIXED` replaces nothing anyone else mapped and no page of the live view. The
        // descriptor is open for the call; `self.mapped` is a whole number of pages, so the
        // file offset is page-aligned as `mmap` requires.
        let at = unsafe { self.base.add(self.mapped) };
        // SAFETY: as above.
        let done = unsafe {
            libc::mmap(
                at.cast::<libc::c_void>(),
                mapped - self.mapped,
                protection(self.writable),
                libc::MAP_SHARED | libc::MAP_FIXED | populate_flag,
                file.as_raw_fd(),
                file_offset,
            )
        };
        if done == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.mapped = mapped;
        Ok(())
    }

    /// The longest the view can become in place.
    pub(crate) fn capacity(&self) -> usize {
        self.reserved - self.head
    }

    /// Makes the view `len` bytes (at most [`Self::capacity`]; the file already holds them):
    /// the pages the old length did not cover are mapped behind it, the others stay.
    pub(crate) fn extend(&mut self, file: &File, len: usize) -> io::Result<()> {
        if len > self.capacity() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let mapped = round_up_to_page(self.head + len)?;
        self.map_pages(file, mapped, false)?;
        self.len = self.len.max(len);
        Ok(())
    }

    /// The view's first byte.
    pub(crate) fn as_mut_ptr(&self) -> *mut u8 {
        // SAFETY: `head < page_size <= mapped`, inside the mapping.
        unsafe { self.base.add(self.head) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The page-aligned address and length covering `offset..offset + len` of the view.
    fn pages(&self, offset: usize, len: usize) -> (*mut libc::c_void, usize) {
        let from_base = self.head + offset;
        let lead = from_base % page_size();
        // SAFETY: the caller checked `offset + len <= self.len`, so `from_base - lead` lies
        // inside the mapped pages.
        let start = unsafe { self.base.add(from_base - lead) };
        (start.cast::<libc::c_void>(), len + lead)
    }

    /// `msync` of a checked range of the view.
    pub(crate) fn sync(&self, offset: usize, len: usize, wait: bool) -> io::Result<()> {
        let (start, len) = self.pages(offset, len);
        let flags = if wait { libc::MS_SYNC } else { libc::MS_ASYNC };
        // SAFETY: whole pages of the live mapping; `msync` writes dirty pages back and
        // changes no byte.
        if unsafe { libc::msync(start, len, flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `madvise` of a checked range of the view with a raw advice.
    ///
    /// # Safety
    /// `advice` changes no byte of the range under a live reference, or the caller argues why
    /// it does not matter (`MADV_DONTNEED` on this shared file mapping: the pages come back
    /// from the page cache).
    pub(crate) unsafe fn advise(
        &self,
        offset: usize,
        len: usize,
        advice: libc::c_int,
    ) -> io::Result<()> {
        let (start, len) = self.pages(offset, len);
        // SAFETY: whole pages of the live mapping; what the advice does to their bytes is the
        // caller's contract.
        if unsafe { libc::madvise(start, len, advice) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
