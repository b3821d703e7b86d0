//! Reading records back: validation of one slot, and the reader that walks the ring.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use zerocopy::IntoBytes;

use crate::format::{KIND_PAD, KIND_RECORD, RECORD_HEADER_LEN, RecordHeader, padded};
use crate::log::Inner;
use crate::{Error, Filter, Format, Level, Log, Record, Result};

/// What the block at one position holds.
pub(crate) enum Slot {
    /// A complete, valid record of this many blocks.
    Record(Record, u64),
    /// Padding of this many blocks, written where a record would have straddled the ring's end.
    Pad(u64),
    /// No valid record starts here: never written, written in an earlier lap, in flight, left
    /// half-written by a crash, damaged, or inside another record.
    Invalid,
    /// Writers have lapped this position while it was read: the copy may be torn.
    Torn,
}

impl Inner {
    /// Whether writers have reserved past `pos + blocks`, so the slot of `pos` may hold bytes
    /// of a later lap. Called after the copy and an acquire fence (docs/plog-format.md,
    /// "Reading").
    fn lapped(&self, pos: u64) -> bool {
        self.next(Ordering::Relaxed) > pos.saturating_add(self.blocks)
    }

    fn invalid_or_torn(&self, pos: u64) -> Slot {
        fence(Ordering::Acquire);
        if self.lapped(pos) {
            Slot::Torn
        } else {
            Slot::Invalid
        }
    }

    /// Reads and validates the record that should start at `pos`. Every field is checked
    /// before it is used, so any byte pattern gives `Invalid`, never a panic or a read out of
    /// bounds.
    pub(crate) fn read_slot(&self, pos: u64) -> Slot {
        let off = self.block_offset(pos);
        let Ok(commit) = self.map.load_u64(off, Ordering::Acquire) else {
            return Slot::Invalid;
        };
        if commit != pos.wrapping_add(1) {
            return self.invalid_or_torn(pos);
        }
        let Ok(header) = self.map.read::<RecordHeader>(off) else {
            return Slot::Invalid;
        };
        let Some(blocks) = self.checked_span(pos, &header) else {
            return self.invalid_or_torn(pos);
        };
        let tag_len = usize::from(header.tag_len);
        // checked_span bounded tag and payload by the record's blocks, which lie in the ring.
        let body = RECORD_HEADER_LEN + tag_len + header.len as usize;
        let mut image = vec![0u8; padded(body)];
        if self.map.read_at(off, &mut image[..body]).is_err() {
            return Slot::Invalid;
        }
        // The checksum covers the copy; the header read above (which sized the copy, and whose
        // fields are returned) must be the same bytes.
        let same_header = image[8..RECORD_HEADER_LEN] == header.as_bytes()[8..];
        let crc_ok = same_header
            && RecordHeader::checksum_image(&RecordHeader::image_of_copy(pos, &image))
                == header.crc;
        fence(Ordering::Acquire);
        let commit_again = self.map.load_u64(off, Ordering::Relaxed).unwrap_or(0);
        if self.lapped(pos) || commit_again != commit {
            return Slot::Torn;
        }
        if !crc_ok {
            return Slot::Invalid;
        }
        if header.kind == KIND_PAD {
            return Slot::Pad(blocks);
        }
        let Some(level) = Level::from_code(header.level) else {
            return Slot::Invalid;
        };
        image.truncate(body);
        let payload = image.split_off(RECORD_HEADER_LEN + tag_len);
        let tag = String::from_utf8_lossy(&image[RECORD_HEADER_LEN..]).into_owned();
        let record = Record {
            id: pos,
            time: header.time_ns,
            level,
            tag,
            pid: header.pid,
            payload,
        };
        Slot::Record(record, blocks)
    }

    /// The number of blocks the record claims, if its header is consistent: a known kind, a
    /// span of 1 to half the ring that does not cross the ring's end, and a body that needs
    /// exactly that many blocks.
    fn checked_span(&self, pos: u64, header: &RecordHeader) -> Option<u64> {
        let blocks = u64::from(header.blocks);
        let slot = pos % self.blocks;
        if blocks == 0 || blocks > self.geometry.max_record_blocks() || slot + blocks > self.blocks
        {
            return None;
        }
        match header.kind {
            KIND_PAD => {
                (header.len == 0 && header.tag_len == 0 && header.level == 0).then_some(blocks)
            }
            KIND_RECORD => {
                let body =
                    RECORD_HEADER_LEN as u64 + u64::from(header.tag_len) + u64::from(header.len);
                let size = u64::from(self.geometry.block_size);
                (Level::from_code(header.level).is_some() && body.div_ceil(size) == blocks)
                    .then_some(blocks)
            }
            _ => None,
        }
    }
}

/// What one step of a reader found.
pub(crate) enum Step {
    /// The next record passing the filter.
    Record(Record),
    /// The reader is at the newest position: nothing more has been reserved.
    End,
    /// Blocks were reserved but no valid record starts at the reader's position, and none after
    /// it yet: a record in flight (or a dead writer's hole at the end).
    Pending,
    /// No valid record at `at`, but one at `next_valid`: a hole (dead writer, damage), or a
    /// record still in flight behind later ones.
    Hole {
        /// The reader's position.
        at: u64,
        /// The next position holding a valid record or padding.
        next_valid: u64,
        /// `at` is the oldest position in the ring: likely inside a record whose head was
        /// overwritten, and never a record in flight (its writer would be a lap late).
        at_oldest: bool,
    },
}

/// Reads records from oldest to newest (or from a given id), skipping what fails validation.
///
/// A `Reader` is an [`Iterator`] over [`Record`]s; it ends at the newest record, and calling
/// `next` again later returns records written since. When writers lap it (overwrite records
/// before it reached them) it jumps to the oldest surviving record and counts what it missed
/// in [`Reader::lost`].
///
/// ```
/// # fn main() -> Result<(), plog::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("app.plog");
/// use plog::{Filter, Level, Log};
/// let log = Log::open(&path)?;
/// log.write(Level::Debug, "net", "connecting")?;
/// log.write(Level::Error, "net", "refused")?;
/// let errors: Vec<String> = log
///     .reader()
///     .with_filter(Filter::all().min_level(Level::Warn))
///     .map(|r| r.message().into_owned())
///     .collect();
/// assert_eq!(errors, ["refused"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Reader {
    pub(crate) inner: Arc<Inner>,
    pos: u64,
    counting: bool,
    lost: u64,
    padding: u64,
    filter: Filter,
}

impl Reader {
    pub(crate) fn new(inner: Arc<Inner>, from: Option<u64>) -> Reader {
        let next = inner.next(Ordering::Acquire);
        let oldest = next.saturating_sub(inner.blocks);
        let (pos, lost) = match from {
            // Ids asked for but already overwritten are lost; blocks skipped to reach the
            // first record at or after `id` are not.
            Some(id) => (id.clamp(oldest, next), oldest.saturating_sub(id)),
            None => (oldest, 0),
        };
        // Position 0 and the end are record boundaries: holes after them count as lost.
        let counting = pos == 0 || pos == next;
        Reader {
            inner,
            pos,
            counting,
            lost,
            padding: 0,
            filter: Filter::all(),
        }
    }

    /// Returns only records that pass `filter`.
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Reader {
        self.filter = filter;
        self
    }

    /// The position (id) this reader looks at next: save it to resume later.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Blocks that were overwritten, torn, or invalid after this reader started and before it
    /// reached them (for [`Log::reader_from`], also the ids asked for that were already
    /// overwritten). Ids are block positions, so this is exact in ids; in records it is an
    /// upper bound, exact when every record takes one block. Padding is not counted, nor are
    /// invalid blocks skipped to find the first record when the reader started inside the ring
    /// (it may start inside a record whose head was overwritten); laps always are.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Blocks of padding this reader stepped over (written where a record would have crossed
    /// the ring's end). With [`Self::lost`] and the blocks of the records read, it accounts for
    /// every id the reader advanced over.
    pub fn padding(&self) -> u64 {
        self.padding
    }

    /// Saves this reader's position under `name` in the log's header (see
    /// [`Log::save_cursor`]).
    ///
    /// # Errors
    /// As [`Log::save_cursor`].
    pub fn save_cursor(&self, name: &str) -> Result<()> {
        crate::cursor::save(&self.inner, name, self.pos)
    }

    /// Moves past a hole to the record at `to`, counting the skipped blocks as lost (unless
    /// the reader has not yet found its first record: it may have started inside one).
    pub(crate) fn skip_hole(&mut self, to: u64) {
        if self.counting {
            self.lost += to.saturating_sub(self.pos);
        }
        self.pos = self.pos.max(to);
    }

    /// Moves past blocks that writers overwrote before this reader reached them: always lost.
    fn skip_lapped(&mut self, to: u64) {
        self.lost += to.saturating_sub(self.pos);
        self.pos = self.pos.max(to);
    }

    pub(crate) fn step(&mut self) -> Step {
        let inner = Arc::clone(&self.inner);
        loop {
            let next = inner.next(Ordering::Acquire);
            if self.pos >= next {
                return Step::End;
            }
            let oldest = next.saturating_sub(inner.blocks);
            if self.pos < oldest {
                self.skip_lapped(oldest);
            }
            match inner.read_slot(self.pos) {
                Slot::Record(record, blocks) => {
                    self.pos += blocks;
                    self.counting = true;
                    if self.filter.is_all() || self.filter.matches(&record) {
                        return Step::Record(record);
                    }
                }
                Slot::Pad(blocks) => {
                    self.pos += blocks;
                    self.padding += blocks;
                    self.counting = true;
                }
                Slot::Torn => {}
                Slot::Invalid => match self.find_valid_after(self.pos, next) {
                    Some(Some(next_valid)) => {
                        return Step::Hole {
                            at: self.pos,
                            next_valid,
                            at_oldest: self.pos == oldest,
                        };
                    }
                    Some(None) => return Step::Pending,
                    None => {} // Lapped while looking: start over.
                },
            }
        }
    }

    /// The first position after `pos` and before `next` where a valid record or padding
    /// starts; `Some(None)` if there is none, `None` if the reader was lapped meanwhile.
    fn find_valid_after(&self, pos: u64, next: u64) -> Option<Option<u64>> {
        let mut at = pos + 1;
        while at < next {
            match self.inner.read_slot(at) {
                Slot::Record(..) | Slot::Pad(_) => return Some(Some(at)),
                Slot::Torn => return None,
                Slot::Invalid => at += 1,
            }
        }
        Some(None)
    }

    /// Writes every remaining record to `out` in `format` and returns how many were written.
    ///
    /// # Errors
    /// [`Error::Io`] from `out`.
    pub fn dump(&mut self, out: &mut impl Write, format: Format) -> Result<u64> {
        let mut written = 0;
        for record in self.by_ref() {
            format.write(&record, out).map_err(|source| Error::Io {
                op: "write dump",
                source,
            })?;
            written += 1;
        }
        out.flush().map_err(|source| Error::Io {
            op: "flush dump",
            source,
        })?;
        Ok(written)
    }
}

impl Iterator for Reader {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            match self.step() {
                Step::Record(record) => return Some(record),
                Step::End | Step::Pending => return None,
                Step::Hole { next_valid, .. } => self.skip_hole(next_valid),
            }
        }
    }
}

/// What [`Log::dump`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpSummary {
    /// Records written.
    pub written: u64,
    /// Blocks lost while dumping (see [`Reader::lost`]).
    pub lost: u64,
}

impl Log {
    /// A reader from the oldest surviving record to the newest.
    pub fn reader(&self) -> Reader {
        Reader::new(Arc::clone(&self.inner), None)
    }

    /// A reader from record `id` on (ids are positions: from the first record at or after
    /// `id`). An id older than the oldest surviving record starts at the oldest; one past the
    /// newest starts at the end.
    pub fn reader_from(&self, id: u64) -> Reader {
        Reader::new(Arc::clone(&self.inner), Some(id))
    }

    /// Writes every record passing `filter` from id `since` (or from the oldest) to `out`.
    ///
    /// # Errors
    /// [`Error::Io`] from `out`.
    pub fn dump(
        &self,
        out: &mut impl Write,
        filter: &Filter,
        since: Option<u64>,
        format: Format,
    ) -> Result<DumpSummary> {
        let mut reader = Reader::new(Arc::clone(&self.inner), since).with_filter(filter.clone());
        let written = reader.dump(out, format)?;
        Ok(DumpSummary {
            written,
            lost: reader.lost(),
        })
    }
}
