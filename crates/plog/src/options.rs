//! [`LogOptions`]: how to open a log, and the open sequence that ties the pieces together.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::flusher::Flusher;
use crate::format::{DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS, Geometry};
use crate::log::{Log, LogState};
use crate::open::{Found, open_read_only, open_writable, validate};
use crate::{Error, Result};

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
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    blocks: Option<u64>,
    block_size: Option<u32>,
    lanes: Option<u32>,
    read_only: bool,
    must_exist: bool,
    flush_every: Option<Duration>,
    populate: Populate,
}

/// Whether a read-write open faults the ring's pages in ([`LogOptions::populate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Populate {
    /// Rings up to [`POPULATE_BYTES`] are populated, larger ones are not (the default).
    #[default]
    Auto,
    /// Populate any ring.
    Always,
    /// Populate none: the first write to each page faults it in.
    Never,
}

/// Rings up to this size are faulted in writable at every read-write open unless
/// [`LogOptions::populate`] says otherwise: about 0.25 us a page here, so 16 ms for the largest.
pub const POPULATE_BYTES: u64 = 256 << 20;

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

    /// Writer lanes for a new file: 1 (the default) or a power of two up to 16 dividing
    /// [`Self::blocks`]. A laned log splits its ring into that many rings of equal size, each
    /// with a reservation counter of its own; a writer writes to the lane of the processor it
    /// runs on, so that writers on different cores never contend for one counter's cache line
    /// (docs/plog-format.md, "Lanes"). Readers merge the lanes by record time. A record may
    /// take at most half a lane. Laned logs are format version 3, which builds before it
    /// refuse. Checked against an existing file as [`Self::blocks`] is.
    ///
    /// ```
    /// # fn main() -> Result<(), plog::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = plog::LogOptions::new().lanes(4).open(dir.path().join("app.plog"))?;
    /// let first = log.write(plog::Level::Info, "t", "one")?;
    /// let second = log.write(plog::Level::Info, "t", "two")?;
    /// let read: Vec<u64> = log.reader().map(|r| r.id).collect();
    /// assert_eq!(read, [first, second]);
    /// assert_eq!(log.stats().lanes, 4);
    /// # Ok(()) }
    /// ```
    pub fn lanes(mut self, lanes: u32) -> LogOptions {
        self.lanes = Some(lanes);
        self
    }

    /// Open read-only: the file must exist and be a valid log; writing is refused. Works while
    /// other processes write the file.
    pub fn read_only(mut self) -> LogOptions {
        self.read_only = true;
        self
    }

    /// Open read-write (the default).
    pub fn read_write(mut self) -> LogOptions {
        self.read_only = false;
        self
    }

    /// The file must already exist (by default a read-write open creates it when absent).
    pub fn must_exist(mut self) -> LogOptions {
        self.must_exist = true;
        self
    }

    /// Flush the mapping to disk every `interval` from a background thread, stopped when the
    /// [`Log`] is dropped. Ignored for read-only logs. A process forked from the one that
    /// opened the log has no flush thread (threads do not survive `fork`).
    pub fn flush_every(mut self, interval: Duration) -> LogOptions {
        self.flush_every = Some(interval);
        self
    }

    /// Fault the ring's pages in writable at a read-write open (`madvise(MADV_POPULATE_WRITE)`
    /// on Linux), so that the first lap of a fresh log, or the first writes of a process that
    /// just opened one, take no page fault (one per 4 KiB, several microseconds each in a VM).
    /// By default ([`Populate::Auto`]) rings up to [`POPULATE_BYTES`] are populated and larger
    /// ones are not. Elsewhere than Linux it does nothing.
    pub fn populate(mut self, populate: Populate) -> LogOptions {
        self.populate = populate;
        self
    }

    /// Opens (or creates) the log at `path`.
    ///
    /// # Errors
    /// [`Error::InvalidGeometry`] for a geometry outside the rules, [`Error::GeometryMismatch`],
    /// [`Error::BadMagic`], [`Error::UnsupportedVersion`], [`Error::OldFormat`],
    /// [`Error::CorruptHeader`], [`Error::HeaderLost`], [`Error::Truncated`], or the mapping's
    /// [`Error::Map`] (not found, a directory, no space left for a new file's blocks, ...).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Log> {
        let path = path.as_ref();
        let asked = Geometry::checked(
            self.blocks.unwrap_or(DEFAULT_BLOCKS),
            self.block_size.unwrap_or(DEFAULT_BLOCK_SIZE),
        )
        .and_then(|geometry| geometry.with_lanes(self.lanes.unwrap_or(1)))
        .map_err(|(field, value, rule)| Error::InvalidGeometry {
            path: path.to_path_buf(),
            field,
            value,
            rule,
        })?;
        let explicit = self.blocks.is_some() || self.block_size.is_some() || self.lanes.is_some();
        let writable = !self.read_only;
        let (map, found) = if writable {
            open_writable(path, asked, !self.must_exist)?
        } else {
            (open_read_only(path)?, Found::Existing)
        };
        let geometry = validate(&map, path)?;
        if explicit
            && (self.blocks.is_some_and(|b| b != geometry.blocks)
                || self.block_size.is_some_and(|b| b != geometry.block_size)
                || self.lanes.is_some_and(|l| l != geometry.lanes))
        {
            return Err(Error::GeometryMismatch {
                path: path.to_path_buf(),
                asked_blocks: asked.blocks,
                asked_block_size: asked.block_size,
                found_blocks: geometry.blocks,
                found_block_size: geometry.block_size,
                asked_lanes: asked.lanes,
                found_lanes: geometry.lanes,
            });
        }
        let lanes = LogState::lanes(map, geometry, writable);
        let Some(inner) = lanes.first().cloned() else {
            // Geometry allows no log without a lane.
            return Err(Error::CorruptHeader {
                path: path.to_path_buf(),
                field: "lanes",
                value: 0,
            });
        };
        let populate = match self.populate {
            Populate::Auto => geometry.ring_bytes() <= POPULATE_BYTES,
            Populate::Always => true,
            Populate::Never => false,
        };
        if writable && populate {
            // Only an optimisation: a kernel without the advice leaves the first stores to fault.
            let ring = usize::try_from(geometry.ring_bytes()).unwrap_or(usize::MAX);
            inner.map.populate_for_write(inner.ring_off, ring)?;
        }
        if writable && found != Found::Initialised {
            // Still under the exclusive lock, so no other read-write open recovers at once;
            // writers that opened earlier recovered first and write past the counter.
            for lane in &lanes {
                lane.recover_counter()?;
            }
        }
        inner.map.unlock()?;
        let flusher = match self.flush_every {
            Some(interval) if writable => Some(Flusher::start(Arc::clone(&inner), interval)),
            _ => None,
        };
        Ok(Log {
            inner,
            lanes: lanes.into_boxed_slice(),
            _flusher: flusher,
        })
    }
}
