//! Following a log as it is written: a blocking reader woken by writers in any process.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pmap::SharedMap;

use crate::format::{HEADER_SIZE, WAKE_OFF};
use crate::log::LogState;
use crate::protocol::Sleeper;
use crate::reader::Step;
use crate::write::wake_word;
use crate::{Error, Filter, Format, Log, Reader, Record, RecordRef, Result};

/// Where a follower starts, which records it returns, and how it waits.
#[must_use]
#[derive(Debug, Clone)]
pub struct FollowOptions {
    from: Option<u64>,
    from_cursor: Option<String>,
    from_start: bool,
    filter: Filter,
    format: Format,
    max_sleep: Duration,
    poll: Duration,
    hole_grace: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions::new()
    }
}

impl FollowOptions {
    /// Start after the newest record (return only records published from now on), accept
    /// every record, text format for [`Log::start_following_with`].
    pub fn new() -> FollowOptions {
        FollowOptions {
            from: None,
            from_cursor: None,
            from_start: false,
            filter: Filter::all(),
            format: Format::Text,
            max_sleep: Duration::from_millis(100),
            poll: Duration::from_millis(1),
            hole_grace: Duration::from_millis(50),
        }
    }

    /// Start at the oldest surviving record instead of after the newest.
    pub fn from_start(mut self) -> FollowOptions {
        self.from_start = true;
        self
    }

    /// Start at record `id` (see [`Log::reader_from`]); overrides [`Self::from_start`] and
    /// [`Self::from_cursor`].
    pub fn from_id(mut self, id: u64) -> FollowOptions {
        self.from = Some(id);
        self
    }

    /// Start where the cursor `name` was saved (see [`Log::reader_from_cursor`]: in a laned
    /// log, exactly where the [`Follower::save_cursor`] or [`Reader::save_cursor`] that saved
    /// it was), if it was; else as the other options say. Overrides [`Self::from_start`].
    pub fn from_cursor(mut self, name: &str) -> FollowOptions {
        self.from_cursor = Some(name.to_owned());
        self
    }

    /// Return only records passing `filter`.
    pub fn filter(mut self, filter: Filter) -> FollowOptions {
        self.filter = filter;
        self
    }

    /// The line format [`Log::start_following_with`] prints.
    pub fn format(mut self, format: Format) -> FollowOptions {
        self.format = format;
        self
    }

    /// The longest a follower sleeps before looking again even without a wake (default
    /// 100 ms): the bound on a missed wake or a stop from a read-only handle.
    pub fn max_sleep(mut self, max_sleep: Duration) -> FollowOptions {
        self.max_sleep = max_sleep;
        self
    }

    /// How often a follower that cannot announce itself to writers looks for new records
    /// (default 1 ms). That is a follower on a read-only handle to a file this process may not
    /// write; on a read-only handle to a writable file, the follower maps the header page
    /// read-write (only ever to set the wake word) and is woken like any other.
    pub fn poll_interval(mut self, poll: Duration) -> FollowOptions {
        self.poll = poll;
        self
    }

    /// How long a follower waits for a reserved but unpublished record, when later records are
    /// already published, before it skips it as lost (default 50 ms). Such a hole is a writer
    /// that died mid-record, or one preempted for that long. A hole at the oldest position of
    /// the ring is skipped at once: it is the tail of a record whose head was overwritten.
    pub fn hole_grace(mut self, grace: Duration) -> FollowOptions {
        self.hole_grace = grace;
        self
    }
}

/// Stops a [`Follower`] (from any thread): its blocked `next` returns `None` promptly.
#[derive(Debug, Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    inner: Arc<LogState>,
    side: Option<Arc<SharedMap>>,
}

/// Where a follower announces its sleep and sleeps: the log's own mapping when it is writable,
/// else a small read-write mapping of the header page if the file's permissions allow it
/// (only the wake word is ever written through it), else nowhere (the follower polls).
fn wake_map<'a>(inner: &'a LogState, side: Option<&'a Arc<SharedMap>>) -> Option<&'a SharedMap> {
    if inner.writable {
        Some(&inner.map)
    } else {
        side.map(|m| &**m)
    }
}

fn open_side_map(inner: &LogState) -> Option<Arc<SharedMap>> {
    if inner.writable {
        return None;
    }
    let map = pmap::MapOptions::new()
        .must_exist()
        .len(HEADER_SIZE as usize)
        .open(inner.map.path())
        .ok()?
        .into_shared();
    // The same file still, not another one put at its path since (a renamed copy has the same
    // header bytes, so the identity decides where the platform gives one), and its static header
    // matches the one validated at open.
    if map.same_file_as(&inner.map) == Some(false) {
        return None;
    }
    let same = map.read::<[u8; 64]>(0).ok()? == inner.map.read::<[u8; 64]>(0).ok()?;
    same.then(|| Arc::new(map))
}

impl StopHandle {
    /// Stops the follower and wakes it. If another program cut the file short, the wake word
    /// is gone with it: the follower is neither woken nor marked stopped, and ends by itself
    /// with [`Error::Truncated`] within its [`FollowOptions::max_sleep`] (so a
    /// [`FollowThread`] stopped then returns that error).
    pub fn stop(&self) {
        if self.inner.cut_short().is_some() {
            return;
        }
        self.flag.store(true, Ordering::SeqCst);
        // Waking every follower of the file is harmless: the others look and sleep again.
        let _ = match wake_map(&self.inner, self.side.as_ref()) {
            Some(map) => wake_word(map),
            None => self.inner.map.wake_u32(WAKE_OFF).map_err(Error::from),
        };
    }

    /// Whether [`Self::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// A blocking reader that returns records as they are published, by this or any other process.
///
/// As an [`Iterator`], `next` blocks until a record arrives and returns `None` once stopped.
/// Writers wake it through a futex on a word in the file's header (Linux; elsewhere pmap's wait
/// polls), after it set the word's sleeper bit. A follower on a read-only handle sets the bit
/// through a read-write mapping of the header page when the file may be written, and polls
/// every [`FollowOptions::poll_interval`] when it may not.
///
/// ```
/// # fn main() -> Result<(), plog::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("app.plog");
/// use plog::{FollowOptions, Level, Log};
/// let log = std::sync::Arc::new(Log::open(&path)?);
/// let mut follower = log.follow(FollowOptions::new())?;
/// let writer = std::sync::Arc::clone(&log);
/// let t = std::thread::spawn(move || writer.write(Level::Info, "w", "hello").map(|_| ()));
/// assert_eq!(follower.next().unwrap().message(), "hello");
/// t.join().unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Follower {
    reader: Reader,
    stop: StopHandle,
    options: FollowOptions,
    /// The position of an unpublished record being waited for, and since when.
    waiting_at: Option<(u64, Instant)>,
}

impl Follower {
    /// A handle that stops this follower from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Blocks lost so far (see [`Reader::lost`]).
    pub fn lost(&self) -> u64 {
        self.reader.lost()
    }

    /// Blocks of padding stepped over so far (see [`Reader::padding`]): with [`Self::lost`]
    /// and the blocks of the records returned, every id the follower advanced over.
    pub fn padding(&self) -> u64 {
        self.reader.padding()
    }

    /// The position (id) this follower looks at next.
    pub fn position(&self) -> u64 {
        self.reader.position()
    }

    /// Saves this follower's position under `name` (see [`Reader::save_cursor`]), for
    /// [`FollowOptions::from_cursor`].
    ///
    /// # Errors
    /// As [`Log::save_cursor`].
    pub fn save_cursor(&self, name: &str) -> Result<()> {
        self.reader.save_cursor(name)
    }

    /// The next record, waiting at most `timeout`; `None` on timeout, when stopped, or once
    /// the file was cut short.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Record> {
        self.next_ref_timeout(timeout)
            .map(|record| record.to_owned())
    }

    /// The next record, borrowed from the follower's buffer (valid until the follower is used
    /// again), waiting at most `timeout`; `None` on timeout, when stopped, or once the file
    /// was cut short ([`Self::try_next_ref_timeout`] says so). Allocates nothing per record.
    pub fn next_ref_timeout(&mut self, timeout: Duration) -> Option<RecordRef<'_>> {
        self.try_next_ref_timeout(timeout).ok().flatten()
    }

    /// The next record, borrowed, waiting for as long as it takes; `None` once stopped, or
    /// once the file was cut short ([`Self::try_next_ref`] says so).
    #[inline]
    pub fn next_ref(&mut self) -> Option<RecordRef<'_>> {
        self.try_next_ref().ok().flatten()
    }

    /// [`Self::next_ref_timeout`], with the reason when there is no record because another
    /// program cut the file short.
    ///
    /// A follower looks at the file's length (one `fstat`) after each sleep, before it reads
    /// the header or the ring again, and as a [`Reader`] does otherwise (see
    /// [`Reader::try_next_ref`]): a follower asleep when the file is truncated returns this
    /// error within [`FollowOptions::max_sleep`], where it used to die of `SIGBUS`.
    ///
    /// # Errors
    /// [`Error::Truncated`] once the file is shorter than the log: then at every call, and
    /// the follower reads the mapping no more.
    pub fn try_next_ref_timeout(&mut self, timeout: Duration) -> Result<Option<RecordRef<'_>>> {
        let found = self.next_until(Instant::now().checked_add(timeout))?;
        Ok(if found {
            self.reader.current_ref()
        } else {
            None
        })
    }

    /// [`Self::next_ref`], with the reason when there is no record because another program
    /// cut the file short (see [`Self::try_next_ref_timeout`]).
    ///
    /// # Errors
    /// As [`Self::try_next_ref_timeout`].
    #[inline]
    pub fn try_next_ref(&mut self) -> Result<Option<RecordRef<'_>>> {
        let found = self.next_until(None)?;
        Ok(if found {
            self.reader.current_ref()
        } else {
            None
        })
    }

    /// Waits for the next record (the reader's current one when true).
    #[inline(always)]
    fn next_until(&mut self, deadline: Option<Instant>) -> Result<bool> {
        // A record already validated in the reader's batch: the first turn of
        // `wait_for_next`'s loop, inlined here (most calls of a follower that keeps up end
        // here; the loop, which waits and sleeps, stays out of line).
        if !self.stop.is_stopped() && self.reader.step_ready() {
            self.waiting_at = None;
            return Ok(true);
        }
        let found = self.wait_for_next(deadline);
        if !matches!(found, Ok(true)) {
            // Returning without a record: the caller may wait any time before the next call.
            self.reader.look_next_time();
        }
        found
    }

    fn wait_for_next(&mut self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            if self.stop.is_stopped() {
                return Ok(false);
            }
            let pending = match self.reader.step() {
                Step::Record => {
                    self.waiting_at = None;
                    return Ok(true);
                }
                Step::Truncated(len) => return Err(self.reader.truncated(len)),
                Step::End => {
                    self.waiting_at = None;
                    false
                }
                Step::Again => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(false);
                    }
                    continue;
                }
                Step::Pending => {
                    self.note_wait();
                    true
                }
                Step::Hole {
                    at,
                    next_valid,
                    at_oldest,
                } => {
                    let since = self.note_wait();
                    if at_oldest || since.elapsed() >= self.options.hole_grace {
                        self.waiting_at = None;
                        self.reader.skip_hole(next_valid);
                        continue;
                    }
                    debug_assert_eq!(self.waiting_at.map(|w| w.0), Some(at));
                    true
                }
            };
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            if self.sleep(pending, deadline.map(|d| d - now)) {
                // The file may have been cut short while this follower slept.
                self.reader.look_next_time();
            }
        }
    }

    /// Records that the follower waits for the record at its position; returns since when.
    fn note_wait(&mut self) -> Instant {
        let pos = self.reader.position();
        match self.waiting_at {
            Some((at, since)) if at == pos => since,
            _ => {
                let now = Instant::now();
                self.waiting_at = Some((pos, now));
                now
            }
        }
    }

    /// Sleeps until a writer wakes us, the stop handle does, or a timeout; returns whether it
    /// slept (rather than spun or looked again at once). `pending`: a record is reserved but
    /// not yet published; its writer may not know we sleep, so spin briefly, then sleep in
    /// short steps.
    fn sleep(&mut self, pending: bool, left: Option<Duration>) -> bool {
        let inner = self.reader.header();
        let announce = wake_map(inner, self.stop.side.as_ref());
        if pending
            && self
                .waiting_at
                .is_some_and(|(_, since)| since.elapsed() < Duration::from_micros(50))
        {
            std::thread::yield_now();
            return false;
        }
        if !pending && self.watch_counter(left) {
            return false;
        }
        // Announce the sleep (sleeper bit) before the last look, so that a writer reserving
        // after this look sees the bit and wakes us (docs/plog-format.md, "Follow").
        // `protocol::Sleeper` holds the orderings.
        let (expected, mut timeout) = match announce.map(|map| map.atomic_u32(WAKE_OFF)) {
            Some(Ok(word)) => (Sleeper::announce(word), self.options.max_sleep),
            _ => (
                inner.map.load_u32(WAKE_OFF, Ordering::SeqCst).unwrap_or(0),
                self.options.poll,
            ),
        };
        if self.stop.is_stopped() {
            return false;
        }
        if !pending && self.reader.reserved_past(None) {
            return false; // Published or reserved since the step: look again.
        }
        if pending {
            timeout = timeout.min(Duration::from_millis(1));
        }
        if let Some(left) = left {
            timeout = timeout.min(left);
        }
        let _ = announce
            .unwrap_or(&inner.map)
            .wait_u32(WAKE_OFF, expected, Some(timeout));
        true
    }
}

impl Follower {
    /// At the end of the log: watches the counter for [`WATCH_FOR`] (or until `left` runs
    /// out), looking every [`WATCH_STEP`], before the caller announces a sleep. True when a
    /// record was reserved meanwhile (or the follower was stopped): look again.
    ///
    /// A follower that announced itself at every record it caught up with would set the
    /// sleeper bit under a steady stream of writes and make every writer pay a futex wake
    /// (and take the wake word's cache line back); one that looked at the counter without a
    /// pause would take the counter's line from the writer at every reservation. Looking
    /// once a microsecond costs the writers one line transfer per microsecond, and a record
    /// published meanwhile waits at most that long.
    fn watch_counter(&self, left: Option<Duration>) -> bool {
        let start = Instant::now();
        let until = left.map_or(WATCH_FOR, |left| left.min(WATCH_FOR));
        let mut looked = start;
        loop {
            let now = Instant::now();
            if now.duration_since(looked) >= WATCH_STEP {
                if self.reader.reserved_past(Some(Ordering::Relaxed)) || self.stop.is_stopped() {
                    return true;
                }
                looked = now;
            }
            if now.duration_since(start) >= until {
                return false;
            }
            std::hint::spin_loop();
        }
    }
}

/// How long a follower at the end of the log watches the counter before it sleeps.
const WATCH_FOR: Duration = Duration::from_micros(20);
/// How often it looks at the counter meanwhile.
const WATCH_STEP: Duration = Duration::from_micros(1);

impl Iterator for Follower {
    type Item = Record;

    /// Blocks until the next record passing the filter; `None` once stopped.
    fn next(&mut self) -> Option<Record> {
        self.next_ref().map(|record| record.to_owned())
    }
}

/// A background thread printing followed records, from [`Log::start_following`]. Stop it with
/// [`FollowThread::stop`], which returns the writer; dropping it stops it too.
#[derive(Debug)]
pub struct FollowThread<W: Write + Send + 'static> {
    stop: StopHandle,
    thread: Option<JoinHandle<Result<(W, u64)>>>,
}

impl<W: Write + Send + 'static> FollowThread<W> {
    /// A handle that stops the thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Stops the thread and returns the writer and the number of records printed.
    ///
    /// # Errors
    /// The first I/O error writing a record (the thread stops at it).
    pub fn stop(mut self) -> Result<(W, u64)> {
        self.stop.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(Error::Io {
                op: "follow thread",
                source: std::io::Error::other("the follow thread panicked"),
            }),
        }
    }
}

impl<W: Write + Send + 'static> Drop for FollowThread<W> {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Log {
    /// A follower: a blocking reader of records as they are published.
    ///
    /// # Errors
    /// [`Error::CursorName`] for [`FollowOptions::from_cursor`] with a name no cursor can
    /// have, [`Error::Truncated`] when reading a cursor of a file another program cut short.
    pub fn follow(&self, options: FollowOptions) -> Result<Follower> {
        let saved = match &options.from_cursor {
            Some(name) => self.load_cursor(name)?.map(|_| name),
            None => None,
        };
        let reader = match (options.from, saved, options.from_start) {
            (Some(id), _, _) => self.reader_from(id),
            (None, Some(name), _) => self.reader_from_cursor(name)?,
            (None, None, true) => self.reader(),
            (None, None, false) => self.reader_from(u64::MAX),
        }
        .batched()
        .with_hole_grace(options.hole_grace)
        .with_filter(options.filter.clone());
        let stop = StopHandle {
            flag: Arc::new(AtomicBool::new(false)),
            inner: Arc::clone(&self.inner),
            side: open_side_map(&self.inner),
        };
        Ok(Follower {
            reader,
            stop,
            options,
            waiting_at: None,
        })
    }

    /// Prints records published from now on to `out` as text lines, in a background thread.
    ///
    /// # Errors
    /// As [`Log::start_following_with`].
    pub fn start_following<W: Write + Send + 'static>(&self, out: W) -> Result<FollowThread<W>> {
        self.start_following_with(out, FollowOptions::new())
    }

    /// Prints followed records to `out` in a background thread, as `options` say (start,
    /// filter, format). Each record is flushed as it is printed.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be spawned.
    pub fn start_following_with<W: Write + Send + 'static>(
        &self,
        mut out: W,
        options: FollowOptions,
    ) -> Result<FollowThread<W>> {
        let format = options.format;
        let mut follower = self.follow(options)?;
        let stop = follower.stop_handle();
        let thread = std::thread::Builder::new()
            .name("plog-follow".into())
            .spawn(move || {
                let mut printed = 0;
                while let Some(record) = follower.try_next_ref()? {
                    let written = format
                        .write_ref(&record, &mut out)
                        .and_then(|()| out.flush());
                    written.map_err(|source| Error::Io {
                        op: "print followed record",
                        source,
                    })?;
                    printed += 1;
                }
                Ok((out, printed))
            })
            .map_err(|source| Error::Io {
                op: "spawn follow thread",
                source,
            })?;
        Ok(FollowThread {
            stop,
            thread: Some(thread),
        })
    }
}
