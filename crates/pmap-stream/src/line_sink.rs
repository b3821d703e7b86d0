//! [`LineSink`]: a mapped log file that threads append whole lines to without a lock, the
//! mmap file sink for `tracing` (`MakeWriter`) and the `log` ecosystem (`io::Write`).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use pmap::{Lock, MapOptions, SharedMap};

use crate::roll::{self, Policy, Roll, RollStep};
use crate::{Error, Result};

/// Mapping generations: generation `g` maps the file's first `initial << g` bytes, so 48 of
/// them cover any file from one byte of room on.
const GENERATIONS: usize = 48;

/// The bit of a live file's end that closes it to new lines (a roll or a failed roll): a
/// reservation that finds it set is void, and its writer tries again in the next file.
const CLOSED: u64 = 1 << 63;

/// How a [`LineSink`] opens.
#[derive(Debug, Clone)]
pub struct LineSinkOptions {
    capacity: usize,
    flush_every: Option<Duration>,
    policy: Policy,
}

impl Default for LineSinkOptions {
    fn default() -> Self {
        LineSinkOptions {
            capacity: LineSink::DEFAULT_CAPACITY,
            flush_every: None,
            policy: Policy::default(),
        }
    }
}

impl LineSinkOptions {
    /// Room for [`LineSink::DEFAULT_CAPACITY`] bytes, no background flush, no rolling.
    #[must_use]
    pub fn new() -> LineSinkOptions {
        LineSinkOptions::default()
    }

    /// Room for `bytes` past the file's content before the first doubling (for each new live
    /// file after a roll too).
    #[must_use]
    pub fn capacity(mut self, bytes: usize) -> LineSinkOptions {
        self.capacity = bytes;
        self
    }

    /// Writes the file to the disk every `interval` from a background thread (as
    /// [`LineSink::flush`] does), until the last handle is dropped.
    #[must_use]
    pub fn flush_every(mut self, interval: Duration) -> LineSinkOptions {
        self.flush_every = Some(interval);
        self
    }

    /// Rolls the live file by size ([`Roll::Size`]) or by time ([`Roll::Daily`],
    /// [`Roll::Hourly`], [`Roll::Minutely`]); call it once with each to have both, and with
    /// [`Roll::Never`] to clear them. The live file keeps the sink's path; a rolled file is
    /// renamed `<path>.<number>` (`app.log.000001`, then `app.log.000002`: the highest number is
    /// the newest). See [`LineSink`] for what a roll does.
    #[must_use]
    pub fn roll(mut self, roll: Roll) -> LineSinkOptions {
        self.policy.set(roll);
        self
    }

    /// Keeps the newest `files` rolled files beside the live file, removing older ones at each
    /// roll (`0` removes each file as it rolls). By default every rolled file is kept.
    #[must_use]
    pub fn keep(mut self, files: usize) -> LineSinkOptions {
        self.policy.keep = Some(files);
        self
    }

    /// The wall clock that time-based rolling reads, instead of [`SystemTime::now`]: a test
    /// moves time on by returning a later time, without waiting for it.
    #[must_use]
    pub fn clock(
        mut self,
        clock: impl Fn() -> SystemTime + Send + Sync + 'static,
    ) -> LineSinkOptions {
        self.policy.clock = Some(Arc::new(clock));
        self
    }

    /// Runs `hook` at each step of a roll, on the thread that rolls (a test seam: a child
    /// process aborts there to prove that a crash at any step loses no line).
    #[doc(hidden)]
    #[must_use]
    pub fn roll_hook(mut self, hook: impl Fn(RollStep) + Send + Sync + 'static) -> LineSinkOptions {
        self.policy.hook = Some(Arc::new(hook));
        self
    }

    /// Opens (or creates) `path`; see [`LineSink`].
    ///
    /// # Errors
    /// [`Error::ZeroCapacity`], [`Error::ZeroRollSize`], [`Error::NoFileName`] (rolling needs a
    /// file name); [`pmap::Error::LockContended`] when another sink (in this or another
    /// process) holds the file; [`pmap::Error::NoSpace`] when the disk has no room for the
    /// capacity; [`Error::Io`] when the directory of a rolling sink cannot be listed; or the
    /// [`pmap::Error`] from opening it.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<LineSink> {
        LineSink::open_with(path.as_ref(), self)
    }
}

/// An append-only log file in a memory mapping, shared by threads: each [`Write::write`] (and
/// each `write!`/`writeln!`, formatted first in a per-thread buffer) is one reservation by an
/// atomic add on the end and one copy into the mapping, so lines are never interleaved and no
/// writer waits for another, except for the one that finds the mapping full and doubles it,
/// and every writer while the file rolls.
///
/// - It pre-sizes the file to its content plus `capacity` (default 10 MiB) and doubles it when
///   full; the disk blocks are reserved first, so a full disk is a typed error
///   ([`pmap::Error::NoSpace`], [`io::ErrorKind::StorageFull`] through `io::Write`) for the
///   writer that needed the room, never a `SIGBUS`.
/// - [`LineSink::flush`] (or [`LineSinkOptions::flush_every`]) writes it to the disk.
/// - Dropping the last handle (or [`LineSink::close`]) trims the file to its content.
/// - After a crash the file is pre-sized with a zero tail, and lines that other threads had in
///   flight may have left runs of zeros (their reservations, partly copied; also when the
///   room was full, so that there is no zero tail). Opening it again
///   cuts the tail back to the last whole line and removes each zero run with the partial line
///   before it, so the content is whole lines and the next line follows the last one.
///   Lines must end in `\n` and hold no NUL byte for this to find them.
/// - Rolling ([`LineSinkOptions::roll`], [`LineSinkOptions::keep`], [`LineSink::roll`]): the
///   live file is closed to new lines, the lines in flight are copied, it is trimmed, closed
///   and renamed `<path>.<number>`, and a new live file is opened at the path; the writers
///   that came meanwhile wait, then write into the new file. A line is in exactly one file,
///   whole. Rolled files are always trimmed whole lines (a crash mid-roll leaves at worst the
///   live file to recover, as above).
/// - Handles are cheap clones of one sink; it holds an exclusive advisory lock on the live
///   file, so a second sink on it, in this process or another, is
///   [`pmap::Error::LockContended`].
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app.log");
/// use std::io::Write;
/// use pmap_stream::LineSink;
/// let sink = LineSink::open(&path)?;
/// let threads: Vec<_> = (0..4)
///     .map(|t| {
///         let mut sink = sink.clone();
///         std::thread::spawn(move || writeln!(sink, "thread {t} says hello"))
///     })
///     .collect();
/// for thread in threads {
///     thread.join().unwrap()?;
/// }
/// assert_eq!(sink.close()?, 4 * 20);
/// assert_eq!(std::fs::read_to_string(&path)?.lines().count(), 4);
/// # Ok(()) }
/// ```
///
/// Rolling by size, keeping the newest two rolled files:
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app.log");
/// use std::io::Write;
/// use pmap_stream::{LineSinkOptions, Roll};
/// let sink = LineSinkOptions::new().roll(Roll::Size(100)).keep(2).open(&path)?;
/// for n in 0..10 {
///     writeln!(&sink, "line {n:02} of the log, 30 bytes")?; // 30 bytes: three to a file
/// }
/// sink.close()?;
/// let read = |name: &str| std::fs::read_to_string(dir.path().join(name));
/// assert_eq!(read("app.log")?.lines().count(), 1); // line 09
/// assert!(read("app.log.000003")?.starts_with("line 06"));
/// assert!(read("app.log.000002")?.starts_with("line 03"));
/// assert!(read("app.log.000001").is_err()); // beyond the newest two
/// # Ok(()) }
/// ```
pub struct LineSink {
    shared: Arc<Shared>,
    /// Whether this handle was already counted out (by `close`, before its drop).
    released: AtomicBool,
}

impl Clone for LineSink {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        LineSink {
            shared: Arc::clone(&self.shared),
            released: AtomicBool::new(false),
        }
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        self.release();
    }
}

impl fmt::Debug for LineSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineSink")
            .field("path", &self.shared.path)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// The live file's path.
    path: PathBuf,
    capacity: usize,
    policy: Policy,
    /// The live file.
    live: Live,
    /// Taken by a roll, and by a writer that found the live file closed (it waits for the
    /// roll to end).
    roll: Mutex<RollState>,
    /// Live `LineSink` handles. The flush thread holds the sink only weakly, but a flush in
    /// progress upgrades it; the last handle stops (and joins) that thread first, so the trim
    /// runs in the last handle's drop or `close`, never later on the flush thread.
    handles: AtomicUsize,
    flusher: Mutex<Option<Flusher>>,
}

/// How writers reach the live file.
// One per sink, inside its `Arc`: a boxed segment would only add a pointer to chase per line.
#[allow(clippy::large_enum_variant)]
enum Live {
    /// A sink that never rolls: its one file, a field, with no load per line (an `ArcSwap`
    /// load and its guard were 54 of a line's 233 instructions, callgrind).
    Fixed(Segment),
    /// A rolling sink's live file: writers load it without a lock; a roll swaps it, under
    /// `roll`, and waits until no writer holds the old one.
    Rolling(ArcSwap<Segment>),
}

struct RollState {
    /// The number the next rolled file takes.
    next_seq: u64,
    /// The id the next segment takes.
    next_id: u64,
    /// Rolled files not yet written to the disk: [`LineSink::flush`] syncs them.
    unsynced: Vec<PathBuf>,
}

/// Where a new live file counts its size roll from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SizeFrom {
    /// Its first byte: a file opened by the sink, or after a roll.
    FileStart,
    /// Its content now: the same file again after a roll that could not rename it, so that
    /// the next try comes one roll size later, not at the next line.
    ItsEnd,
}

/// One live file: its mappings and its end.
struct Segment {
    /// Distinguishes the live files of one sink (a writer that waited for a roll sees whether
    /// it happened).
    id: u64,
    /// The first generation's length.
    initial: u64,
    /// Bytes reserved so far: the content's end once every reservation is copied; `CLOSED`
    /// once the file rolls.
    end: AtomicU64,
    /// Mappings of the file, each twice the one before; older ones stay mapped (their
    /// writers may still be copying) until the file closes. The first holds the file's lock.
    generations: [OnceLock<SharedMap>; GENERATIONS],
    /// Taken only by a writer that found its generation missing, to map it once.
    growing: Mutex<()>,
    /// A write failed after its reservation: its bytes are zeros, removed at close.
    failed: AtomicBool,
    /// The content when the file was opened; a size roll waits for a line past it.
    start: u64,
    /// Roll before a line that would end past this offset.
    size_end: Option<u64>,
    /// Roll at the first line at or after this time (seconds since the epoch).
    deadline: Option<u64>,
}

thread_local! {
    /// Where `write!` formats a line before appending it in one piece.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl LineSink {
    /// The room opened past the content: 10 MiB, as Logly's mmap sink pre-sizes.
    pub const DEFAULT_CAPACITY: usize = 10 << 20;

    /// Opens (or creates) `path` with the default options.
    ///
    /// # Errors
    /// As [`LineSinkOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<LineSink> {
        LineSinkOptions::new().open(path)
    }

    fn open_with(path: &Path, options: &LineSinkOptions) -> Result<LineSink> {
        if options.capacity == 0 {
            return Err(Error::ZeroCapacity {
                path: path.to_path_buf(),
            });
        }
        options.policy.check(path)?;
        let next_seq = if options.policy.rolls() {
            roll::rolled_files(path)?
                .last()
                .map_or(1, |(seq, _)| seq.saturating_add(1))
        } else {
            1
        };
        let policy = options.policy.clone();
        let segment = Segment::open(path, options.capacity, &policy, SizeFrom::FileStart, 0)?;
        let live = if policy.rolls() {
            Live::Rolling(ArcSwap::from_pointee(segment))
        } else {
            Live::Fixed(segment)
        };
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| Shared {
            path: path.to_path_buf(),
            capacity: options.capacity,
            policy,
            live,
            roll: Mutex::new(RollState {
                next_seq,
                next_id: 1,
                unsynced: Vec::new(),
            }),
            handles: AtomicUsize::new(1),
            flusher: Mutex::new(
                options
                    .flush_every
                    .map(|interval| Flusher::start(weak.clone(), interval)),
            ),
        });
        Ok(LineSink {
            shared,
            released: AtomicBool::new(false),
        })
    }

    /// Appends `line` as one piece: reserved by an atomic add, then copied. Never interleaved
    /// with another append, and never split between two files by a roll.
    ///
    /// A roll that this line sets off and that fails (the rename is refused) leaves the line
    /// in the live file, which rolls again one roll size or period later.
    ///
    /// # Errors
    /// [`pmap::Error::NoSpace`] when the file had to double, or a roll had to open a new live
    /// file, and the disk has no room (the line is not written; a reservation's bytes stay
    /// zeros, removed when the sink closes or reopens); [`Error::TooLarge`] past the address
    /// space; the [`pmap::Error`] from opening a new live file.
    pub fn append(&self, line: &[u8]) -> Result<()> {
        if line.is_empty() {
            return Ok(());
        }
        let shared = &*self.shared;
        match &shared.live {
            Live::Fixed(segment) => {
                // Never closed: only a roll closes a file, and this sink does not roll.
                let at = segment.end.fetch_add(line.len() as u64, Ordering::Relaxed);
                segment.copy(&shared.path, at, line)
            }
            Live::Rolling(current) => shared.append_rolling(current, line),
        }
    }

    /// Bytes reserved so far in the live file (its content, once writers in flight have
    /// copied theirs).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.shared.len()
    }

    /// Whether the live file holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live file's path (rolled files are beside it, `<path>.<number>`).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Rolls the live file now, whatever its size and period: returns the rolled file's path,
    /// or `None` when the live file was empty (it is kept). The sink must have been opened to
    /// roll ([`Roll::OnRequest`], a size or a period).
    ///
    /// # Errors
    /// [`Error::NotRolling`] for a sink opened without rolling (nothing changes);
    /// [`Error::Io`] when the rename is refused (the sink goes on in the same live file);
    /// the [`pmap::Error`] from trimming the file or opening the new one (then the next line
    /// tries to open it again).
    pub fn roll(&self) -> Result<Option<PathBuf>> {
        let Live::Rolling(current) = &self.shared.live else {
            return Err(Error::NotRolling {
                path: self.shared.path.clone(),
            });
        };
        let mut state = self.shared.lock_roll();
        self.shared.roll_locked(current, &mut state)
    }

    /// Writes the live file's mapped bytes to the disk and waits, and the files rolled since
    /// the last flush.
    ///
    /// # Errors
    /// The [`pmap::Error`] from flushing; [`Error::Io`] from syncing a rolled file.
    pub fn flush(&self) -> Result<()> {
        self.shared.flush()
    }

    /// Trims the file to its content and closes it, returning its length, if this is the
    /// last handle; otherwise the other handles keep it open and this returns the length so
    /// far (they trim it when the last of them drops).
    ///
    /// # Errors
    /// The [`pmap::Error`] from trimming.
    pub fn close(self) -> Result<u64> {
        let shared = Arc::clone(&self.shared);
        // Counts this handle out (stopping the flush thread if it was the last) before its
        // own reference goes.
        drop(self);
        match Arc::try_unwrap(shared) {
            Ok(mut shared) => shared.finish(),
            Err(shared) => Ok(shared.len()),
        }
    }
}

impl LineSink {
    /// Counts this handle out, once; the last one stops the flush thread and waits for it.
    fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let flusher = self
                .shared
                .flusher
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(flusher) = flusher {
                flusher.stop();
            }
        }
    }
}

impl Shared {
    fn lock_roll(&self) -> std::sync::MutexGuard<'_, RollState> {
        self.roll.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> u64 {
        let end = match &self.live {
            Live::Fixed(segment) => segment.end.load(Ordering::Relaxed),
            Live::Rolling(current) => current.load().end.load(Ordering::Relaxed),
        };
        end & !CLOSED
    }

    /// [`LineSink::append`] in a rolling sink: rolls first when the line is due in a new file,
    /// and goes again when a roll closed the file under it.
    fn append_rolling(&self, current: &ArcSwap<Segment>, line: &[u8]) -> Result<()> {
        let len = line.len() as u64;
        loop {
            let segment = current.load();
            if segment.due(len, &self.policy) {
                let id = segment.id;
                drop(segment);
                // A failed roll leaves a live file to write to, or a closed placeholder whose
                // reopening reports its error below.
                let _ = self.roll_from(current, id);
                continue;
            }
            let at = segment.end.fetch_add(len, Ordering::Relaxed);
            if at & CLOSED != 0 {
                // Rolling: this reservation is void. Wait for the roll, then go again.
                let id = segment.id;
                drop(segment);
                self.after_closed(current, id)?;
                continue;
            }
            return segment.copy(&self.path, at, line);
        }
    }

    /// Rolls the live file if it is still segment `id` (another writer may have rolled it).
    fn roll_from(&self, current: &ArcSwap<Segment>, id: u64) -> Result<Option<PathBuf>> {
        let mut state = self.lock_roll();
        if current.load().id != id {
            return Ok(None);
        }
        self.roll_locked(current, &mut state)
    }

    /// A writer found segment `id` closed: waits for the roll that closed it and returns; if
    /// that roll could not open a new live file (the placeholder is still there), opens it.
    fn after_closed(&self, current: &ArcSwap<Segment>, id: u64) -> Result<()> {
        let mut state = self.lock_roll();
        if current.load().id != id {
            return Ok(());
        }
        // Only a roll closes a live file, and it replaces it before letting go of the lock:
        // this is the placeholder a failed roll left.
        let segment = self.open_segment(&mut state, SizeFrom::FileStart)?;
        current.store(Arc::new(segment));
        Ok(())
    }

    fn open_segment(&self, state: &mut RollState, from: SizeFrom) -> Result<Segment> {
        let id = state.next_id;
        state.next_id += 1;
        Segment::open(&self.path, self.capacity, &self.policy, from, id)
    }

    /// The roll itself, under the roll lock: close, wait for the lines in flight, trim, rename,
    /// open the next live file, prune.
    fn roll_locked(
        &self,
        current: &ArcSwap<Segment>,
        state: &mut RollState,
    ) -> Result<Option<PathBuf>> {
        let placeholder = Segment::placeholder(state.next_id);
        state.next_id += 1;
        let live = current.load_full();
        // From here every new reservation in the live file is void; those before it are the
        // content.
        let content = live.end.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED;
        current.store(Arc::new(placeholder));
        let mut old = wait_unique(live);
        // The void reservations made after the close count for nothing.
        *old.end.get_mut() = content;
        self.policy.step(RollStep::Closed);
        let outcome = match old.finish() {
            Ok(0) => Ok(None),
            Ok(_) => {
                self.policy.step(RollStep::Trimmed);
                let to = roll::rolled_name(&self.path, state.next_seq);
                roll::rename(&self.path, &to).map(|()| {
                    state.next_seq += 1;
                    self.policy.step(RollStep::Renamed);
                    Some(to)
                })
            }
            Err(error) => Err(error),
        };
        drop(old);
        let from = match outcome {
            Ok(_) => SizeFrom::FileStart,
            Err(_) => SizeFrom::ItsEnd,
        };
        // On an error here the placeholder stays, and the next writer tries again.
        let segment = self.open_segment(state, from)?;
        current.store(Arc::new(segment));
        if let Ok(Some(rolled)) = &outcome {
            self.policy.step(RollStep::Opened);
            state.unsynced.push(rolled.clone());
            if let Some(keep) = self.policy.keep {
                roll::prune(&self.path, keep);
            }
        }
        outcome
    }

    fn flush(&self) -> Result<()> {
        let rolled = std::mem::take(&mut self.lock_roll().unsynced);
        for path in rolled {
            // Pruned since: nothing to keep.
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            file.sync_all().map_err(|source| Error::Io {
                op: "sync the rolled file",
                path,
                source,
            })?;
        }
        match &self.live {
            Live::Fixed(segment) => segment.flush(),
            Live::Rolling(current) => current.load().flush(),
        }
    }

    /// Trims the live file to its content (without the zeros of failed writes) and unmaps it.
    fn finish(&mut self) -> Result<u64> {
        let flusher = self
            .flusher
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(flusher) = flusher {
            flusher.stop();
        }
        match &mut self.live {
            Live::Fixed(segment) => segment.finish(),
            Live::Rolling(current) => {
                let live = current.swap(Arc::new(Segment::placeholder(u64::MAX)));
                wait_unique(live).finish()
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Best effort, as a file's drop: close() reports the error.
        let _ = self.finish();
    }
}

/// Takes `segment` back whole once no writer holds it: the writers that loaded it before the
/// roll swapped it out are copying their lines (nanoseconds), or doubling its mapping.
fn wait_unique(mut segment: Arc<Segment>) -> Segment {
    loop {
        match Arc::try_unwrap(segment) {
            Ok(segment) => return segment,
            Err(shared) => {
                segment = shared;
                std::thread::yield_now();
            }
        }
    }
}

impl Segment {
    /// Opens (or creates) the live file at `path`, recovering it if a crash left it pre-sized.
    fn open(
        path: &Path,
        capacity: usize,
        policy: &Policy,
        from: SizeFrom,
        id: u64,
    ) -> Result<Segment> {
        let metadata = std::fs::metadata(path).ok();
        // An empty file cannot be mapped: one that is absent or empty is mapped as one zero
        // byte (nothing to recover), and grown to its room below. Not at its room at once:
        // a pre-sized file of zeros looks like a crashed one, and recovering it would read
        // and rewrite every page of the room (70% of a fresh 10 MiB sink's time, profiled).
        // Deciding by the length seen under the lock, not by the `metadata` above, keeps a
        // file another sink finished in between.
        let mut map = MapOptions::new()
            .try_lock(Lock::Exclusive)
            .size(1)
            .open(path)?;
        // A pre-sized file that was not trimmed (a zero tail), or one whose room a crash left
        // full with a reservation inside it partly copied (a zero run, and a whole line at the
        // end): its writer crashed. Lines hold no NUL, so a trimmed file has none; the search
        // reads the content (memchr) and writes nothing.
        let content = if map.as_slice().last() == Some(&0) || map.as_slice().contains(&0) {
            // A file its writer left in a crash.
            let bytes = map.as_mut_slice()?;
            // Past the last byte written, the room is zeros already: reading it is enough,
            // writing it would dirty every page of it for the disk.
            let written = bytes
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |last| last + 1);
            let whole = keep_whole_lines(&mut bytes[..written]);
            // Reservations after the content must start as zeros for the next recovery.
            bytes[whole..written].fill(0);
            whole
        } else {
            map.len()
        };
        let room = content.checked_add(capacity).ok_or(Error::TooLarge {
            pos: content as u64,
            len: capacity,
        })?;
        if room > map.len() {
            map.grow(room)?;
        }
        let content = content as u64;
        let start = match from {
            SizeFrom::FileStart => 0,
            SizeFrom::ItsEnd => content,
        };
        // A file with lines started when it was last written, as far as the clock can tell:
        // one from an earlier period rolls at its first new line.
        let started = match (from, content) {
            (SizeFrom::FileStart, 1..) => metadata
                .and_then(|m| m.modified().ok())
                .map_or_else(|| policy.now_secs(), roll::secs),
            _ => policy.now_secs(),
        };
        let generations = std::array::from_fn(|_| OnceLock::new());
        let initial = map.len() as u64;
        let _ = generations[0].set(map.into_shared());
        Ok(Segment {
            id,
            initial,
            end: AtomicU64::new(content),
            generations,
            growing: Mutex::new(()),
            failed: AtomicBool::new(false),
            start,
            size_end: policy.size.map(|size| start.saturating_add(size)),
            deadline: policy.deadline_after(started),
        })
    }

    /// A live file that takes no line (its end is closed): what writers find during a roll.
    fn placeholder(id: u64) -> Segment {
        Segment {
            id,
            initial: 1,
            end: AtomicU64::new(CLOSED),
            generations: std::array::from_fn(|_| OnceLock::new()),
            growing: Mutex::new(()),
            failed: AtomicBool::new(false),
            start: 0,
            size_end: None,
            deadline: None,
        }
    }

    /// Whether a line of `len` bytes must go to a new file: it would take the file past its
    /// size (and the file has lines of its own), or the file's period is over.
    fn due(&self, len: u64, policy: &Policy) -> bool {
        if let Some(size_end) = self.size_end {
            let end = self.end.load(Ordering::Relaxed);
            if end & CLOSED == 0 && end > self.start && end.saturating_add(len) > size_end {
                return true;
            }
        }
        self.deadline
            .is_some_and(|deadline| policy.now_secs() >= deadline)
    }

    /// Copies `line` into its reservation at `at`; a failure leaves the reservation zero, for
    /// the close to remove.
    fn copy(&self, path: &Path, at: u64, line: &[u8]) -> Result<()> {
        let result = self.mapping_for(path, at, line.len()).and_then(|map| {
            // The reservation lies within the mapping: mapping_for chose one that long.
            Ok(map.write_at(at as usize, line)?)
        });
        if result.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        result
    }

    /// The mapping whose length covers `len` bytes at `at`, mapping it (the file doubled,
    /// or more) if no writer has yet.
    fn mapping_for(&self, path: &Path, at: u64, len: usize) -> Result<&SharedMap> {
        let too_large = || Error::TooLarge { pos: at, len };
        let end = at.checked_add(len as u64).ok_or_else(too_large)?;
        let generation = (0..GENERATIONS)
            .find(|&g| {
                self.initial
                    .checked_shl(g as u32)
                    .is_some_and(|cap| cap >= end)
            })
            .ok_or_else(too_large)?;
        if let Some(map) = self.generations[generation].get() {
            return Ok(map);
        }
        let _growing = self.growing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(map) = self.generations[generation].get() {
            return Ok(map);
        }
        let cap = self.initial << generation;
        let map = usize::try_from(cap)
            .ok()
            .map(|_| pmap::Map::create(path, cap))
            .ok_or_else(too_large)??;
        Ok(self.generations[generation].get_or_init(|| map.into_shared()))
    }

    fn newest(&self) -> Option<&SharedMap> {
        self.generations.iter().rev().find_map(OnceLock::get)
    }

    fn flush(&self) -> Result<()> {
        match self.newest() {
            Some(map) => Ok(map.flush()?),
            None => Ok(()),
        }
    }

    /// Trims the file to the content (without the zeros of failed writes) and unmaps it;
    /// returns its length. Once: a second call (the drop after a roll) finds nothing mapped.
    fn finish(&mut self) -> Result<u64> {
        let mut maps: Vec<SharedMap> = self
            .generations
            .iter_mut()
            .filter_map(OnceLock::take)
            .collect();
        // The newest maps the whole file; the first holds the lock and goes last.
        let Some(newest) = maps.pop() else {
            return Ok(0);
        };
        let mut newest = newest.into_map();
        let reserved = self.end.load(Ordering::Relaxed) & !CLOSED;
        let mut end = usize::try_from(reserved).map_or(newest.len(), |e| e.min(newest.len()));
        if self.failed.load(Ordering::Relaxed) {
            let bytes = newest.as_mut_slice()?;
            end = keep_whole_lines(&mut bytes[..end]);
        }
        let len = newest.finish(end as u64)?;
        drop(maps);
        Ok(len)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // Best effort, as a file's drop: close() and roll() report the error.
        let _ = self.finish();
    }
}

/// Moves the whole lines of `bytes` to its front and returns their length: each run of zeros
/// (a reservation partly or never copied) is removed with the partial line before it, and an
/// unterminated last line goes too. One pass, in place.
fn keep_whole_lines(bytes: &mut [u8]) -> usize {
    let (mut read, mut kept, mut line_start) = (0, 0, 0);
    while read < bytes.len() {
        let byte = bytes[read];
        read += 1;
        if byte == 0 {
            kept = line_start;
            continue;
        }
        bytes[kept] = byte;
        kept += 1;
        if byte == b'\n' {
            line_start = kept;
        }
    }
    line_start
}

impl Write for &LineSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Ok(self.append(buf)?)
    }

    /// Formats into a per-thread buffer and appends the result in one piece, so that a
    /// `writeln!` of several parts is never interleaved with another thread's.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                fmt::write(&mut *line, args).map_err(|_| io::Error::other("formatting failed"))?;
                Ok(self.append(line.as_bytes())?)
            }
            // Re-entered from a Display impl that writes here too.
            Err(_) => Ok(self.append(args.to_string().as_bytes())?),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(LineSink::flush(self)?)
    }
}

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        (&*self).write_fmt(args)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(LineSink::flush(self)?)
    }
}

#[cfg(feature = "tracing")]
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LineSink {
    type Writer = &'a LineSink;

    /// The sink itself: `tracing_subscriber::fmt` formats each event into its own buffer and
    /// writes it once, one append per event.
    fn make_writer(&'a self) -> &'a LineSink {
        self
    }
}

/// The background flush of [`LineSinkOptions::flush_every`]. It holds the sink weakly, so the
/// last handle's drop still closes the file.
struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    fn start(sink: Weak<Shared>, interval: Duration) -> Flusher {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("line-sink-flush".into())
            .spawn(move || {
                let (lock, cvar) = &*signal;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                while !*stopped {
                    stopped = match cvar.wait_timeout(stopped, interval) {
                        Ok((guard, _)) => guard,
                        Err(e) => e.into_inner().0,
                    };
                    if *stopped {
                        break;
                    }
                    // Release the lock while flushing: a closing sink waits for it.
                    drop(stopped);
                    if let Some(shared) = sink.upgrade() {
                        // Nobody to report to; an explicit flush reports errors.
                        let _ = shared.flush();
                    }
                    stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                }
            })
            .ok();
        Flusher { stop, thread }
    }

    fn stop(mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            // The flush thread itself may hold the last handle (its upgrade outlived the
            // others): it cannot join itself, and it ends after this flush anyway.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keep_whole_lines;

    #[test]
    fn zero_runs_go_with_the_partial_line_before_them() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"a\nb\n\0\0\0", b"a\nb\n"),
            (b"a\nbc\0\0d\n\0", b"a\nd\n"),
            (b"a\n\0\0b\nc", b"a\nb\n"),
            (b"\0\0\0", b""),
            (b"a\nb\n", b"a\nb\n"),
            (b"x\0y\0z\n", b"z\n"),
        ];
        for (input, whole) in cases {
            let mut bytes = input.to_vec();
            let len = keep_whole_lines(&mut bytes);
            assert_eq!(&bytes[..len], whole, "{input:?}");
        }
    }
}
