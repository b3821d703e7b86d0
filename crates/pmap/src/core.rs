//! The state both mapping types share: the file, the view geometry and the raw mapping.
//!
//! Every remap goes through [`Core::remap_file`], which drops the old view *before* the
//! file's length changes: Windows refuses to resize a file while a view of it is mapped, and
//! doing it the same way everywhere keeps one code path. Growth takes `&mut self` in the public
//! types, so no slice into the old view can outlive it. The one exception is a view with
//! reserved address space (Unix only, `Core::grow_in_place`): the file is extended under it
//! and the new pages are mapped behind the old ones, which stay.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use fs4::fs_std::FileExt;
use memmap2::{MmapOptions, MmapRaw};

use crate::view::View;

use crate::{Error, Lock, Result, os};

pub(crate) const ANONYMOUS: &str = "<anonymous>";

pub(crate) struct Core {
    raw: Option<View>,
    file: Option<File>,
    path: PathBuf,
    writable: bool,
    /// Whether the file was opened for writing, so that a read-only view of it can become
    /// writable by mapping it again (`set_writable`).
    handle_writable: bool,
    offset: u64,
    fixed_len: Option<usize>,
    populate: bool,
    /// The address space to reserve for a file view (`MapOptions::reserve_address_space`), so
    /// that growth and refresh up to it keep the view in place (Unix only).
    reserve: Option<usize>,
    /// The advisory lock this handle holds. `flock` (Unix) converts a held lock and ignores an
    /// unlock of nothing, but Windows' `LockFileEx` stacks locks on one handle (a second
    /// exclusive lock conflicts with the first, so a blocking relock waits forever) and
    /// `UnlockFile` fails when nothing is locked. Tracking the lock gives the `flock` behaviour
    /// everywhere. A mutex, not an atomic, so that two threads locking one `SharedMap` cannot
    /// both take (and stack) the lock.
    held: Mutex<Lock>,
    /// The view is a copy of the file in private memory, not a mapping of it
    /// (`MapOptions::memory_copy`): read from the file by positioned reads when mapped, written
    /// to it only by `write_file_at` and `write_back`.
    memory_copy: bool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("len", &self.len())
            .field("writable", &self.writable)
            .field("fixed_len", &self.fixed_len.is_some())
            .field("memory_copy", &self.memory_copy)
            .finish()
    }
}

fn to_usize(value: u64, path: &Path) -> Result<usize> {
    usize::try_from(value).map_err(|_| Error::TooLarge {
        path: path.to_path_buf(),
        requested: value,
    })
}

impl Core {
    pub(crate) fn new(
        file: File,
        path: PathBuf,
        writable: bool,
        offset: u64,
        fixed_len: Option<usize>,
    ) -> Self {
        Core {
            raw: None,
            file: Some(file),
            path,
            writable,
            handle_writable: writable,
            offset,
            fixed_len,
            populate: false,
            reserve: None,
            held: Mutex::new(Lock::None),
            memory_copy: false,
        }
    }

    pub(crate) fn anonymous(len: usize) -> Result<Self> {
        let path = PathBuf::from(ANONYMOUS);
        if len == 0 {
            return Err(Error::ZeroLength { path });
        }
        let raw = map_anonymous(len)?;
        Ok(Core {
            raw: Some(raw),
            file: None,
            path,
            writable: true,
            handle_writable: true,
            offset: 0,
            fixed_len: None,
            populate: false,
            reserve: None,
            held: Mutex::new(Lock::None),
            memory_copy: false,
        })
    }

    /// Makes the next view a copy of the file in private memory instead of a mapping
    /// (`MapOptions::memory_copy`); set before the first `map_view`.
    pub(crate) fn set_memory_copy(&mut self, memory_copy: bool) {
        self.memory_copy = memory_copy;
    }

    #[inline]
    pub(crate) fn is_memory_copy(&self) -> bool {
        self.memory_copy
    }

    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    #[inline]
    pub(crate) fn is_writable(&self) -> bool {
        self.writable
    }

    #[inline]
    pub(crate) fn is_fixed_length(&self) -> bool {
        self.fixed_len.is_some()
    }

    #[inline]
    pub(crate) fn is_anonymous(&self) -> bool {
        self.file.is_none()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.raw.as_ref().map_or(0, View::len)
    }

    /// Whether `self` and `other` map the same file (not merely files at the same path):
    /// `Some` where the platform gives a file identity (device and inode on Unix), `None`
    /// elsewhere or for anonymous mappings.
    pub(crate) fn same_file(&self, other: &Core) -> Option<bool> {
        let (a, b) = (self.file.as_ref()?, other.file.as_ref()?);
        Some(os::file_identity(a)? == os::file_identity(b)?)
    }

    pub(crate) fn take_liveness_mark(&self) -> Result<Option<crate::LivenessMark>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        if !crate::os::HAS_MARKS {
            return Ok(None);
        }
        // An open file description of its own (not a duplicate of the map's, which a forked
        // child shares), so that the processes holding it are exactly those holding the mark;
        // a duplicate where `/proc` is not mounted.
        let file = match crate::os::reopen(file) {
            Ok(own) => own,
            Err(_) => file.try_clone().map_err(self.io("dup"))?,
        };
        crate::LivenessMark::on_file(file, &self.path)
    }

    pub(crate) fn file_len(&self) -> Result<u64> {
        match &self.file {
            Some(file) => Ok(file.metadata().map_err(self.io("stat"))?.len()),
            None => Ok(self.len() as u64),
        }
    }

    /// Cuts the file to `len` bytes (only `trim` shortens a file). Only ever called while no
    /// view is mapped (see the module doc).
    fn set_file_len(&self, len: u64) -> Result<()> {
        debug_assert!(self.raw.is_none(), "resizing a file under a live view");
        if let Some(file) = &self.file {
            file.set_len(len).map_err(self.io("resize"))?;
        }
        Ok(())
    }

    /// Extends the file to `len` bytes if it is shorter, with the disk blocks of the new range
    /// reserved before anything maps them ([`crate::reserve`]): a full disk is
    /// [`Error::NoSpace`] here, with the file at its old length, never a `SIGBUS` later. Only
    /// ever called while no view is mapped (see the module doc).
    pub(crate) fn extend_file(&self, len: u64) -> Result<()> {
        debug_assert!(self.raw.is_none(), "resizing a file under a live view");
        match &self.file {
            Some(file) => crate::reserve::extend(file, &self.path, len),
            None => Ok(()),
        }
    }

    #[inline]
    pub(crate) fn require_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::ReadOnlyMapping {
                path: self.path.clone(),
                op,
            })
        }
    }

    /// Asks for `len` bytes of address space for the view (see [`crate::MapOptions::reserve_address_space`]),
    /// taking effect at the next mapping.
    pub(crate) fn set_reservation(&mut self, len: Option<usize>) {
        self.reserve = len;
    }

    /// The bytes the view can have without moving: its reservation, or its length.
    pub(crate) fn reserved_len(&self) -> usize {
        self.raw.as_ref().map_or(0, View::capacity)
    }

    /// Maps the view over the file as it is now: the fixed length, or to the end of the file.
    pub(crate) fn map_view(&mut self, populate: bool) -> Result<()> {
        self.populate = populate;
        if self.file.is_none() {
            return Ok(());
        }
        let file_len = self.file_len()?;
        let view_len = match self.fixed_len {
            Some(len) => len as u64,
            None => file_len.saturating_sub(self.offset),
        };
        self.map_len(view_len, file_len)
    }

    /// Maps `view_len` bytes from the view's offset, checked against the file's length.
    fn map_len(&mut self, view_len: u64, file_len: u64) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let end = self.offset.checked_add(view_len);
        if end.is_none_or(|end| end > file_len) {
            return Err(Error::ViewPastEnd {
                path: self.path.clone(),
                offset: self.offset,
                len: view_len,
                file_len,
            });
        }
        if view_len == 0 {
            return Err(Error::ZeroLength {
                path: self.path.clone(),
            });
        }
        if self.memory_copy {
            let copy = map_anonymous(to_usize(view_len, &self.path)?)?;
            // SAFETY: `copy` is a private anonymous mapping of `copy.len()` bytes made just
            // now: nothing else in this process refers to it (it is not yet in `self.raw`) and
            // no other process can see it, so this is its only reference while it lives.
            let bytes = unsafe { std::slice::from_raw_parts_mut(copy.as_mut_ptr(), copy.len()) };
            os::read_exact_at(file, bytes, self.offset).map_err(self.io("read"))?;
            self.raw = Some(copy);
            return Ok(());
        }
        #[cfg(unix)]
        if let (Some(reserve), None) = (self.reserve, self.fixed_len) {
            // A growable view with room to grow in place (a fixed view never grows).
            let view = crate::os_unix::ReservedView::map(
                file,
                self.offset,
                to_usize(view_len, &self.path)?,
                reserve,
                self.writable,
                self.populate,
            );
            self.raw = Some(View::Reserved(view.map_err(self.io("map"))?));
            return Ok(());
        }
        let mut options = MmapOptions::new();
        options
            .offset(self.offset)
            .len(to_usize(view_len, &self.path)?);
        if self.populate {
            options.populate();
        }
        let raw = if self.writable {
            options.map_raw(file)
        } else {
            options.map_raw_read_only(file)
        };
        self.raw = Some(View::Plain(raw.map_err(self.io("map"))?));
        Ok(())
    }

    /// Makes a reserved view `new_len` bytes in place when its reservation has room: the file
    /// is extended to hold them first when `extend` (growth; `refresh` finds them there), under
    /// the live view, which Unix allows (reserved views exist only there; Windows, which does
    /// not, always remaps). Returns whether it did; on error the view keeps its old length
    /// and address.
    fn grow_in_place(&mut self, new_len: usize, extend: bool) -> Result<bool> {
        #[cfg(unix)]
        {
            let (Some(View::Reserved(view)), Some(file)) = (&self.raw, &self.file) else {
                return Ok(false);
            };
            if new_len > view.capacity() {
                return Ok(false);
            }
            if extend {
                let end =
                    self.offset
                        .checked_add(new_len as u64)
                        .ok_or_else(|| Error::TooLarge {
                            path: self.path.clone(),
                            requested: new_len as u64,
                        })?;
                crate::reserve::extend(file, &self.path, end)?;
            }
            let extended = match (&mut self.raw, &self.file) {
                (Some(View::Reserved(view)), Some(file)) => view.extend(file, new_len),
                _ => Ok(()),
            };
            extended.map_err(self.io("map"))?;
            Ok(true)
        }
        #[cfg(not(unix))]
        {
            let _ = (new_len, extend);
            Ok(false)
        }
    }

    /// Drops the view, extends the file to `offset + new_len` if that is larger (reserving the
    /// new blocks), and maps again. If extending or mapping fails the old length is mapped
    /// again when possible.
    fn remap_file(&mut self, new_len: Option<usize>) -> Result<()> {
        let old_len = self.len();
        self.raw = None;
        let result = match new_len {
            Some(len) => self
                .offset
                .checked_add(len as u64)
                .ok_or_else(|| Error::TooLarge {
                    path: self.path.clone(),
                    requested: len as u64,
                })
                .and_then(|end| self.extend_file(end))
                .and_then(|()| self.map_view(self.populate)),
            None => self.map_view(self.populate),
        };
        if result.is_err() && old_len > 0 && self.raw.is_none() {
            // Best effort: keep a usable view of what was there, at its old length: the file's
            // end may be the very size that just failed to map (a length the file system took
            // but no address space holds). A file that shrank below the old view gets no view.
            // The original error is the one worth reporting.
            if let Ok(file_len) = self.file_len() {
                let _ = self.map_len(old_len as u64, file_len);
            }
        }
        result
    }

    /// Makes the view writable or read-only by mapping the file again through the handle this
    /// core holds (the path is not opened again): the view's offset and length stay, its
    /// address may change, which `&mut self` in the public types makes harmless. On error the
    /// view is mapped as it was.
    pub(crate) fn set_writable(&mut self, writable: bool) -> Result<()> {
        if writable == self.writable {
            return Ok(());
        }
        let op = if writable {
            "making the view writable"
        } else {
            "making the view read-only"
        };
        if self.file.is_none() {
            return Err(Error::Unsupported {
                path: self.path.clone(),
                op,
                reason: "an anonymous mapping has no file to map again",
            });
        }
        if writable && !self.handle_writable {
            return Err(Error::Unsupported {
                path: self.path.clone(),
                op,
                reason: "the file was opened read-only: open it read-write (and make it \
                         read-only) to convert both ways",
            });
        }
        if self.memory_copy {
            // The copy's memory is always writable; only the checks change.
            self.writable = writable;
            return Ok(());
        }
        let old_len = self.len() as u64;
        // Before the old view goes, so that a failing `stat` leaves it in place.
        let file_len = self.file_len()?;
        self.raw = None;
        self.writable = writable;
        let mapped = self.map_len(old_len, file_len);
        if mapped.is_err() {
            // Best effort, as in `remap_file`: the view as it was; the first error is the one
            // to report.
            self.writable = !writable;
            let _ = self.map_len(old_len, file_len);
        }
        mapped
    }

    pub(crate) fn grow(&mut self, new_len: usize) -> Result<()> {
        if new_len <= self.len() {
            return Ok(());
        }
        self.require_writable("grow")?;
        if let Some(len) = self.fixed_len {
            return Err(Error::FixedLength {
                path: self.path.clone(),
                len,
            });
        }
        if self.memory_copy {
            let end = self
                .offset
                .checked_add(new_len as u64)
                .ok_or_else(|| Error::TooLarge {
                    path: self.path.clone(),
                    requested: new_len as u64,
                })?;
            if let Some(file) = &self.file {
                crate::reserve::extend(file, &self.path, end)?;
            }
        }
        if self.file.is_none() || self.memory_copy {
            let grown = map_anonymous(new_len)?;
            if let Some(old) = &self.raw {
                // SAFETY: `old` and `grown` are two distinct live mappings; `old.len()` bytes
                // are readable in the first and writable in the second (`new_len > old.len()`).
                // `&mut self` means no other reference into `old` exists in this process, and
                // an anonymous private mapping (a memory copy's too) is visible to no other
                // process.
                unsafe {
                    std::ptr::copy_nonoverlapping(old.as_ptr(), grown.as_mut_ptr(), old.len());
                }
            }
            self.raw = Some(grown);
            return Ok(());
        }
        if self.grow_in_place(new_len, true)? {
            return Ok(());
        }
        self.remap_file(Some(new_len))
    }

    /// Grows to at least `min_len`, doubling; when the doubled size does not fit on the disk,
    /// to `min_len` exactly, which is what the caller needs (an append writer near a full disk
    /// keeps appending until the bytes themselves do not fit).
    pub(crate) fn reserve(&mut self, min_len: usize) -> Result<()> {
        let len = self.len();
        if min_len <= len {
            return Ok(());
        }
        let doubled = min_len.max(len.saturating_mul(2));
        match self.grow(doubled) {
            Err(Error::NoSpace { .. }) if doubled > min_len => self.grow(min_len),
            other => other,
        }
    }

    pub(crate) fn refresh(&mut self) -> Result<bool> {
        // A memory copy does not follow the file: other handles' writes are not in it.
        if self.file.is_none() || self.fixed_len.is_some() || self.memory_copy {
            return Ok(false);
        }
        let file_len = self.file_len()?;
        let now = file_len.saturating_sub(self.offset);
        if now == self.len() as u64 {
            return Ok(false);
        }
        if now > self.len() as u64 && self.grow_in_place(to_usize(now, &self.path)?, false)? {
            return Ok(true);
        }
        self.remap_file(None)?;
        Ok(true)
    }

    /// Writes `data` at view offset `offset` through the file, by a positioned write (`pwrite`
    /// on Unix, `WriteFile` at an offset on Windows), not through the view: the bytes must lie
    /// inside the view (a positioned write never grows the file; growth reserves its blocks),
    /// and the file must be open for writing.
    pub(crate) fn write_file_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.require_writable("write_file_at")?;
        self.bounds(offset, data.len())?;
        let Some(file) = &self.file else {
            return Err(Error::ReadOnlyMapping {
                path: self.path.clone(),
                op: "write_file_at",
            });
        };
        let at = self.offset + offset as u64;
        os::write_all_at(file, data, at).map_err(|source| {
            if os::is_no_space(&source) {
                Error::NoSpace {
                    path: self.path.clone(),
                    requested: data.len() as u64,
                    len: at + data.len() as u64,
                    available: None,
                    source,
                }
            } else {
                Error::Io {
                    op: "pwrite",
                    path: self.path.clone(),
                    source,
                }
            }
        })
    }

    /// Flushing a read-only view has nothing to write back, and on Windows `FlushFileBuffers`
    /// fails on a handle without write access, so read-only views skip it.
    pub(crate) fn flush(&self) -> Result<()> {
        if let (Some(file), true, true) = (&self.file, self.writable, self.memory_copy) {
            // What was written back is in the file; the copy itself is not the file.
            return file.sync_data().map_err(self.io("sync"));
        }
        if let (Some(raw), Some(file), true) = (&self.raw, &self.file, self.writable) {
            raw.flush().map_err(self.io("flush"))?;
            if !os::MSYNC_SYNCS_DATA {
                file.sync_data().map_err(self.io("sync"))?;
            }
        }
        Ok(())
    }

    pub(crate) fn flush_async(&self) -> Result<()> {
        if self.memory_copy {
            // Positioned writes are in the page cache already; the kernel writes them back.
            return Ok(());
        }
        if let (Some(raw), Some(_), true) = (&self.raw, &self.file, self.writable) {
            raw.flush_async().map_err(self.io("flush"))?;
        }
        Ok(())
    }

    pub(crate) fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
        self.bounds(offset, len)?;
        if self.memory_copy {
            return self.flush();
        }
        if let (Some(raw), Some(file), true) = (&self.raw, &self.file, self.writable) {
            if len > 0 {
                raw.flush_range(offset, len).map_err(self.io("flush"))?;
            }
            if len == 0 || !os::MSYNC_SYNCS_DATA {
                file.sync_data().map_err(self.io("sync"))?;
            }
        }
        Ok(())
    }

    /// Faults the pages of a range in writable now (see [`crate::SharedMap::populate_for_write`]).
    pub(crate) fn populate_for_write(&self, offset: usize, len: usize) -> Result<bool> {
        self.bounds(offset, len)?;
        self.require_writable("populate for write")?;
        match &self.raw {
            Some(raw) if len > 0 => {
                crate::os::populate_write(raw, offset, len).map_err(self.io("populate"))
            }
            _ => Ok(false),
        }
    }

    /// Passes `advice` for a range to the kernel (see [`crate::Map::advise`]).
    pub(crate) fn advise(&self, offset: usize, len: usize, advice: crate::Advice) -> Result<bool> {
        self.bounds(offset, len)?;
        let Some(raw) = &self.raw else {
            return Ok(false);
        };
        if advice == crate::Advice::DontNeed && (self.file.is_none() || self.memory_copy) {
            return Err(Error::Unsupported {
                path: self.path.clone(),
                op: "DontNeed advice",
                reason: "it would zero an anonymous mapping",
            });
        }
        if len == 0 {
            return Ok(false);
        }
        let taken = if advice == crate::Advice::DontNeed {
            // SAFETY: `self.file` is set (checked above), so `raw` was mapped by `map_len`
            // with `map_raw` or `map_raw_read_only`, or as a `ReservedView`, all `MAP_SHARED`
            // over the file: after
            // `MADV_DONTNEED` the next access faults the page in again from the page cache,
            // where dirty pages stay until they are written back, so every byte reads as it
            // did and no reference into the view sees a change this call made.
            unsafe { crate::os::dont_need(raw, offset, len) }
        } else {
            crate::os::advise(raw, offset, len, advice)
        };
        taken.map_err(self.io("advise"))
    }

    /// `mlock` (`lock == true`) or `munlock` of the pages covering a range.
    pub(crate) fn lock_memory(&self, offset: usize, len: usize, lock: bool) -> Result<()> {
        self.bounds(offset, len)?;
        let Some(raw) = &self.raw else {
            return Ok(());
        };
        if len == 0 {
            return Ok(());
        }
        let op = if lock { "lock" } else { "unlock" };
        let result = if lock {
            crate::os::lock_range(raw, offset, len)
        } else {
            crate::os::unlock_range(raw, offset, len)
        };
        result.map_err(|source| {
            if source.kind() == std::io::ErrorKind::Unsupported {
                Error::Unsupported {
                    path: self.path.clone(),
                    op: if lock {
                        "locking memory"
                    } else {
                        "unlocking memory"
                    },
                    reason: "pmap has no memory-lock call on this platform",
                }
            } else {
                Error::MemoryLock {
                    op,
                    path: self.path.clone(),
                    offset,
                    len,
                    source,
                }
            }
        })
    }

    /// Takes `lock`. Holding it already is a no-op; holding the other kind converts, as `flock`
    /// does: the held lock is released first (so a conversion that fails leaves none, which is
    /// also what Linux's `flock` does).
    pub(crate) fn lock(&self, lock: Lock, wait: bool) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if lock == Lock::None {
            return Ok(());
        }
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if *held == lock {
            return Ok(());
        }
        if *held != Lock::None {
            FileExt::unlock(file).map_err(self.io("unlock"))?;
            *held = Lock::None;
        }
        let taken = match (lock, wait) {
            (Lock::None, _) => return Ok(()),
            (Lock::Shared, true) => FileExt::lock_shared(file).map(|()| true),
            (Lock::Exclusive, true) => FileExt::lock_exclusive(file).map(|()| true),
            (Lock::Shared, false) => FileExt::try_lock_shared(file),
            (Lock::Exclusive, false) => FileExt::try_lock_exclusive(file),
        };
        match taken.map_err(self.io("lock"))? {
            true => {
                *held = lock;
                Ok(())
            }
            false => Err(Error::LockContended {
                path: self.path.clone(),
                kind: lock,
            }),
        }
    }

    /// Releases the lock this handle holds; holding none is a no-op (no system call, which on
    /// Windows would fail).
    pub(crate) fn unlock(&self) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match (&self.file, *held) {
            (Some(file), Lock::Shared | Lock::Exclusive) => {
                FileExt::unlock(file).map_err(self.io("unlock"))?;
                *held = Lock::None;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Unmaps, then cuts the file to `offset + used` bytes.
    pub(crate) fn trim(mut self, used: u64) -> Result<u64> {
        // Truncating is a write: a read-only descriptor would fail only after the unmap, with
        // a bare EINVAL.
        self.require_writable("finish")?;
        let len = self.len() as u64;
        if used > len {
            return Err(Error::OutOfBounds {
                offset: 0,
                len: to_usize(used, &self.path)?,
                map_len: self.len(),
            });
        }
        self.raw = None;
        let end = self
            .offset
            .checked_add(used)
            .ok_or_else(|| Error::TooLarge {
                path: self.path.clone(),
                requested: used,
            })?;
        if self.file.is_some() && self.fixed_len.is_none() {
            self.set_file_len(end)?;
        }
        Ok(used)
    }

    pub(crate) fn close(mut self) -> Result<()> {
        self.raw = None;
        // Closing the file releases the lock too; unlocking first is what reports an error.
        self.unlock()
    }

    /// Checks that `offset..offset + len` lies inside the view and returns its start address.
    #[inline]
    pub(crate) fn bounds(&self, offset: usize, len: usize) -> Result<*mut u8> {
        let map_len = self.len();
        match (&self.raw, offset.checked_add(len)) {
            (Some(raw), Some(end)) if end <= map_len => {
                // SAFETY: `offset <= end <= map_len`, so the result is inside (or one past the
                // end of) the mapping's allocation.
                Ok(unsafe { raw.as_mut_ptr().add(offset) })
            }
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                map_len,
            }),
        }
    }

    /// [`Core::bounds`] plus an alignment check on the actual address.
    #[inline]
    pub(crate) fn aligned(&self, offset: usize, len: usize, align: usize) -> Result<*mut u8> {
        let ptr = self.bounds(offset, len)?;
        if (ptr as usize) % align != 0 {
            return Err(Error::Misaligned { offset, align });
        }
        Ok(ptr)
    }
}

fn map_anonymous(len: usize) -> Result<View> {
    MmapOptions::new()
        .len(len)
        .map_anon()
        .map(|raw| View::Plain(MmapRaw::from(raw)))
        .map_err(|source| Error::Io {
            op: "map",
            path: PathBuf::from(ANONYMOUS),
            source,
        })
}
