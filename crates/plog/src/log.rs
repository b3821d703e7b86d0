//! [`Log`], the handle users hold, and [`LogState`], the state its readers and writers share.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use pmap::SharedMap;

use crate::clock::WallClock;
use crate::flusher::Flusher;
use crate::format::{
    CLAIM_LEN, FORMAT_VERSION, Geometry, LANE_COUNTER_STRIDE, LANE_COUNTERS_OFF, NEXT_OFF,
    POSITION_LIMIT, RECORD_HEADER_LEN, StaticHeader,
};
use crate::{Error, Level, LogOptions, Result};

/// The shared state of one lane of an open log: the mapping and what was learned at open. A
/// log of one lane has one; a laned log one for each lane, sharing the mapping, each seeing
/// its lane as a ring of its own (its counter, its blocks): the claim protocol, the reader and
/// recovery work on a lane exactly as they work on a log of one lane. Positions here are a
/// lane's own; [`Self::global_id`] turns one into the record id users see.
#[derive(Debug)]
pub(crate) struct LogState {
    pub(crate) map: Arc<SharedMap>,
    /// The whole file's geometry (every lane's blocks).
    pub(crate) geometry: Geometry,
    pub(crate) writable: bool,
    /// This lane's index, and log2 of the number of lanes (a power of two).
    lane: u64,
    lane_shift: u32,
    /// The byte offset of this lane's reservation counter.
    counter_off: usize,
    pub(crate) ring_off: usize,
    /// Blocks in this lane's ring.
    pub(crate) blocks: u64,
    pub(crate) block_shift: u32,
    /// Bytes per block (`1 << block_shift`).
    pub(crate) block_size: usize,
    /// The largest record content (`Geometry::max_content`), kept for the write path.
    pub(crate) max_content: usize,
    /// Content bytes per block: the block less its claim word.
    pub(crate) content_per_block: usize,
    /// `blocks - 1` when `blocks` is a power of two (the default geometry): a slot is then a
    /// mask, not a 64-bit division (about 40 cycles, several of which a record would pay).
    slot_mask: Option<u64>,
    pub(crate) clock: WallClock,
}

impl LogState {
    /// The state of a log of one lane (or of lane 0 of a laned log, for what the header holds).
    pub(crate) fn new(map: SharedMap, geometry: Geometry, writable: bool) -> LogState {
        LogState::lane(Arc::new(map), geometry, 0, writable)
    }

    /// The state of lane `lane` of the log mapped by `map`.
    pub(crate) fn lane(
        map: Arc<SharedMap>,
        geometry: Geometry,
        lane: u32,
        writable: bool,
    ) -> LogState {
        let blocks = geometry.lane_blocks();
        let block_shift = geometry.block_size.trailing_zeros();
        let counter_off = if geometry.lanes > 1 {
            LANE_COUNTERS_OFF + lane as usize * LANE_COUNTER_STRIDE
        } else {
            NEXT_OFF
        };
        // lane < lanes, and the whole ring fits in usize (checked by Geometry).
        let ring_off =
            geometry.header_size() as usize + ((u64::from(lane) * blocks) << block_shift) as usize;
        LogState {
            map,
            geometry,
            writable,
            lane: lane.into(),
            lane_shift: geometry.lanes.trailing_zeros(),
            counter_off,
            ring_off,
            blocks,
            block_shift,
            block_size: geometry.block_size as usize,
            max_content: geometry.max_content(),
            content_per_block: geometry.content_per_block(),
            slot_mask: blocks.is_power_of_two().then(|| blocks - 1),
            clock: WallClock::new(),
        }
    }

    /// The states of every lane of the log mapped by `map` (one for a log of one lane).
    pub(crate) fn lanes(map: SharedMap, geometry: Geometry, writable: bool) -> Vec<Arc<LogState>> {
        let map = Arc::new(map);
        (0..geometry.lanes)
            .map(|lane| Arc::new(LogState::lane(Arc::clone(&map), geometry, lane, writable)))
            .collect()
    }

    /// The record id of this lane's position `pos`: `pos * lanes + lane` (so `pos` itself in a
    /// log of one lane). Unique over the log and increasing within a lane.
    #[inline(always)]
    pub(crate) fn global_id(&self, pos: u64) -> u64 {
        (pos << self.lane_shift) | self.lane
    }

    /// This lane's first position whose record id is at least `id`.
    #[inline]
    pub(crate) fn lane_position(&self, id: u64) -> u64 {
        id.saturating_sub(self.lane).div_ceil(1 << self.lane_shift)
    }

    /// The byte offset of this lane's reservation counter.
    #[inline(always)]
    pub(crate) fn counter_off(&self) -> usize {
        self.counter_off
    }

    /// Gives the mapping back (for the open path, which probes a file under a candidate
    /// geometry before it has a log): `None` if another lane's state still shares it.
    pub(crate) fn into_map(self) -> Option<SharedMap> {
        Arc::into_inner(self.map)
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
            .load_u64(self.counter_off, order)
            .unwrap_or(0)
            .min(POSITION_LIMIT)
    }

    /// The ring slot of position `pos`.
    #[inline]
    pub(crate) fn slot_of(&self, pos: u64) -> u64 {
        match self.slot_mask {
            Some(mask) => pos & mask,
            None => pos % self.blocks,
        }
    }

    /// Byte offset in the map of the block holding position `pos`.
    #[inline]
    pub(crate) fn block_offset(&self, pos: u64) -> usize {
        // slot < blocks, and ring_off + blocks << shift fits in usize (checked at open).
        self.ring_off + ((self.slot_of(pos) as usize) << self.block_shift)
    }

    /// Content bytes left in the block that holds content byte `at` of a record.
    #[inline]
    pub(crate) fn room_at(&self, at: usize) -> usize {
        if at < self.content_per_block {
            self.content_per_block - at
        } else {
            self.content_per_block - at % self.content_per_block
        }
    }

    /// Byte offset in the map of content byte `at` of the record at `pos` (content is
    /// everything after the first claim word: the header's other fields, tag, payload; each
    /// block carries [`Self::content_per_block`] of it after its own claim word). Valid for
    /// `at` below the record's content length, which never crosses the ring's end.
    #[inline]
    pub(crate) fn content_offset(&self, pos: u64, at: usize) -> usize {
        if at < self.content_per_block {
            // The first block: every one-block record, and the header of every record.
            return self.block_offset(pos) + CLAIM_LEN + at;
        }
        let block = (at / self.content_per_block) as u64;
        self.block_offset(pos + block) + CLAIM_LEN + at % self.content_per_block
    }

    /// The largest payload a record with a tag of `tag_len` bytes can carry.
    pub(crate) fn max_message(&self, tag_len: usize) -> usize {
        self.geometry
            .max_content()
            .saturating_sub(RECORD_HEADER_LEN - CLAIM_LEN + tag_len)
    }
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
    /// Lane 0: the state the header's words (cursors, user area, wake word) are reached
    /// through, and the only lane of a log of one lane.
    pub(crate) inner: Arc<LogState>,
    /// Every lane (`inner` first).
    pub(crate) lanes: Box<[Arc<LogState>]>,
    // Held for its Drop, which stops and joins the thread.
    pub(crate) _flusher: Option<Flusher>,
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
    /// Writer lanes (1 unless the log was created with [`LogOptions::lanes`]).
    pub lanes: u32,
    /// An id past every record's: for a log of one lane, the id the next record will get (if it
    /// does not need padding), the reservation counter, i.e. the number of blocks ever
    /// reserved; for a laned log, the largest of the ids each lane's next record would get.
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
        LogOptions::new().read_only().open(path)
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
        if self.lanes.len() == 1 {
            // One lane: positions are ids.
            return self.inner.write(level, tag.as_bytes(), payload.as_ref());
        }
        let lane = self.lane_for_write();
        lane.write(level, tag.as_bytes(), payload.as_ref())
            .map(|pos| lane.global_id(pos))
    }

    /// The lane this thread writes to: the only one, or in a laned log the lane of the
    /// processor the thread runs on (of the thread where the platform does not say), so that
    /// writers on different cores use different counters.
    #[inline(always)]
    pub(crate) fn lane_for_write(&self) -> &LogState {
        if self.lanes.len() == 1 {
            return &self.inner;
        }
        let lane = crate::lanes::writer_lane(self.lanes.len());
        self.lanes.get(lane).unwrap_or(&self.inner)
    }

    /// Writes one structured record (message, fields, spans; record kind 1) and returns its
    /// id, as [`Self::write`] does. Readers give its parts back ([`crate::Record::fields`],
    /// [`crate::Record::spans`]); builds before structured records skip it.
    ///
    /// # Errors
    /// As [`Self::write`]; the payload must fit [`Self::max_message`] (nothing is cut).
    #[inline]
    pub fn write_structured(
        &self,
        level: Level,
        tag: &str,
        payload: &crate::StructuredPayload,
    ) -> Result<u64> {
        let lane = self.lane_for_write();
        lane.write_kind(
            level,
            crate::format::KIND_STRUCTURED,
            tag.as_bytes(),
            payload.as_bytes(),
        )
        .map(|pos| lane.global_id(pos))
    }

    /// Writes the mapping to disk and waits until it is there.
    ///
    /// # Errors
    /// The I/O error from the operating system.
    pub fn flush(&self) -> Result<()> {
        Ok(self.inner.map.flush()?)
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.inner.map.path()
    }

    /// Whether this handle can write.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        !self.inner.writable
    }

    /// The largest payload a record with a tag of `tag_len` bytes can carry.
    #[must_use]
    pub fn max_message(&self, tag_len: usize) -> usize {
        self.inner.max_message(tag_len)
    }

    /// Geometry and counters. Finding `oldest_id` scans at most one ring of block headers.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let g = self.inner.geometry;
        let header = self.inner.map.read::<StaticHeader>(0).ok();
        Stats {
            path: self.inner.path(),
            blocks: g.blocks,
            block_size: g.block_size,
            header_size: g.header_size(),
            file_size: self.inner.map.len() as u64,
            version: header.map_or(FORMAT_VERSION, |h| h.version),
            created: header.map_or(0, |h| h.created_ns),
            lanes: g.lanes,
            next_id: self
                .lanes
                .iter()
                .map(|lane| lane.global_id(lane.next(Ordering::Acquire)))
                .max()
                .unwrap_or(0),
            oldest_id: self.reader().next().map(|r| r.id),
            max_message: self.max_message(0),
            read_only: !self.inner.writable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert!(log._flusher.as_ref().is_some_and(Flusher::runs_here));
        drop(log); // Joins the thread; a hang here fails the test by timeout.
    }

    #[test]
    fn position_of_block_and_content() {
        let (_dir, path) = tmp();
        let log = LogOptions::new()
            .blocks(10)
            .block_size(64)
            .open(&path)
            .unwrap();
        assert_eq!(log.inner.block_offset(0), 4096);
        assert_eq!(log.inner.block_offset(13), 4096 + 3 * 64);
        assert_eq!(log.inner.content_offset(3, 0), 4096 + 3 * 64 + 8);
        assert_eq!(log.inner.content_offset(3, 55), 4096 + 3 * 64 + 63);
        assert_eq!(log.inner.content_offset(3, 56), 4096 + 4 * 64 + 8);
    }
}
