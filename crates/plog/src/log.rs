//! Opening a log (create, adopt, validate) and writing records.

use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, fence};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pmap::{Lock, MapOptions, SharedMap};
use zerocopy::{FromBytes, IntoBytes};

use crate::clock::{WallClock, system_now_ns};
use crate::format::{
    AlignedImage, COMPAT_VERSION, DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS, FORMAT_VERSION, Geometry,
    HEADER_SIZE, KIND_PAD, KIND_RECORD, MAGIC, MAX_TAG_LEN, NEXT_OFF, POSITION_LIMIT,
    RECORD_HEADER_LEN, RecordHeader, SLEEPER, StaticHeader, WAKE_OFF, padded,
};
use crate::{Error, Level, Result};

/// How to open a log: geometry for a new file, read-only or read-write, create or not, and an
/// optional background flush.
///
/// ```
/// # fn main() -> Result<(), plog::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("app.plog");
/// let log = plog::LogOptions::new().blocks(1024).block_size(256).open(&path)?;
/// assert_eq!(log.stats().blocks, 1024);
/// // Asking another geometry of an existing file is an error; not asking adopts it.
/// assert!(matches!(
///     plog::LogOptions::new().blocks(2048).open(&path),
///     Err(plog::Error::GeometryMismatch { .. })
/// ));
/// assert_eq!(plog::Log::open(&path)?.stats().block_size, 256);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    blocks: Option<u64>,
    block_size: Option<u32>,
    read_only: bool,
    no_create: bool,
    flush_every: Option<Duration>,
}

impl LogOptions {
    /// Read-write, create when absent, default geometry for a new file, no background flush.
    pub fn new() -> LogOptions {
        LogOptions::default()
    }

    /// Number of blocks in the ring (2 to 2^32; default 16384). Given explicitly, an existing
    /// file must have this many, or opening fails with [`Error::GeometryMismatch`].
    pub fn blocks(mut self, blocks: u64) -> LogOptions {
        self.blocks = Some(blocks);
        self
    }

    /// Bytes per block: a power of two from 64 to 1 MiB (default 128). Checked against an
    /// existing file as [`Self::blocks`] is.
    pub fn block_size(mut self, block_size: u32) -> LogOptions {
        self.block_size = Some(block_size);
        self
    }

    /// Open read-only: the file must exist and be a valid log; writing is refused. Works while
    /// other processes write the file.
    pub fn read_only(mut self, read_only: bool) -> LogOptions {
        self.read_only = read_only;
        self
    }

    /// Create the file when absent (the default for read-write opens).
    pub fn create(mut self, create: bool) -> LogOptions {
        self.no_create = !create;
        self
    }

    /// Flush the mapping to disk every `interval` from a background thread, stopped when the
    /// [`Log`] is dropped. Ignored for read-only logs.
    pub fn flush_every(mut self, interval: Duration) -> LogOptions {
        self.flush_every = Some(interval);
        self
    }

    /// Opens (or creates) the log at `path`.
    ///
    /// # Errors
    /// [`Error::InvalidGeometry`] for a geometry outside the rules, [`Error::GeometryMismatch`],
    /// [`Error::BadMagic`], [`Error::UnsupportedVersion`], [`Error::CorruptHeader`],
    /// [`Error::Truncated`], or the mapping's [`Error::Map`] (not found, a directory, ...).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Log> {
        let path = path.as_ref();
        let asked = Geometry::checked(
            self.blocks.unwrap_or(DEFAULT_BLOCKS),
            self.block_size.unwrap_or(DEFAULT_BLOCK_SIZE),
        )
        .map_err(|(field, value, rule)| Error::InvalidGeometry { field, value, rule })?;
        let explicit = self.blocks.is_some() || self.block_size.is_some();
        let writable = !self.read_only;
        let (map, fresh) = if writable {
            open_writable(path, asked, !self.no_create)?
        } else {
            (open_read_only(path)?, false)
        };
        let geometry = validate(&map, path)?;
        if explicit
            && (self.blocks.is_some_and(|b| b != geometry.blocks)
                || self.block_size.is_some_and(|b| b != geometry.block_size))
        {
            return Err(Error::GeometryMismatch {
                path: path.to_path_buf(),
                asked_blocks: asked.blocks,
                asked_block_size: asked.block_size,
                found_blocks: geometry.blocks,
                found_block_size: geometry.block_size,
            });
        }
        let inner = Inner::new(map.into_shared(), geometry, writable);
        if writable && !fresh {
            // Still under the exclusive lock, so no other read-write open recovers at once;
            // writers that opened earlier recovered first and write past the counter.
            inner.recover_counter()?;
        }
        inner.map.unlock()?;
        let inner = Arc::new(inner);
        let flusher = match self.flush_every {
            Some(interval) if writable => Some(Flusher::start(Arc::clone(&inner), interval)),
            _ => None,
        };
        Ok(Log {
            inner,
            _flusher: flusher,
        })
    }
}

/// Maps the file read-write under an exclusive advisory lock (held only while the header is
/// checked or written, so that two processes creating the same log at once do not both
/// initialise it), creating and initialising it when it is absent, empty or all-zero. Says
/// whether it initialised the file (then there is nothing to recover).
fn open_writable(path: &Path, geometry: Geometry, create: bool) -> Result<(pmap::Map, bool)> {
    let options = MapOptions::new().create(create).lock(Lock::Exclusive);
    let mut map = match options.clone().open(path) {
        Ok(map) => map,
        // A file just created (by us or a racing process) or left empty.
        Err(pmap::Error::ZeroLength { .. }) => options.size(geometry.file_len()).open(path)?,
        Err(e) => return Err(e.into()),
    };
    let head_len = map.len().min(HEADER_SIZE as usize);
    let fresh = map.as_slice()[..head_len].iter().all(|&b| b == 0);
    if fresh {
        if (map.len() as u64) < geometry.file_len() {
            let len = usize::try_from(geometry.file_len()).map_err(|_| pmap::Error::TooLarge {
                requested: geometry.file_len(),
            })?;
            map.grow(len)?;
        }
        let header = StaticHeader::new(geometry, system_now_ns());
        map.write(0, &header)?;
    }
    Ok((map, fresh))
}

fn open_read_only(path: &Path) -> Result<pmap::Map> {
    let map = MapOptions::new().read_only().lock(Lock::Shared).open(path);
    match map {
        Err(pmap::Error::ZeroLength { .. }) => Err(Error::BadMagic {
            path: path.to_path_buf(),
            found: "empty file".into(),
        }),
        other => Ok(other?),
    }
}

/// Checks every header field before any arithmetic with it.
fn validate(map: &pmap::Map, path: &Path) -> Result<Geometry> {
    let owned = || path.to_path_buf();
    let bytes = map.as_slice();
    let head = &bytes[..bytes.len().min(64)];
    if head.len() < 16 || head[..16] != MAGIC {
        let found = head
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        return Err(Error::BadMagic {
            path: owned(),
            found,
        });
    }
    let Ok(header) = StaticHeader::read_from_bytes(head) else {
        return Err(Error::Truncated {
            path: owned(),
            expected: HEADER_SIZE.into(),
            found: bytes.len() as u64,
        });
    };
    let corrupt = |field, value: u64| Error::CorruptHeader {
        path: owned(),
        field,
        value,
    };
    if header.compat_version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: owned(),
            found: header.version,
            compat: header.compat_version,
            supported: FORMAT_VERSION,
        });
    }
    if header.compat_version < COMPAT_VERSION {
        return Err(corrupt("compat_version", header.compat_version.into()));
    }
    if header.version < header.compat_version {
        return Err(corrupt("version", header.version.into()));
    }
    if header.compute_crc() != header.crc {
        return Err(corrupt("header_crc", header.crc.into()));
    }
    if header.header_size != HEADER_SIZE {
        return Err(corrupt("header_size", header.header_size.into()));
    }
    let geometry =
        Geometry::checked(header.block_count, header.block_size).map_err(|(field, value, _)| {
            corrupt(
                if field == "blocks" {
                    "block_count"
                } else {
                    "block_size"
                },
                value,
            )
        })?;
    if (bytes.len() as u64) < geometry.file_len() {
        return Err(Error::Truncated {
            path: owned(),
            expected: geometry.file_len(),
            found: bytes.len() as u64,
        });
    }
    let next = map.read::<u64>(NEXT_OFF)?;
    if next >= POSITION_LIMIT {
        return Err(corrupt("next", next));
    }
    Ok(geometry)
}

/// Records up to this size are assembled in a per-thread buffer and checksummed in one pass.
const STACK_IMAGE: usize = 256;

thread_local! {
    /// The per-thread record buffer: reused, so that a write does not zero 272 bytes first.
    static IMAGE: std::cell::RefCell<AlignedImage<{ STACK_IMAGE + 16 }>> =
        const { std::cell::RefCell::new(AlignedImage([0; STACK_IMAGE + 16])) };
}

/// The shared state of one open log: the mapping and what was learned at open.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) map: SharedMap,
    pub(crate) geometry: Geometry,
    pub(crate) writable: bool,
    pub(crate) ring_off: usize,
    pub(crate) blocks: u64,
    pub(crate) block_shift: u32,
    clock: WallClock,
    pid: u32,
}

impl Inner {
    fn new(map: SharedMap, geometry: Geometry, writable: bool) -> Inner {
        Inner {
            map,
            geometry,
            writable,
            ring_off: HEADER_SIZE as usize,
            blocks: geometry.blocks,
            block_shift: geometry.block_size.trailing_zeros(),
            clock: WallClock::new(),
            pid: std::process::id(),
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.map.path().to_path_buf()
    }

    pub(crate) fn require_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::ReadOnly {
                path: self.path(),
                op,
            })
        }
    }

    /// The reservation counter: the next position to hand out. Validated below
    /// [`POSITION_LIMIT`] at open; a value damaged since is clamped there, which readers then
    /// treat as "everything before the last lap is gone".
    #[inline]
    pub(crate) fn next(&self, order: Ordering) -> u64 {
        self.map
            .load_u64(NEXT_OFF, order)
            .unwrap_or(0)
            .min(POSITION_LIMIT)
    }

    /// Byte offset in the map of the block holding position `pos`.
    #[inline]
    pub(crate) fn block_offset(&self, pos: u64) -> usize {
        // slot < blocks, and ring_off + blocks << shift fits in usize (checked at open).
        self.ring_off + (((pos % self.blocks) as usize) << self.block_shift)
    }

    pub(crate) fn write(&self, level: Level, tag: &[u8], payload: &[u8]) -> Result<u64> {
        self.require_writable("write")?;
        if tag.len() > MAX_TAG_LEN {
            return Err(Error::TagTooLong {
                len: tag.len(),
                max: MAX_TAG_LEN,
            });
        }
        let max_bytes = self.geometry.max_record_bytes();
        let body = RECORD_HEADER_LEN + tag.len() + payload.len();
        if payload.len() > max_bytes || body > max_bytes {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                max: max_bytes.saturating_sub(RECORD_HEADER_LEN + tag.len()),
            });
        }
        let block_mask = (1usize << self.block_shift) - 1;
        let blocks = ((body + block_mask) >> self.block_shift) as u64;
        let mut header = RecordHeader {
            commit: 0,
            time_ns: self.clock.now_ns(),
            len: payload.len() as u32,
            pid: self.pid,
            blocks: blocks as u32,
            crc: 0,
            level: level.code(),
            kind: KIND_RECORD,
            tag_len: tag.len() as u8,
            reserved0: 0,
            reserved1: 0,
        };
        let counter = self.map.atomic_u64(NEXT_OFF)?;
        loop {
            // SeqCst on the reservation and on the load of the wake word after it: with the
            // follower's SeqCst registration, either this writer sees the sleeper bit or the
            // follower sees this reservation (docs/plog-format.md, "Follow").
            let pos = counter.fetch_add(blocks, Ordering::SeqCst);
            let wake = self.map.load_u32(WAKE_OFF, Ordering::SeqCst)?;
            // Every store below comes after the reservation for any reader that sees one of
            // them: the reader's acquire fence then shows it the counter past this lap.
            fence(Ordering::Release);
            if pos >= POSITION_LIMIT - (1 << 33) {
                // Give the blocks back, so that refused writes cannot push the counter past
                // the limit that `open` checks (a file the library itself made unopenable).
                // Safe while others race: only writers refused here subtract, each what it
                // added, so the counter never drops below the end of a granted reservation.
                counter.fetch_sub(blocks, Ordering::Relaxed);
                return Err(Error::CounterExhausted { path: self.path() });
            }
            let slot = pos % self.blocks;
            if slot + blocks > self.blocks {
                // The record would straddle the ring's end: pad both parts of this reservation
                // and reserve again, so that every record is contiguous.
                let tail = self.blocks - slot;
                self.write_pad(pos, tail)?;
                self.write_pad(pos + tail, blocks - tail)?;
                if wake & SLEEPER != 0 {
                    self.wake_followers()?;
                }
                continue;
            }
            let off = self.block_offset(pos);
            // The per-thread buffer is unavailable only re-entrantly or while the thread
            // exits, and a copy cannot fail at an offset checked at open: the piecewise path
            // then writes the same bytes (and reports any error). A `bool` keeps the fast
            // path's result in a register.
            let written = body <= STACK_IMAGE
                && IMAGE
                    .try_with(|cell| {
                        cell.try_borrow_mut().is_ok_and(|mut buf| {
                            self.write_small(off, pos, &mut header, tag, payload, &mut buf.0)
                        })
                    })
                    .unwrap_or(false);
            if !written {
                header.crc = header.checksum(pos, tag, payload);
                self.map.write_at(off + 8, &header.as_bytes()[8..])?;
                self.map.write_at(off + RECORD_HEADER_LEN, tag)?;
                self.map
                    .write_at(off + RECORD_HEADER_LEN + tag.len(), payload)?;
            }
            self.map.atomic_u64(off)?.store(pos + 1, Ordering::Release);
            if wake & SLEEPER != 0 {
                self.wake_followers()?;
            }
            return Ok(pos);
        }
    }

    /// Writes a record of at most [`STACK_IMAGE`] bytes (all but its commit word) from one
    /// buffer: `[time][bytes 16.. of the record, padded to 8][id][time]`. The checksum runs
    /// over `buf[8..]` (its definition's order, see format.rs) in one pass, and the record goes
    /// to the ring in one copy of whole words (the padding lands in the record's last block).
    #[inline]
    fn write_small(
        &self,
        off: usize,
        pos: u64,
        header: &mut RecordHeader,
        tag: &[u8],
        payload: &[u8],
        buf: &mut [u8; STACK_IMAGE + 16],
    ) -> bool {
        let body = RECORD_HEADER_LEN + tag.len() + payload.len();
        let end = padded(body) - 8; // the record's bytes 8..padded(body) are buf[..end]
        let time = header.time_ns.to_le_bytes();
        buf[..8].copy_from_slice(&time);
        buf[8..32].copy_from_slice(&header.as_bytes()[16..]);
        buf[32..32 + tag.len()].copy_from_slice(tag);
        buf[32 + tag.len()..body - 8].copy_from_slice(payload);
        // The buffer is reused: zero the padding (at most 7 bytes, inside the last word).
        buf[body - 8..end].fill(0);
        buf[end..end + 8].copy_from_slice(&pos.to_le_bytes());
        buf[end + 8..end + 16].copy_from_slice(&time);
        let crc = RecordHeader::checksum_image(&buf[8..end + 16]);
        buf[20..24].copy_from_slice(&crc.to_le_bytes());
        header.crc = crc;
        self.map.write_at(off + 8, &buf[..end]).is_ok()
    }

    fn write_pad(&self, pos: u64, blocks: u64) -> Result<()> {
        let mut header = RecordHeader {
            blocks: blocks as u32,
            kind: KIND_PAD,
            ..Default::default()
        };
        header.crc = header.checksum(pos, &[], &[]);
        let off = self.block_offset(pos);
        self.map.write_at(off + 8, &header.as_bytes()[8..])?;
        self.map.atomic_u64(off)?.store(pos + 1, Ordering::Release);
        Ok(())
    }

    /// Bumps the wake word's sequence, clears the sleeper bit, and wakes every follower in
    /// every process. A follower killed while asleep leaves the bit set; the next writer clears
    /// it, so the cost of a dead follower is one wake call.
    pub(crate) fn wake_followers(&self) -> Result<()> {
        wake_word(&self.map)
    }
}

/// Bumps the wake word of `map` (a log's mapping, or a follower's side mapping of its header):
/// the sequence advances, the sleeper bit clears, and every sleeper in every process wakes.
pub(crate) fn wake_word(map: &SharedMap) -> Result<()> {
    let word = map.atomic_u32(WAKE_OFF)?;
    let _ = word.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
        Some(w.wrapping_add(1) & !SLEEPER)
    });
    map.wake_u32(WAKE_OFF)?;
    Ok(())
}

/// A circular log in a memory-mapped file, shared by threads (`Log` is `Send + Sync`; wrap it
/// in an `Arc`) and by processes (each opens the same file).
///
/// ```
/// # fn main() -> Result<(), plog::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("app.plog");
/// use plog::{Level, Log};
/// let log = Log::open(&path)?;
/// let id = log.write(Level::Info, "main", "started")?;
/// let record = log.reader().next().unwrap();
/// assert_eq!((record.id, record.message().as_ref()), (id, "started"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
    // Held for its Drop, which stops and joins the thread.
    _flusher: Option<Flusher>,
}

/// A log's geometry and counters, as [`Log::stats`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The file's path.
    pub path: PathBuf,
    /// Blocks in the ring.
    pub blocks: u64,
    /// Bytes per block.
    pub block_size: u32,
    /// Bytes of header before the ring.
    pub header_size: u32,
    /// The file's length in bytes.
    pub file_size: u64,
    /// The format version of the file.
    pub version: u32,
    /// When the file was created, in nanoseconds since the Unix epoch ([`crate::rfc3339`]
    /// formats it).
    pub created: u64,
    /// The id the next record will get (if it does not need padding): the reservation
    /// counter, i.e. the number of blocks ever reserved.
    pub next_id: u64,
    /// The id of the oldest record still readable, if any.
    pub oldest_id: Option<u64>,
    /// The largest payload a record with an empty tag can carry.
    pub max_message: usize,
    /// Whether this handle is read-only.
    pub read_only: bool,
}

impl Log {
    /// Opens the log at `path` read-write, creating it with the default geometry (16384
    /// blocks of 128 bytes) if absent, and adopting an existing file's geometry.
    ///
    /// # Errors
    /// As [`LogOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Log> {
        LogOptions::new().open(path)
    }

    /// Opens an existing log read-only; works while other processes write it.
    ///
    /// # Errors
    /// As [`LogOptions::open`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Log> {
        LogOptions::new().read_only(true).open(path)
    }

    /// Writes one record and returns its id. Lock-free: one atomic add reserves the blocks,
    /// the body is copied in, and the commit word is stored last; no system call and no
    /// allocation, unless a follower is asleep (then one wake call).
    ///
    /// # Errors
    /// [`Error::TagTooLong`], [`Error::MessageTooLarge`] (nothing is written), or
    /// [`Error::ReadOnly`].
    #[inline]
    pub fn write(&self, level: Level, tag: &str, payload: impl AsRef<[u8]>) -> Result<u64> {
        self.inner.write(level, tag.as_bytes(), payload.as_ref())
    }

    /// Writes the mapping to disk and waits until it is there.
    ///
    /// # Errors
    /// The I/O error from the operating system.
    pub fn flush(&self) -> Result<()> {
        Ok(self.inner.map.flush()?)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.inner.map.path()
    }

    /// Whether this handle can write.
    pub fn is_read_only(&self) -> bool {
        !self.inner.writable
    }

    /// The largest payload a record with a tag of `tag_len` bytes can carry.
    pub fn max_message(&self, tag_len: usize) -> usize {
        self.inner
            .geometry
            .max_record_bytes()
            .saturating_sub(RECORD_HEADER_LEN + tag_len)
    }

    /// Geometry and counters. Finding `oldest_id` scans at most one ring of block headers.
    pub fn stats(&self) -> Stats {
        let g = self.inner.geometry;
        let header = self.inner.map.read::<StaticHeader>(0).ok();
        Stats {
            path: self.inner.path(),
            blocks: g.blocks,
            block_size: g.block_size,
            header_size: HEADER_SIZE,
            file_size: self.inner.map.len() as u64,
            version: header.map_or(FORMAT_VERSION, |h| h.version),
            created: header.map_or(0, |h| h.created_ns),
            next_id: self.inner.next(Ordering::Acquire),
            oldest_id: self.reader().next().map(|r| r.id),
            max_message: self.max_message(0),
            read_only: !self.inner.writable,
        }
    }
}

/// The background flush thread; dropping it stops and joins it.
#[derive(Debug)]
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    fn start(inner: Arc<Inner>, interval: Duration) -> Flusher {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("plog-flush".into())
            .spawn(move || {
                let (lock, cvar) = &*signal;
                let Ok(mut stopped) = lock.lock() else { return };
                while !*stopped {
                    match cvar.wait_timeout(stopped, interval) {
                        Ok((guard, _)) => stopped = guard,
                        Err(_) => return,
                    }
                    if !*stopped {
                        // A failed background flush has nobody to report to; the next
                        // explicit `flush` reports the error.
                        let _ = inner.map.flush();
                    }
                }
            })
            .ok();
        Flusher { stop, thread }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.plog");
        (dir, path)
    }

    #[test]
    fn flusher_stops_on_drop() {
        let (_dir, path) = tmp();
        let log = LogOptions::new()
            .flush_every(Duration::from_millis(1))
            .open(&path)
            .unwrap();
        log.write(Level::Info, "t", "x").unwrap();
        assert!(log._flusher.is_some());
        drop(log); // Joins the thread; a hang here fails the test by timeout.
    }

    #[test]
    fn position_of_block() {
        let (_dir, path) = tmp();
        let log = LogOptions::new()
            .blocks(10)
            .block_size(64)
            .open(&path)
            .unwrap();
        assert_eq!(log.inner.block_offset(0), 4096);
        assert_eq!(log.inner.block_offset(13), 4096 + 3 * 64);
    }
}
