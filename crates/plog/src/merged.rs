//! [`Reader`], the reader users hold: one lane's reader, or a laned log's lanes merged by time.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::log::LogState;
use crate::protocol::Sleeper;
use crate::reader::{BATCH_RECORDS, LaneReader, Step};
use crate::{DumpSummary, Error, Filter, Format, Log, Record, RecordRef, Result};

/// Reads records from oldest to newest (or from a given id), skipping what fails validation.
///
/// A `Reader` is an [`Iterator`] over [`Record`]s; it ends at the newest record, and calling
/// `next` again later returns records written since. When writers lap it (overwrite records
/// before it reached them) it jumps to the oldest surviving record and counts what it missed
/// in [`Reader::lost`].
///
/// A `Reader` never waits. A record still being written when a later one is already published
/// is a hole to it: it skips the hole and counts its blocks lost, even if the record is
/// published a moment later. A record still being written at the newest position ends the
/// iteration there, and a later call looks again. Use a [`crate::Follower`] to wait for such
/// records (it gives a hole [`crate::FollowOptions::hole_grace`]). Each `next` does bounded
/// work: a call that keeps being lapped (writers overwriting records faster than it copies
/// them) returns `None` after a few rounds, and the next call goes on from there.
///
/// A reader of a laned log ([`crate::LogOptions::lanes`]) reads every lane and returns their
/// records merged by time: of the records each lane has ready, the earliest (equal times by
/// id). Within a lane records come in id order, as in a log of one lane; across lanes the
/// order is the writers' clocks', so a record a writer stamped before another's but published
/// after the reader passed that time comes when the reader finds it, not before. Its counts
/// ([`Self::lost`], [`Self::padding`], ...) are the sums over the lanes.
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
    /// Lane 0's state, through which the header's words are reached.
    header: Arc<LogState>,
    lanes: Lanes,
}

#[derive(Debug)]
enum Lanes {
    /// A log of one lane: its reader, every call passed straight on.
    One(LaneReader),
    /// A laned log: every lane's reader, merged.
    Many(Merge),
}

/// The lanes of a laned log, merged by record time.
#[derive(Debug)]
struct Merge {
    lanes: Vec<LaneReader>,
    /// Whether lane `k`'s reader holds a record (its current one) not yet returned.
    held: Vec<bool>,
    /// The lane whose record the last step returned.
    current: Option<usize>,
    /// How long a hole in a lane is waited for before it is skipped (zero for readers that do
    /// not wait: at once).
    hole_grace: Duration,
    /// Per lane: the position of the hole waited for, and since when.
    holes: Vec<Option<(u64, Instant)>>,
    /// The earliest key (time, id) held by a lane other than [`Self::current`] when the last
    /// full step chose it ([`NO_BOUND`] if none held one): while the current lane's next
    /// records, already validated in its batch, come before it, they come next (a run).
    bound: (u64, u64),
}

/// The bound of a run when no other lane holds a record: the run lasts the current lane's
/// batch.
const NO_BOUND: (u64, u64) = (u64::MAX, u64::MAX);

/// Holes one lane may skip in one step before the step says [`Step::Again`].
const HOLE_ROUNDS: usize = 4;

impl Merge {
    /// The key records are merged by: lane `k`'s held record's time, then its id.
    #[inline(always)]
    fn key(&self, k: usize) -> Option<(u64, u64)> {
        let lane = self.lanes.get(k)?;
        let (time, pos) = lane.current_time_and_position()?;
        Some((time, lane.inner.global_id(pos)))
    }

    /// The next record in time order over the lanes.
    ///
    /// A run: while the lane just returned has its next record validated in its batch and
    /// earlier than every record the other lanes hold ([`Self::bound`]), that record is next
    /// and no other lane is looked at. Lanes holding nothing are looked at again when the run
    /// ends (the batch is used up, at most [`BATCH_RECORDS`] records later): a record they
    /// publish meanwhile comes when the reader finds it, as the type's contract says of any
    /// record published after the reader passed its time.
    fn step(&mut self) -> Step {
        if let Some(k) = self.current
            && let Some(lane) = self.lanes.get_mut(k)
            && lane.step_ready()
        {
            if self.key(k).is_some_and(|key| key < self.bound) {
                return Step::Record;
            }
            // Lane k holds its next record but another lane's comes first.
            self.current = None;
            if let Some(held) = self.held.get_mut(k) {
                *held = true;
            }
        }
        self.step_full()
    }

    /// A step that looks at every lane: each lane holding no record is stepped, and the
    /// earliest record held is returned.
    fn step_full(&mut self) -> Step {
        if let Some(k) = self.current.take()
            && let Some(held) = self.held.get_mut(k)
        {
            *held = false;
        }
        let mut again = false;
        let mut pending = false;
        for k in 0..self.lanes.len() {
            if self.held[k] {
                continue;
            }
            let mut skipped = 0;
            loop {
                match self.lanes[k].step() {
                    Step::Record => {
                        self.held[k] = true;
                        self.holes[k] = None;
                    }
                    Step::End => self.holes[k] = None,
                    Step::Again => again = true,
                    Step::Pending => pending = true,
                    Step::Truncated(len) => return Step::Truncated(len),
                    Step::Hole {
                        at,
                        next_valid,
                        at_oldest,
                    } => {
                        let waited = at_oldest
                            || self.hole_grace.is_zero()
                            || match self.holes[k] {
                                Some((hole, since)) if hole == at => {
                                    since.elapsed() >= self.hole_grace
                                }
                                _ => {
                                    self.holes[k] = Some((at, Instant::now()));
                                    false
                                }
                            };
                        if !waited {
                            pending = true;
                        } else if skipped < HOLE_ROUNDS {
                            self.holes[k] = None;
                            self.lanes[k].skip_hole(next_valid);
                            skipped += 1;
                            continue;
                        } else {
                            again = true;
                        }
                    }
                }
                break;
            }
        }
        let mut earliest: Option<((u64, u64), usize)> = None;
        let mut second = NO_BOUND;
        for k in 0..self.lanes.len() {
            if !self.held[k] {
                continue;
            }
            if let Some(key) = self.key(k) {
                match earliest {
                    Some((best, _)) if key >= best => second = second.min(key),
                    _ => {
                        if let Some((best, _)) = earliest {
                            second = second.min(best);
                        }
                        earliest = Some((key, k));
                    }
                }
            }
        }
        match earliest {
            Some((_, k)) => {
                self.current = Some(k);
                self.bound = second;
                Step::Record
            }
            None if again => Step::Again,
            None if pending => Step::Pending,
            None => Step::End,
        }
    }

    /// The position (in its lane) lane `k` would return next: its held record's, if it holds
    /// one not yet returned, else its reader's position.
    fn lane_resume(&self, k: usize, lane: &LaneReader) -> u64 {
        match lane.current_time_and_position() {
            Some((_, pos)) if self.held[k] && self.current != Some(k) => pos,
            _ => lane.position(),
        }
    }

    /// The id the merged reader looks at next: the smallest over the lanes of the id each lane
    /// would return next.
    fn position(&self) -> u64 {
        self.lanes
            .iter()
            .enumerate()
            .map(|(k, lane)| lane.inner.global_id(self.lane_resume(k, lane)))
            .min()
            .unwrap_or(0)
    }

    /// Each lane's distance (in positions) from where a reader from `id` would start it to
    /// where this reader would resume it: what a cursor's lane table saves.
    fn offsets_from(&self, id: u64) -> Vec<u64> {
        self.lanes
            .iter()
            .enumerate()
            .map(|(k, lane)| {
                self.lane_resume(k, lane)
                    .saturating_sub(lane.inner.lane_position(id))
            })
            .collect()
    }

    fn sum(&self, count: impl Fn(&LaneReader) -> u64) -> u64 {
        self.lanes.iter().map(count).sum()
    }
}

impl Reader {
    /// A reader of `lanes` (a log's, in order) from the first record at or after id `from`, or
    /// from the oldest.
    pub(crate) fn new(
        header: &Arc<LogState>,
        lanes: &[Arc<LogState>],
        from: Option<u64>,
    ) -> Reader {
        Reader::resuming(header, lanes, from, &[])
    }

    /// [`Reader::new`], each lane `k` of a laned log started `offsets[k]` positions past where
    /// `from` starts it (a cursor's lane table; lanes without an offset start where `from`
    /// does). The caller has checked the offsets against the lanes' counters.
    pub(crate) fn resuming(
        header: &Arc<LogState>,
        lanes: &[Arc<LogState>],
        from: Option<u64>,
        offsets: &[u64],
    ) -> Reader {
        let reader = match lanes {
            [one] => Lanes::One(LaneReader::new(Arc::clone(one), from)),
            many => Lanes::Many(Merge {
                lanes: many
                    .iter()
                    .enumerate()
                    .map(|(k, lane)| {
                        let offset = offsets.get(k).copied().unwrap_or(0);
                        let from = from.map(|id| lane.lane_position(id).saturating_add(offset));
                        LaneReader::new(Arc::clone(lane), from)
                    })
                    .collect(),
                held: vec![false; many.len()],
                current: None,
                hole_grace: Duration::ZERO,
                holes: vec![None; many.len()],
                bound: NO_BOUND,
            }),
        };
        Reader {
            header: Arc::clone(header),
            lanes: reader,
        }
    }

    /// Applies `change` to every lane's reader.
    fn each(mut self, change: impl Fn(LaneReader) -> LaneReader) -> Reader {
        self.lanes = match self.lanes {
            Lanes::One(lane) => Lanes::One(change(lane)),
            Lanes::Many(mut merge) => {
                merge.lanes = merge.lanes.into_iter().map(change).collect();
                Lanes::Many(merge)
            }
        };
        self
    }

    /// Validates up to `BATCH_RECORDS` records with one load of the counter (see
    /// `LogState::read_batch`): for readers that return what they read at once.
    pub(crate) fn batched(self) -> Reader {
        self.each(LaneReader::batched)
    }

    /// For a laned log: how long a hole in one lane is waited for before it is skipped (a
    /// follower's grace; a log of one lane leaves holes to its caller, [`Step::Hole`]).
    pub(crate) fn with_hole_grace(mut self, grace: Duration) -> Reader {
        if let Lanes::Many(merge) = &mut self.lanes {
            merge.hole_grace = grace;
        }
        self
    }

    /// Returns only records that pass `filter`.
    #[must_use]
    pub fn with_filter(self, filter: Filter) -> Reader {
        self.each(|lane| lane.with_filter(filter.clone()))
    }

    /// The position (id) this reader looks at next: save it to resume later. For a laned log,
    /// the smallest of the ids its lanes look at next: a reader started there
    /// ([`Log::reader_from`]) reads again the records of the other lanes between that id and
    /// theirs (never misses one); [`Self::save_cursor`] saves where each lane is, and a reader
    /// resumed from that cursor re-reads nothing.
    #[must_use]
    pub fn position(&self) -> u64 {
        match &self.lanes {
            Lanes::One(lane) => lane.position(),
            Lanes::Many(merge) => merge.position(),
        }
    }

    fn count(&self, count: impl Fn(&LaneReader) -> u64) -> u64 {
        match &self.lanes {
            Lanes::One(lane) => count(lane),
            Lanes::Many(merge) => merge.sum(count),
        }
    }

    /// Blocks that were overwritten, torn, or invalid after this reader started and before it
    /// reached them (for [`Log::reader_from`], also the ids asked for that were already
    /// overwritten). Ids are block positions, so this is exact in ids; in records it is an
    /// upper bound, exact when every record takes one block. Padding is not counted, nor are
    /// invalid blocks skipped to find the first record when the reader started inside the ring
    /// (it may start inside a record whose head was overwritten); laps always are.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.count(LaneReader::lost)
    }

    /// The part of [`Self::lost`] that no writer lapped: blocks this reader skipped because no
    /// valid record started there (damaged, left half-written by a writer that died, or never
    /// published within a follower's [`crate::FollowOptions::hole_grace`]). Counted as
    /// [`Self::lost`] counts holes: not before the first record of a reader started inside the
    /// ring.
    #[must_use]
    pub fn invalid(&self) -> u64 {
        self.count(LaneReader::invalid)
    }

    /// Blocks of padding this reader stepped over (written where a record would have crossed
    /// the ring's end). With [`Self::lost`], [`Self::unknown_kinds`] and the blocks of the
    /// records read, it accounts for every id the reader advanced over.
    #[must_use]
    pub fn padding(&self) -> u64 {
        self.count(LaneReader::padding)
    }

    /// Blocks of valid records of a kind this build does not read (written by a later
    /// format's writer), stepped over: not lost, and not returned.
    #[must_use]
    pub fn unknown_kinds(&self) -> u64 {
        self.count(LaneReader::unknown_kinds)
    }

    /// Saves this reader's position under `name` in the log's header (see
    /// [`Log::save_cursor`]); for a laned log also where each lane is, so that
    /// [`Log::reader_from_cursor`] resumes each exactly there.
    ///
    /// # Errors
    /// As [`Log::save_cursor`].
    pub fn save_cursor(&self, name: &str) -> Result<()> {
        let position = self.position();
        let offsets = match &self.lanes {
            Lanes::One(_) => None,
            Lanes::Many(merge) => Some(merge.offsets_from(position)),
        };
        crate::cursor::save(self.header(), name, position, offsets.as_deref())
    }

    /// The state of lane 0, through which the header's words are reached.
    pub(crate) fn header(&self) -> &Arc<LogState> {
        &self.header
    }

    /// Whether writers have reserved past where this reader stands, in any lane (the counter
    /// loaded as `order` says, or as [`Sleeper::recheck`] does after a follower announced its
    /// sleep when `order` is `None`).
    pub(crate) fn reserved_past(&self, order: Option<Ordering>) -> bool {
        let past = |lane: &LaneReader| {
            let next = match order {
                Some(order) => lane.inner.next(order),
                None => lane
                    .inner
                    .map
                    .load_word_u64(lane.inner.counter_off())
                    .map_or(0, |counter| Sleeper::recheck(&counter))
                    .min(crate::format::POSITION_LIMIT),
            };
            next > lane.position()
        };
        match &self.lanes {
            Lanes::One(lane) => past(lane),
            Lanes::Many(merge) => merge.lanes.iter().any(past),
        }
    }

    /// Moves past a hole (a log of one lane's [`Step::Hole`]; a laned log never returns one).
    pub(crate) fn skip_hole(&mut self, to: u64) {
        if let Lanes::One(lane) = &mut self.lanes {
            lane.skip_hole(to);
        }
    }

    /// Makes the next step look at the file's length before it reads.
    pub(crate) fn look_next_time(&mut self) {
        match &mut self.lanes {
            Lanes::One(lane) => lane.look_next_time(),
            Lanes::Many(merge) => merge.lanes.iter_mut().for_each(LaneReader::look_next_time),
        }
    }

    /// [`Error::Truncated`] for a file found `len` bytes long.
    pub(crate) fn truncated(&self, len: u64) -> Error {
        self.header().truncated(len)
    }

    /// One step: the next record (then [`Self::current_ref`]), or why there is none.
    #[inline(always)]
    pub(crate) fn step(&mut self) -> Step {
        match &mut self.lanes {
            Lanes::One(lane) => lane.step(),
            Lanes::Many(merge) => merge.step(),
        }
    }

    /// A record already validated in a batch, without reading the ring (a log of one lane; a
    /// laned log's merge always takes [`Self::step`]).
    #[inline(always)]
    pub(crate) fn step_ready(&mut self) -> bool {
        match &mut self.lanes {
            Lanes::One(lane) => lane.step_ready(),
            Lanes::Many(_) => false,
        }
    }

    /// The record the last step returned, borrowed from its lane's buffer.
    #[inline(always)]
    pub(crate) fn current_ref(&self) -> Option<RecordRef<'_>> {
        match &self.lanes {
            Lanes::One(lane) => lane.current_ref(),
            Lanes::Many(merge) => merge.lanes.get(merge.current?)?.current_ref(),
        }
    }

    /// Writes every remaining record to `out` in `format` and returns how many were written.
    ///
    /// # Errors
    /// [`Error::Io`] from `out`.
    pub fn dump(&mut self, out: &mut impl Write, format: Format) -> Result<u64> {
        // Every lane validates in batches while dumping: a dump consumes what it validates.
        let limits = self.set_batch_limits(|_| BATCH_RECORDS);
        let written = self.dump_batched(out, format);
        self.set_batch_limits(|lane| limits.get(lane).copied().unwrap_or(BATCH_RECORDS));
        written
    }

    /// Sets each lane's batch limit to `limit(lane)`; returns the limits before.
    fn set_batch_limits(&mut self, limit: impl Fn(usize) -> usize) -> Vec<usize> {
        match &mut self.lanes {
            Lanes::One(lane) => vec![lane.set_batch_limit(limit(0))],
            Lanes::Many(merge) => merge
                .lanes
                .iter_mut()
                .enumerate()
                .map(|(k, lane)| lane.set_batch_limit(limit(k)))
                .collect(),
        }
    }

    fn dump_batched(&mut self, out: &mut impl Write, format: Format) -> Result<u64> {
        let mut written = 0;
        let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
        let mut line = crate::record::LineBuf::new();
        // Unlike `next`, a dump goes on through laps (a dump of a log written faster than it
        // reads skips what was overwritten and counts it) until it reaches the newest record.
        loop {
            match self.step() {
                Step::Record => {}
                Step::End | Step::Pending => break,
                Step::Truncated(len) => return Err(self.truncated(len)),
                Step::Again => continue,
                // Only a log of one lane says so: a dump skips a hole at once.
                Step::Hole { next_valid, .. } => {
                    self.skip_hole(next_valid);
                    continue;
                }
            }
            let Some(record) = self.current_ref() else {
                continue;
            };
            format
                .write_ref_with(&record, &mut out, &mut line)
                .map_err(|source| Error::Io {
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

    /// The next record, borrowed from this reader's buffer (valid until the reader is used
    /// again), or `None` at the newest one: [`Iterator::next`] without the copy into an owned
    /// [`Record`]. Reading allocates nothing per record this way.
    ///
    /// ```
    /// # fn main() -> Result<(), plog::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = plog::Log::open(dir.path().join("app.plog"))?;
    /// log.write(plog::Level::Info, "net", "up")?;
    /// let mut reader = log.reader();
    /// let record = reader.next_ref().unwrap();
    /// assert_eq!((record.tag, record.payload), (&b"net"[..], &b"up"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// `None` also once another program has cut the file short; [`Self::try_next_ref`] says
    /// so.
    pub fn next_ref(&mut self) -> Option<RecordRef<'_>> {
        self.try_next_ref().ok().flatten()
    }

    /// [`Self::next_ref`], with the reason when there is no record because the file was cut
    /// short.
    ///
    /// A reader looks at the file's length (one `fstat`) before its first read, after a call
    /// that returned no record (its caller may wait any time before the next), and every few
    /// hundred reads otherwise (`docs/plog-format.md`, "Limits": a file cut short while this
    /// reader copies records out of it still raises `SIGBUS`).
    ///
    /// # Errors
    /// [`Error::Truncated`] once the file is shorter than the log: then at every call, and
    /// the reader reads the mapping no more.
    pub fn try_next_ref(&mut self) -> Result<Option<RecordRef<'_>>> {
        if matches!(self.lanes, Lanes::Many(_)) {
            return self.try_next_merged();
        }
        match &mut self.lanes {
            Lanes::One(lane) => lane.try_next_ref(),
            Lanes::Many(_) => Ok(None),
        }
    }

    fn try_next_merged(&mut self) -> Result<Option<RecordRef<'_>>> {
        let mut found = false;
        for _ in 0..NEXT_ROUNDS {
            match self.step() {
                Step::Record => {
                    found = true;
                    break;
                }
                Step::End | Step::Pending => break,
                Step::Truncated(len) => return Err(self.truncated(len)),
                Step::Again | Step::Hole { .. } => {}
            }
        }
        if found {
            return Ok(self.current_ref());
        }
        self.look_next_time();
        Ok(None)
    }
}

/// [`Step::Again`]s one merged `next` takes before it returns `None` (as a lane's reader).
const NEXT_ROUNDS: usize = 16;

impl Iterator for Reader {
    type Item = Record;

    /// The next record, or `None` at the newest one. Bounded work: a call that keeps being
    /// lapped (writers overwriting records faster than this reader copies them) returns `None`
    /// after a few rounds; calling again goes on from there.
    fn next(&mut self) -> Option<Record> {
        self.next_ref().map(|record| record.to_owned())
    }
}

impl Log {
    /// A reader from the oldest surviving record to the newest (of every lane, merged by time).
    #[must_use]
    pub fn reader(&self) -> Reader {
        Reader::new(&self.inner, &self.lanes, None)
    }

    /// A reader from record `id` on (ids are positions: from the first record at or after
    /// `id`). An id older than the oldest surviving record starts at the oldest; one past the
    /// newest starts at the end. In a laned log, each lane from its first record at or after
    /// `id`.
    #[must_use]
    pub fn reader_from(&self, id: u64) -> Reader {
        Reader::new(&self.inner, &self.lanes, Some(id))
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
        let mut reader = Reader::new(&self.inner, &self.lanes, since).with_filter(filter.clone());
        let written = reader.dump(out, format)?;
        Ok(DumpSummary {
            written,
            lost: reader.lost(),
        })
    }
}
