//! [`MapOptions`], the builder every mapping is opened through, and the advisory [`Lock`].

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use crate::core::Core;
use crate::{Error, Map, Result, os};

/// An advisory lock on the mapped file (`flock` on Unix, `LockFileEx` on Windows, via `fs4`).
///
/// Advisory locks bind only programs that ask for them; pounds' own layers always do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lock {
    /// Take no lock.
    #[default]
    None,
    /// A shared (read) lock: many holders at once, no exclusive holder.
    Shared,
    /// An exclusive (write) lock: one holder, no shared holders.
    Exclusive,
}

/// Builder for a file mapping, in the manner of [`std::fs::OpenOptions`].
///
/// The defaults: read-write, create the file when absent, view the whole file from offset 0,
/// no lock, no populate.
///
/// ```
/// # fn main() -> Result<(), pmap::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("data.bin");
/// let map = pmap::MapOptions::new().size(8192).lock(pmap::Lock::Exclusive).open(&path)?;
/// assert_eq!(map.len(), 8192);
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct MapOptions {
    pub(crate) writable: bool,
    pub(crate) create: bool,
    pub(crate) size: u64,
    pub(crate) offset: u64,
    pub(crate) len: Option<usize>,
    pub(crate) populate: bool,
    pub(crate) lock: Lock,
    pub(crate) lock_wait: bool,
    pub(crate) mode: Option<u32>,
    pub(crate) reserve: Option<usize>,
    pub(crate) memory_copy: bool,
}

impl Default for MapOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MapOptions {
    /// Read-write, create when absent, whole file, no lock.
    pub fn new() -> Self {
        MapOptions {
            writable: true,
            create: true,
            size: 0,
            offset: 0,
            len: None,
            populate: false,
            lock: Lock::None,
            lock_wait: true,
            mode: None,
            reserve: None,
            memory_copy: false,
        }
    }

    /// Map read-only: the file must exist, is never extended, and every write is refused.
    pub fn read_only(mut self) -> Self {
        // `create` is left alone: it only ever applies to read-write opens, so
        // `read_only().read_write()` is a plain read-write open again.
        self.writable = false;
        self
    }

    /// Map read-write (the default).
    pub fn read_write(mut self) -> Self {
        self.writable = true;
        self
    }

    /// The file must already exist (by default a read-write open creates it when absent).
    pub fn must_exist(mut self) -> Self {
        self.create = false;
        self
    }

    /// The least number of bytes the view must have: a read-write open extends a smaller file
    /// (never shrinks a larger one); a read-only open of a smaller file is an error.
    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    /// Start the view `offset` bytes into the file (any offset; page alignment is handled).
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Fix the view's length. A fixed view never grows and [`Map::refresh`] leaves it alone;
    /// without this the view runs to the end of the file and follows it.
    pub fn len(mut self, len: usize) -> Self {
        self.len = Some(len);
        self
    }

    /// Pre-fault the pages of the view when mapping (`MAP_POPULATE` on Linux; ignored
    /// elsewhere). By default pages are faulted in as they are first touched.
    pub fn populate(mut self) -> Self {
        self.populate = true;
        self
    }

    /// Take an advisory lock on the file, waiting for it if another handle holds a conflicting
    /// one. The lock is held until the mapping is closed or dropped.
    pub fn lock(mut self, lock: Lock) -> Self {
        self.lock = lock;
        self.lock_wait = true;
        self
    }

    /// Take an advisory lock without waiting: a conflicting holder makes `open` fail with
    /// [`Error::LockContended`].
    pub fn try_lock(mut self, lock: Lock) -> Self {
        self.lock = lock;
        self.lock_wait = false;
        self
    }

    /// Reserves `len` bytes of address space for the view (at least its length, rounded up
    /// to pages), so that [`Map::grow`], [`Map::reserve`] and [`Map::refresh`] up to `len`
    /// map the new bytes behind the old ones: the view keeps its address and its pages stay
    /// mapped (no unmap, no fault-in again). Growth past it remaps as usual, into a new
    /// reservation of at least the new length. Address space only: no memory and no disk is
    /// taken for the room. Unix only; elsewhere (Windows cannot extend a file under a view)
    /// every growth remaps. A fixed-length view never grows and ignores it.
    pub fn reserve_address_space(mut self, len: usize) -> Self {
        self.reserve = Some(len);
        self
    }

    /// Nothing maps the file: the view is a copy of it in the process's private memory,
    /// filled by positioned reads (`pread`, `ReadFile` at an offset) when it is opened, for
    /// file systems where shared mappings are not possible or not safe (some network and FUSE
    /// file systems; Metakit's fallback). The view reads and writes as a mapping's would, but
    /// its stores stay in memory: [`crate::SharedMap::write_file_at`] (into the copy and the
    /// file) and [`crate::SharedMap::write_back`] put bytes into the file, growth extends the
    /// file and the copy, [`Map::flush`] is a data sync of the file, and [`Map::refresh`]
    /// changes nothing. Other handles' writes to the file are not seen: a file opened this
    /// way is to be written by this handle alone while it lives (pblockdb's
    /// `Storage::Unmapped` keeps every other handle out with a lock). Memory: the view's
    /// length, at once.
    pub fn memory_copy(mut self) -> Self {
        self.memory_copy = true;
        self
    }

    /// Permission bits for a file this open creates (Unix only; ignored on Windows).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Opens (and if need be creates and extends) the file, and maps the view. Extending
    /// reserves the new bytes' disk blocks first: a full disk is [`Error::NoSpace`] here, with
    /// the file at its old length (a file this open created stays, empty), never a `SIGBUS`
    /// when a page is first written.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Map> {
        self.open_core(path.as_ref()).map(Map::from_core)
    }

    pub(crate) fn open_core(&self, path: &Path) -> Result<Core> {
        let owned = || path.to_path_buf();
        if self.len == Some(0) {
            return Err(Error::ZeroLength { path: owned() });
        }
        // Checked before anything touches the file, so that a refused open creates nothing.
        let wanted_view = match self.len {
            Some(len) => len as u64,
            None => self.size,
        };
        let wanted_end = self
            .offset
            .checked_add(wanted_view)
            .ok_or_else(|| Error::TooLarge {
                path: owned(),
                requested: wanted_view,
            })?;
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Err(Error::IsDirectory { path: owned() }),
            Ok(meta) if self.writable && meta.permissions().readonly() => {
                return Err(Error::ReadOnlyFile { path: owned() });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !(self.create && self.writable) {
                    return Err(Error::NotFound { path: owned() });
                }
                if wanted_view == 0 {
                    // A new file of zero bytes has nothing to map; creating it would leave an
                    // empty file behind the error.
                    return Err(Error::ZeroLength { path: owned() });
                }
            }
            Err(e) => return Err(Error::from_open(owned(), e)),
        }

        let mut open = OpenOptions::new();
        open.read(true)
            .write(self.writable)
            .create(self.create && self.writable);
        if let Some(mode) = self.mode {
            os::set_create_mode(&mut open, mode);
        }
        let file = open.open(path).map_err(|e| Error::from_open(owned(), e))?;

        let mut core = Core::new(file, owned(), self.writable, self.offset, self.len);
        core.set_reservation(self.reserve);
        core.set_memory_copy(self.memory_copy);
        core.lock(self.lock, self.lock_wait)?;

        let file_len = core.file_len()?;
        if file_len < wanted_end {
            if !self.writable {
                return Err(Error::ViewPastEnd {
                    path: owned(),
                    offset: self.offset,
                    len: wanted_view,
                    file_len,
                });
            }
            if wanted_view == 0 {
                // The view would run from past the end to the end: extending the file to the
                // offset would change it and still leave nothing to map.
                return Err(Error::ZeroLength { path: owned() });
            }
            // The new range's blocks are reserved now: a full disk is an error here (the
            // file keeps its old length), not a SIGBUS when a page is first written.
            core.extend_file(wanted_end)?;
        }
        core.map_view(self.populate)?;
        Ok(core)
    }
}
