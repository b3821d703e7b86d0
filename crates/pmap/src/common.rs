//! The methods [`crate::Map`] and [`crate::SharedMap`] share, written once as a macro.

/// The methods [`crate::Map`] and [`crate::SharedMap`] share, written once over their `core`.
macro_rules! common_methods {
    () => {
        /// The view's length in bytes.
        #[inline]
        #[must_use]
        pub fn len(&self) -> usize {
            self.core.len()
        }

        /// Faults the pages of `offset..offset + len` in writable now, as writing each would
        /// (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14 and later), so that the first store to
        /// each later takes no page fault: for rings and logs whose writers must not stall on
        /// their first lap. Returns whether the platform did it (`false`: nothing was done, the
        /// first stores fault as usual). The file's blocks are already reserved (see
        /// [`Self::grow`]), so this allocates no disk space.
        ///
        /// # Errors
        /// [`Error::OutOfBounds`](crate::Error::OutOfBounds), [`Error::ReadOnlyMapping`](crate::Error::ReadOnlyMapping), or the
        /// I/O error of the advice (out of memory, a hardware error on a page).
        pub fn populate_for_write(&self, offset: usize, len: usize) -> Result<bool> {
            self.core.populate_for_write(offset, len)
        }

        /// Tells the kernel how `offset..offset + len` will be used ([`Advice`](crate::Advice),
        /// `madvise` on Unix; the pages covering the range are advised). Advice never changes a
        /// byte: on a file mapping even [`Advice::DontNeed`](crate::Advice::DontNeed) only drops
        /// the pages from this process's page tables, and the next access reads them back from
        /// the file and page cache. Read-only views take every advice. Returns whether the
        /// platform took it: `false` for an empty range, for an advice this platform lacks
        /// (huge pages outside Linux, every advice on Windows) and for a huge-page advice the
        /// kernel refuses for this mapping.
        ///
        /// # Errors
        /// [`Error::OutOfBounds`](crate::Error::OutOfBounds),
        /// [`Error::Unsupported`](crate::Error::Unsupported) for `DontNeed` on an anonymous
        /// mapping (which it would zero), or the I/O error of the advice.
        pub fn advise(&self, offset: usize, len: usize, advice: crate::Advice) -> Result<bool> {
            self.core.advise(offset, len, advice)
        }

        /// Locks the pages covering `offset..offset + len` in memory (`mlock`), so that they
        /// are never paged out; they stay locked until [`Self::unlock_in_memory`] or the
        /// unmap (growth and refresh map anew, unlocked). An empty range does nothing.
        ///
        /// # Errors
        /// [`Error::OutOfBounds`](crate::Error::OutOfBounds),
        /// [`Error::MemoryLock`](crate::Error::MemoryLock) naming the range when the system
        /// refuses (`EPERM` without the privilege, `ENOMEM` past `RLIMIT_MEMLOCK`), or
        /// [`Error::Unsupported`](crate::Error::Unsupported) on platforms other than Unix.
        pub fn lock_in_memory(&self, offset: usize, len: usize) -> Result<()> {
            self.core.lock_memory(offset, len, true)
        }

        /// Unlocks the pages covering `offset..offset + len` (`munlock`); pages that were not
        /// locked are left as they are.
        ///
        /// # Errors
        /// As [`Self::lock_in_memory`].
        pub fn unlock_in_memory(&self, offset: usize, len: usize) -> Result<()> {
            self.core.lock_memory(offset, len, false)
        }

        /// Whether the view is empty (only after a failed remap left no view).
        #[inline]
        #[must_use]
        pub fn is_empty(&self) -> bool {
            self.core.len() == 0
        }

        /// The mapped file's path (`<anonymous>` for memory-only mappings).
        #[must_use]
        pub fn path(&self) -> &std::path::Path {
            self.core.path()
        }

        /// Whether writes are allowed.
        #[inline]
        #[must_use]
        pub fn is_writable(&self) -> bool {
            self.core.is_writable()
        }

        /// Makes a read-only view writable without opening the path again: the view is mapped
        /// anew, read-write, through the file handle this map holds (so it is the file that
        /// was opened, even if another now has its path), with the same offset and length.
        /// Nothing borrows the view meanwhile (`&mut self`). Already writable: nothing to do.
        ///
        /// # Errors
        /// [`Error::Unsupported`](crate::Error::Unsupported) when the handle was opened
        /// read-only (`MapOptions::read_only`, `Map::open_read_only`): open the file read-write
        /// and call [`Self::make_read_only`] to convert both ways. An I/O error from mapping;
        /// then the view stays as it was.
        pub fn make_writable(&mut self) -> Result<()> {
            self.core.set_writable(true)
        }

        /// Makes the view read-only without opening the path again (mapped anew through the
        /// same handle): writes, atomics, growth and `finish` are refused until
        /// [`Self::make_writable`]. Dirty pages are not lost: they stay in the page cache and
        /// reach the file as after any unmap. Already read-only: nothing to do.
        ///
        /// # Errors
        /// [`Error::Unsupported`](crate::Error::Unsupported) for an anonymous mapping (there is
        /// no file to map again), or an I/O error from mapping; then the view stays as it was.
        pub fn make_read_only(&mut self) -> Result<()> {
            self.core.set_writable(false)
        }

        /// The bytes the view can grow to without moving: the address space reserved for it
        /// ([`MapOptions::reserve_address_space`](crate::MapOptions::reserve_address_space), on
        /// Unix), or its length.
        #[inline]
        #[must_use]
        pub fn reserved_len(&self) -> usize {
            self.core.reserved_len()
        }

        /// Whether the view was opened with a fixed length ([`MapOptions::len`]): such a view
        /// never grows and `refresh` leaves it alone.
        ///
        /// [`MapOptions::len`]: crate::MapOptions::len
        #[inline]
        #[must_use]
        pub fn is_fixed_length(&self) -> bool {
            self.core.is_fixed_length()
        }

        /// The file's length now, as the system reports it (one `fstat`, a few hundred
        /// nanoseconds): another program may have grown or truncated the file since the view
        /// was mapped. Touching a page of the view past the file's end raises `SIGBUS`, which
        /// no mapping can turn into an error; a caller that shares the file with programs it
        /// does not control compares this with the bytes it is about to touch, at the points
        /// where a truncation is likely to have happened (after a wait), and stops with an
        /// error of its own (`docs/pmap.md`, "truncation under a mapping"). An anonymous
        /// mapping reports its view's length.
        ///
        /// # Errors
        /// The I/O error of the `fstat`.
        pub fn file_len(&self) -> Result<u64> {
            self.core.file_len()
        }

        /// Whether the view is a copy of the file in private memory
        /// ([`MapOptions::memory_copy`](crate::MapOptions::memory_copy)) rather than a mapping
        /// of it.
        #[inline]
        #[must_use]
        pub fn is_memory_copy(&self) -> bool {
            self.core.is_memory_copy()
        }

        /// Whether this is a memory-only mapping with no file behind it.
        #[inline]
        #[must_use]
        pub fn is_anonymous(&self) -> bool {
            self.core.is_anonymous()
        }

        /// Grows the view (and the file) to `new_len` bytes; never shrinks. The old view is
        /// unmapped before the file is extended, which is what Windows requires. The disk
        /// blocks of the new bytes are reserved before they are mapped, so writing them never
        /// meets a full disk (see `docs/pmap.md`). New bytes read as zero.
        ///
        /// # Errors
        /// [`Error::NoSpace`] when the disk (or a quota) has no room for the new bytes (the
        /// file keeps its length), [`Error::ReadOnlyMapping`], [`Error::FixedLength`] for a view
        /// opened with a fixed length, or an I/O error; on error the old view stays usable.
        pub fn grow(&mut self, new_len: usize) -> Result<()> {
            self.core.grow(new_len)
        }

        /// Makes the view at least `min_len` bytes, at least doubling it when it grows, so that
        /// a sequence of appends costs amortised O(1). When the doubled size does not fit on
        /// the disk it grows to `min_len` exactly.
        ///
        /// # Errors
        /// As [`Self::grow`]; [`Error::NoSpace`] when not even `min_len` fits.
        pub fn reserve(&mut self, min_len: usize) -> Result<()> {
            self.core.reserve(min_len)
        }

        /// Notices that another process resized the file and maps the view again at the new
        /// length. Returns whether the view changed. Fixed-length views and anonymous mappings
        /// never change.
        ///
        /// # Errors
        /// An I/O error, or [`Error::ViewPastEnd`] if the file shrank below the view's offset.
        pub fn refresh(&mut self) -> Result<bool> {
            self.core.refresh()
        }

        /// Writes the whole view back to the file and waits for it to reach the disk
        /// (`msync(MS_SYNC)`, itself a data sync of the range on Linux; elsewhere
        /// `msync(MS_SYNC)` or `FlushViewOfFile`, then the file's data sync). A read-only or
        /// anonymous view has nothing to write back and returns at once.
        ///
        /// # Errors
        /// The I/O error the operating system reported.
        pub fn flush(&self) -> Result<()> {
            self.core.flush()
        }

        /// Starts writing the whole view back without waiting (`msync(MS_ASYNC)`).
        ///
        /// # Errors
        /// The I/O error the operating system reported.
        pub fn flush_async(&self) -> Result<()> {
            self.core.flush_async()
        }

        /// Writes `len` bytes from `offset` back to the file and waits for them to reach the
        /// disk.
        ///
        /// # Errors
        /// [`Error::OutOfBounds`], or the I/O error the operating system reported.
        pub fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
            self.core.flush_range(offset, len)
        }

        /// Takes an advisory lock on the file (shared or exclusive), waiting if need be.
        /// `Lock::None` does nothing.
        ///
        /// # Errors
        /// The I/O error the operating system reported.
        pub fn lock(&self, lock: Lock) -> Result<()> {
            self.core.lock(lock, true)
        }

        /// Takes an advisory lock without waiting for other handles (a handle holds one lock:
        /// the kind it holds is a no-op, the other kind converts; see `docs/pmap.md`). Lock
        /// calls on one handle are serialised, so this does wait while another thread's
        /// blocking [`Self::lock`] on the same handle is in progress.
        ///
        /// # Errors
        /// [`Error::LockContended`] when another handle holds a conflicting lock.
        pub fn try_lock(&self, lock: Lock) -> Result<()> {
            self.core.lock(lock, false)
        }

        /// Releases the advisory lock this handle holds.
        ///
        /// # Errors
        /// The I/O error the operating system reported.
        pub fn unlock(&self) -> Result<()> {
            self.core.unlock()
        }

        /// Unmaps the view, then truncates the file to the `used` bytes actually written (from
        /// the view's offset), so a growable writer leaves no zero tail. Returns `used`.
        /// Anonymous and fixed-length views leave the file's length alone.
        ///
        /// # Errors
        /// [`Error::ReadOnlyMapping`] for a read-only view, [`Error::OutOfBounds`] if `used`
        /// exceeds the view, or the I/O error from truncating.
        pub fn finish(self, used: u64) -> Result<u64> {
            self.core.trim(used)
        }

        /// Unmaps the view and releases the lock, reporting errors that dropping would swallow.
        /// Dirty pages stay in the page cache and reach the file as after any `munmap`; call
        /// [`Self::flush`] first for durability against power loss.
        ///
        /// # Errors
        /// The I/O error from releasing the lock.
        pub fn close(self) -> Result<()> {
            self.core.close()
        }
    };
}

pub(crate) use common_methods;
