//! [`RingMemory`]: a ring's bytes mapped twice back to back, its head and tail counters, and
//! for a file ring the header page that holds them and the role claims; [`RingOptions`], the
//! builder every ring is made through.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use fs4::fs_std::FileExt;

use super::{InfiniteRing, Ring, RingConsumer, RingProducer};
use crate::{Error, ProcessState, Result, os};

/// The file's first eight bytes, `PMAPRING`. Every header word is an atomic in host order (a
/// ring file is for the processes of one machine); the magic is taken in host order too, so
/// that the bytes read `PMAPRING` on any machine.
// tidy:host-endian: the magic's bytes as a host-order word, so that they are the file's bytes.
const MAGIC: u64 = u64::from_ne_bytes(*b"PMAPRING");
const VERSION: u64 = 1;
/// Header offsets. The head and the tail have a cache line (128 bytes, the prefetched pair on
/// x86) each, so that the producer's stores do not slow the consumer's loads of its own word.
const MAGIC_OFF: usize = 0;
const VERSION_OFF: usize = 8;
const HEADER_LEN_OFF: usize = 16;
const CAPACITY_OFF: usize = 24;
const HEAD_OFF: usize = 128;
const TAIL_OFF: usize = 256;
const PRODUCER_PID_OFF: usize = 384;
const CONSUMER_PID_OFF: usize = 388;
/// The bytes of the header pmap uses; a header of zeros this long is a ring whose creation was
/// cut short, taken over by the next open.
const HEADER_USED: usize = 392;

/// One end of a ring, for the role claims of a file ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Producer,
    Consumer,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }

    fn pid_offset(self) -> usize {
        match self {
            Role::Producer => PRODUCER_PID_OFF,
            Role::Consumer => CONSUMER_PID_OFF,
        }
    }
}

/// A counter on a cache line of its own.
#[repr(C, align(128))]
#[derive(Debug, Default)]
struct Padded(AtomicU64);

/// Where the head and tail live: in this struct for an anonymous ring, in the file's header
/// for a file ring (so that the other process sees them).
#[derive(Debug)]
// One per ring, and the padding is the point; a `Box` would put a pointer chase in front of
// every counter access.
#[allow(clippy::large_enum_variant)]
enum Counters {
    Local { head: Padded, tail: Padded },
    InHeader,
}

#[derive(Debug)]
struct Backing {
    /// Kept open for the advisory lock taken while the header is created or checked, and so
    /// that the ring's path names the file it maps.
    _file: File,
    path: PathBuf,
}

/// The memory of one ring: `prefix` header bytes (none for an anonymous ring), then
/// `capacity` data bytes, then the same data bytes again, all in one range of the address
/// space (see the protocol in `ring/mod.rs`).
#[derive(Debug)]
pub(crate) struct RingMemory {
    base: NonNull<u8>,
    prefix: usize,
    capacity: usize,
    counters: Counters,
    backing: Option<Backing>,
}

// SAFETY: `RingMemory` owns its mapping (unmapped only in `drop`) and holds nothing tied to a
// thread. Its shared state is the two counters, which are atomics, and the data bytes, which
// it reaches only through the `unsafe fn`s below whose callers keep the ring protocol: at any
// time each data byte is reachable by one end only.
unsafe impl Send for RingMemory {}
// SAFETY: as for `Send`: `&RingMemory` gives atomics and, through `unsafe fn`s, bytes whose
// exclusive use the protocol assigns to one end at a time.
unsafe impl Sync for RingMemory {}

impl Drop for RingMemory {
    fn drop(&mut self) {
        // SAFETY: `base`, `prefix` and `capacity` are those `map_twice` returned and took, and
        // the mapping is unmapped only here. Every slice handed out borrows a ring end, which
        // holds this memory (by value or in an `Arc`), so none outlives it.
        unsafe { os::unmap_twice(self.base.as_ptr(), self.prefix, self.capacity) }
    }
}

/// `min` rounded up to a whole number of allocation units, checked: zero is `ZeroLength`, a
/// size whose double mapping overflows the address space is `TooLarge`.
fn ring_capacity(min: usize, unit: usize, path: &Path) -> Result<usize> {
    if min == 0 {
        return Err(Error::ZeroLength {
            path: path.to_path_buf(),
        });
    }
    let too_large = || Error::TooLarge {
        path: path.to_path_buf(),
        requested: min as u64,
    };
    let capacity = min.checked_next_multiple_of(unit).ok_or_else(too_large)?;
    capacity
        .checked_mul(2)
        .and_then(|both| both.checked_add(unit))
        .filter(|&total| isize::try_from(total).is_ok())
        .ok_or_else(too_large)?;
    Ok(capacity)
}

impl RingMemory {
    /// An anonymous ring of at least `min_capacity` bytes: the memory of
    /// `os::anonymous_ring_file` (or a pagefile section), mapped twice, counters in here.
    pub(crate) fn anonymous(min_capacity: usize) -> Result<Self> {
        let path = PathBuf::from(crate::core::ANONYMOUS);
        let capacity = ring_capacity(min_capacity, os::ring_granularity(), &path)?;
        let io = |op| {
            let path = path.clone();
            move |source| Error::Io { op, path, source }
        };
        let file = os::anonymous_ring_file(capacity).map_err(io("create ring memory"))?;
        // The descriptor closes when `file` drops at the end of this function: the views
        // keep the memory alive.
        let base = os::map_twice(file.as_ref(), 0, capacity).map_err(io("map ring"))?;
        Ok(RingMemory {
            base: NonNull::new(base).ok_or(Error::Io {
                op: "map ring",
                path,
                source: std::io::ErrorKind::AddrNotAvailable.into(),
            })?,
            prefix: 0,
            capacity,
            counters: Counters::Local {
                head: Padded::default(),
                tail: Padded::default(),
            },
            backing: None,
        })
    }

    /// Opens (or creates) the ring file at `path`, under an exclusive advisory lock held while
    /// the header is created or checked.
    fn open(options: &RingOptions, path: &Path) -> Result<Self> {
        let owned = || path.to_path_buf();
        if options.capacity == 0 && options.create && !path.exists() {
            // A new ring needs a capacity: refused before the file is made, so that the
            // refusal leaves no empty file behind.
            return Err(Error::ZeroLength { path: owned() });
        }
        let mut open = OpenOptions::new();
        open.read(true).write(true).create(options.create);
        if let Some(mode) = options.mode {
            os::set_create_mode(&mut open, mode);
        }
        let file = open.open(path).map_err(|e| Error::from_open(owned(), e))?;
        let io = |op| {
            move |source| Error::Io {
                op,
                path: owned(),
                source,
            }
        };
        FileExt::lock_exclusive(&file).map_err(io("lock"))?;
        let opened = Self::open_locked(options, path, &file);
        let unlocked = FileExt::unlock(&file).map_err(io("unlock"));
        let mut memory = opened?;
        unlocked?;
        memory.backing = Some(Backing {
            _file: file,
            path: owned(),
        });
        Ok(memory)
    }

    fn open_locked(options: &RingOptions, path: &Path, file: &File) -> Result<Self> {
        let owned = || path.to_path_buf();
        let bad = |reason| Error::RingFile {
            path: owned(),
            reason,
        };
        let unit = os::ring_granularity();
        let file_len = file
            .metadata()
            .map_err(|source| Error::Io {
                op: "stat",
                path: owned(),
                source,
            })?
            .len();
        let capacity = if file_len == 0 {
            let capacity = ring_capacity(options.capacity, unit, path)?;
            // The blocks are reserved now, so that a full disk is an error here rather than a
            // SIGBUS when a page of the ring is first written.
            crate::reserve::extend(file, path, (unit + capacity) as u64)?;
            capacity
        } else {
            let unit64 = unit as u64;
            if file_len % unit64 != 0 || file_len < 2 * unit64 {
                return Err(bad(
                    "its length is not one header and a whole number of allocation units",
                ));
            }
            let capacity = usize::try_from(file_len - unit64).map_err(|_| Error::TooLarge {
                path: path.to_path_buf(),
                requested: file_len,
            })?;
            ring_capacity(capacity, unit, path)?;
            if options.capacity != 0 && ring_capacity(options.capacity, unit, path)? != capacity {
                return Err(bad("its capacity is not the one asked for"));
            }
            capacity
        };
        let base = os::map_twice(Some(file), unit, capacity).map_err(|source| Error::Io {
            op: "map ring",
            path: owned(),
            source,
        })?;
        let memory = RingMemory {
            base: NonNull::new(base).ok_or_else(|| bad("mapped at address zero"))?,
            prefix: unit,
            capacity,
            counters: Counters::InHeader,
            backing: None,
        };
        let magic = memory.header(MAGIC_OFF).load(Ordering::Acquire);
        if magic == 0 {
            let blank =
                (0..HEADER_USED / 8).all(|i| memory.header(i * 8).load(Ordering::Relaxed) == 0);
            if !blank {
                return Err(bad("it is not a pmap ring file (no magic number)"));
            }
            memory.header(VERSION_OFF).store(VERSION, Ordering::Relaxed);
            memory
                .header(HEADER_LEN_OFF)
                .store(unit as u64, Ordering::Relaxed);
            memory
                .header(CAPACITY_OFF)
                .store(capacity as u64, Ordering::Relaxed);
            // Last, with release: an opener that sees the magic sees the geometry too (they
            // also hold the lock, which orders the same way; the release is for readers of
            // the file that do not lock).
            memory.header(MAGIC_OFF).store(MAGIC, Ordering::Release);
            return Ok(memory);
        }
        if magic != MAGIC {
            return Err(bad("it is not a pmap ring file (wrong magic number)"));
        }
        if memory.header(VERSION_OFF).load(Ordering::Relaxed) != VERSION {
            return Err(bad("its version is not one this pmap reads"));
        }
        if memory.header(HEADER_LEN_OFF).load(Ordering::Relaxed) != unit as u64 {
            return Err(bad(
                "its header is not one allocation unit of this platform long",
            ));
        }
        if memory.header(CAPACITY_OFF).load(Ordering::Relaxed) != capacity as u64 {
            return Err(bad("its recorded capacity does not match its length"));
        }
        let head = memory.head().load(Ordering::Acquire);
        let tail = memory.tail().load(Ordering::Acquire);
        if head.wrapping_sub(tail) > capacity as u64 {
            return Err(bad("its head and tail are more than the capacity apart"));
        }
        Ok(memory)
    }

    /// The header word at `offset` of a file ring.
    fn header(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset + 8 <= self.prefix && offset % 8 == 0);
        // SAFETY: only file rings have a header, and only they call this: `prefix` is a whole
        // allocation unit (at least 4096 bytes) and every offset used is a constant below
        // `HEADER_USED` (392) and a multiple of 8. `base` is a mapping start, so page-aligned,
        // and the word is 8-aligned; it is mapped read-write while `&self` lives. Header words
        // are only ever accessed atomically, here and by other processes running pmap.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast::<u64>()) }
    }

    /// The 32-bit claim word of `role` in a file ring's header.
    fn claim_word(&self, role: Role) -> &AtomicU32 {
        // SAFETY: as in `header`: a constant, 4-aligned offset inside a file ring's header.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(role.pid_offset()).cast::<u32>()) }
    }

    /// The head counter: bytes ever written.
    #[inline]
    pub(crate) fn head(&self) -> &AtomicU64 {
        match &self.counters {
            Counters::Local { head, .. } => &head.0,
            Counters::InHeader => self.header(HEAD_OFF),
        }
    }

    /// The tail counter: bytes ever read (or dropped, for an infinite ring).
    #[inline]
    pub(crate) fn tail(&self) -> &AtomicU64 {
        match &self.counters {
            Counters::Local { tail, .. } => &tail.0,
            Counters::InHeader => self.header(TAIL_OFF),
        }
    }

    /// The data bytes, a whole number of allocation units.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The file's path, or `<anonymous>`.
    pub(crate) fn path(&self) -> &Path {
        self.backing
            .as_ref()
            .map_or(Path::new(crate::core::ANONYMOUS), |b| b.path.as_path())
    }

    /// The data offset of ring position `position`: the one division, done when an end is
    /// made; the ends then keep their offsets by addition.
    #[inline]
    pub(crate) fn offset_of(&self, position: u64) -> usize {
        (position % self.capacity as u64) as usize
    }

    /// The address of data offset `offset` in the first view, and `len`, both clamped to the
    /// capacity: the range `start..start + len` then ends at `2 * capacity` at most, inside
    /// the two views, whatever the caller passed.
    #[inline]
    fn locate(&self, offset: usize, len: usize) -> (*mut u8, usize) {
        let offset = offset.min(self.capacity);
        // SAFETY: `offset <= capacity`, so `prefix + offset` lies inside the mapping (the
        // second view starts at `prefix + capacity`).
        let start = unsafe { self.base.as_ptr().add(self.prefix + offset) };
        (start, len.min(self.capacity))
    }

    /// The `len` data bytes from data offset `offset`, as one slice (both clamped to the
    /// capacity).
    ///
    /// # Safety
    /// No end of the ring (in any thread or process) writes any of these bytes, at either of
    /// their two addresses, while the slice lives: the protocol gives them to the caller's end.
    #[inline]
    pub(crate) unsafe fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        let (start, len) = self.locate(offset, len);
        // SAFETY: `start..start + len` lies inside the mapping (`offset <= capacity` and
        // `len <= capacity`, so it ends where the second view does at the latest), which lives
        // as long as `&self`; mapped bytes are always initialised. No one writes them
        // meanwhile: the caller's contract.
        unsafe { std::slice::from_raw_parts(start, len) }
    }

    /// The `len` data bytes from data offset `offset`, writable, as one slice (both clamped
    /// to the capacity).
    ///
    /// # Safety
    /// No end of the ring (in any thread or process) reads or writes any of these bytes, at
    /// either of their two addresses, while the slice lives: the protocol gives them to the
    /// caller's end alone.
    #[inline]
    #[allow(clippy::mut_from_ref)] // Exclusive by the protocol, not by the borrow: see above.
    pub(crate) unsafe fn bytes_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        let (start, len) = self.locate(offset, len);
        // SAFETY: in bounds and live as in `bytes`; the views are mapped read-write; nothing
        // else touches the bytes meanwhile: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(start, len) }
    }

    /// Claims `role` of a file ring for this process: its id goes into the role's word, unless
    /// a live process holds it (one that died holding it is taken over). Anonymous rings have
    /// their ends checked by the types (`Ring::split` consumes the ring) and claim nothing.
    pub(crate) fn claim(&self, role: Role) -> Result<()> {
        if matches!(self.counters, Counters::Local { .. }) {
            return Ok(());
        }
        let word = self.claim_word(role);
        let me = crate::current_pid();
        let mut holder = word.load(Ordering::Acquire);
        loop {
            let free =
                holder == 0 || (holder != me && crate::process_state(holder) == ProcessState::Dead);
            if !free {
                return Err(Error::RingRoleTaken {
                    path: self.path().to_path_buf(),
                    role: role.name(),
                    pid: holder,
                });
            }
            match word.compare_exchange(holder, me, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => holder = now,
            }
        }
    }

    /// Gives back a claim [`Self::claim`] took (nothing for an anonymous ring, or when another
    /// process took the claim over meanwhile, believing this one dead).
    pub(crate) fn release(&self, role: Role) {
        if matches!(self.counters, Counters::Local { .. }) {
            return;
        }
        let me = crate::current_pid();
        let _ = self
            .claim_word(role)
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// Builder for rings, in the manner of [`crate::MapOptions`].
///
/// The defaults: no capacity (say one with [`Self::capacity`] for a new ring), create a ring
/// file when absent.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("queue.ring");
/// use std::io::{Read, Write};
///
/// // An anonymous ring of at least 10 000 bytes (rounded up to the allocation unit).
/// let mut ring = pmap::RingOptions::new().capacity(10_000).ring()?;
/// assert!(ring.capacity() >= 10_000);
/// ring.write_all(b"hello")?;
///
/// // A ring in a file, whose two ends may be in different processes.
/// let mut producer = pmap::RingOptions::new().capacity(4096).open_producer(&path)?;
/// let mut consumer = pmap::RingOptions::new().open_consumer(&path)?;
/// producer.write_all(b"across processes")?;
/// let mut back = [0u8; 16];
/// consumer.read_exact(&mut back)?;
/// assert_eq!(&back, b"across processes");
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct RingOptions {
    capacity: usize,
    create: bool,
    mode: Option<u32>,
}

impl Default for RingOptions {
    /// As [`RingOptions::new`] (a derived default would not create the file).
    fn default() -> Self {
        Self::new()
    }
}

impl RingOptions {
    /// No capacity yet, create a ring file when absent.
    pub fn new() -> Self {
        RingOptions {
            capacity: 0,
            create: true,
            mode: None,
        }
    }

    /// The least number of data bytes: rounded up to the allocation unit (the page size on
    /// Unix, 64 KiB on Windows). Needed for an anonymous ring and a new ring file; for an
    /// existing file it is checked against the file's (0, the default, takes the file's).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The ring file must already exist (by default it is created when absent).
    pub fn must_exist(mut self) -> Self {
        self.create = false;
        self
    }

    /// Permission bits for a ring file this open creates (Unix only; ignored on Windows).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// An anonymous [`Ring`] (visible to this process only).
    ///
    /// # Errors
    /// [`Error::ZeroLength`] without a capacity, [`Error::TooLarge`], or the I/O error of
    /// making or mapping the memory.
    pub fn ring(&self) -> Result<Ring> {
        Ring::from_memory(RingMemory::anonymous(self.capacity)?)
    }

    /// An anonymous [`InfiniteRing`].
    ///
    /// # Errors
    /// As [`Self::ring`].
    pub fn infinite_ring(&self) -> Result<InfiniteRing> {
        Ok(InfiniteRing::from_memory(RingMemory::anonymous(
            self.capacity,
        )?))
    }

    /// Opens (or creates) a ring file and takes both of its ends, for this process alone: no
    /// other process can open either end until the [`Ring`] is dropped.
    ///
    /// # Errors
    /// As [`Self::open_producer`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Ring> {
        let memory = RingMemory::open(self, path.as_ref())?;
        Ring::from_memory(memory)
    }

    /// Opens (or creates) a ring file and takes its producer end: the one writer. The
    /// consumer may be in another process, which opens the same file with
    /// [`Self::open_consumer`].
    ///
    /// # Errors
    /// [`Error::RingRoleTaken`] when a live process holds the end, [`Error::RingFile`] for a
    /// file that is not a ring this pmap reads, [`Error::ZeroLength`] for a new file without a
    /// capacity, [`Error::NoSpace`] when the disk has no room for a new ring, the errors of
    /// opening a file ([`Error::NotFound`], [`Error::PermissionDenied`], ...) or an I/O error.
    pub fn open_producer(&self, path: impl AsRef<Path>) -> Result<RingProducer> {
        let memory = std::sync::Arc::new(RingMemory::open(self, path.as_ref())?);
        RingProducer::from_memory(memory)
    }

    /// Opens (or creates) a ring file and takes its consumer end: the one reader.
    ///
    /// # Errors
    /// As [`Self::open_producer`].
    pub fn open_consumer(&self, path: impl AsRef<Path>) -> Result<RingConsumer> {
        let memory = std::sync::Arc::new(RingMemory::open(self, path.as_ref())?);
        RingConsumer::from_memory(memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_round_up_to_the_unit_and_refuse_zero_and_overflow() {
        let path = Path::new("x");
        assert_eq!(ring_capacity(1, 4096, path).unwrap(), 4096);
        assert_eq!(ring_capacity(4096, 4096, path).unwrap(), 4096);
        assert_eq!(ring_capacity(4097, 4096, path).unwrap(), 8192);
        assert!(matches!(
            ring_capacity(0, 4096, path),
            Err(Error::ZeroLength { .. })
        ));
        assert!(matches!(
            ring_capacity(usize::MAX - 10, 4096, path),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            ring_capacity(usize::MAX / 2, 4096, path),
            Err(Error::TooLarge { .. })
        ));
    }
}
