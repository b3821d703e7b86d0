//! [`LineSink`]: a mapped log file that threads append whole lines to without a lock, the
//! mmap file sink for `tracing` (`MakeWriter`) and the `log` ecosystem (`io::Write`).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use pmap::{Lock, MapOptions, SharedMap};

use crate::{Error, Result};

/// Mapping generations: generation `g` maps the file's first `initial << g` bytes, so 48 of
/// them cover any file from one byte of room on.
const GENERATIONS: usize = 48;

/// How a [`LineSink`] opens.
#[derive(Debug, Clone)]
pub struct LineSinkOptions {
    capacity: usize,
    flush_every: Option<Duration>,
}

impl Default for LineSinkOptions {
    fn default() -> Self {
        LineSinkOptions {
            capacity: LineSink::DEFAULT_CAPACITY,
            flush_every: None,
        }
    }
}

impl LineSinkOptions {
    /// Room for [`LineSink::DEFAULT_CAPACITY`] bytes, no background flush.
    pub fn new() -> LineSinkOptions {
        LineSinkOptions::default()
    }

    /// Room for `bytes` past the file's content before the first doubling.
    pub fn capacity(mut self, bytes: usize) -> LineSinkOptions {
        self.capacity = bytes;
        self
    }

    /// Writes the file to the disk every `interval` from a background thread (as
    /// [`LineSink::flush`] does), until the last handle is dropped.
    pub fn flush_every(mut self, interval: Duration) -> LineSinkOptions {
        self.flush_every = Some(interval);
        self
    }

    /// Opens (or creates) `path`; see [`LineSink`].
    ///
    /// # Errors
    /// [`Error::ZeroCapacity`]; [`pmap::Error::LockContended`] when another writer holds the
    /// file; [`pmap::Error::NoSpace`] when the disk has no room for the capacity; or the
    /// [`pmap::Error`] from opening it.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<LineSink> {
        LineSink::open_with(path.as_ref(), self)
    }
}

/// An append-only log file in a memory mapping, shared by threads: each [`Write::write`] (and
/// each `write!`/`writeln!`, formatted first in a per-thread buffer) is one reservation by an
/// atomic add on the end and one copy into the mapping, so lines are never interleaved and no
/// writer waits for another, except for the one that finds the mapping full and doubles it.
///
/// - It pre-sizes the file to its content plus `capacity` (default 10 MiB) and doubles it when
///   full; the disk blocks are reserved first, so a full disk is a typed error
///   ([`pmap::Error::NoSpace`], [`io::ErrorKind::StorageFull`] through `io::Write`) for the
///   writer that needed the room, never a `SIGBUS`.
/// - [`LineSink::flush`] (or [`LineSinkOptions::flush_every`]) writes it to the disk.
/// - Dropping the last handle (or [`LineSink::close`]) trims the file to its content.
/// - After a crash the file is pre-sized with a zero tail, and lines that other threads had in
///   flight may have left runs of zeros (their reservations, partly copied). Opening it again
///   cuts the tail back to the last whole line and removes each zero run with the partial line
///   before it, so the content is whole lines and the next line follows the last one.
///   Lines must end in `\n` and hold no NUL byte for this to find them.
/// - Handles are cheap clones of one sink; it holds an exclusive advisory lock on the file.
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
    path: PathBuf,
    /// The first generation's length.
    initial: u64,
    /// Bytes reserved so far: the content's end once every reservation is copied.
    end: AtomicU64,
    /// Mappings of the file, each twice the one before; older ones stay mapped (their
    /// writers may still be copying) until the sink closes. The first holds the file's lock.
    generations: [OnceLock<SharedMap>; GENERATIONS],
    /// Taken only by a writer that found its generation missing, to map it once.
    growing: Mutex<()>,
    /// A write failed after its reservation: its bytes are zeros, removed at close.
    failed: AtomicBool,
    /// Live `LineSink` handles. The flush thread holds the sink only weakly, but a flush in
    /// progress upgrades it; the last handle stops (and joins) that thread first, so the trim
    /// runs in the last handle's drop or `close`, never later on the flush thread.
    handles: AtomicUsize,
    flusher: Mutex<Option<Flusher>>,
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
        // An empty file cannot be mapped: one that is absent or empty opens at its room.
        let existing = std::fs::metadata(path).map_or(0, |m| m.len());
        let mut options_map = MapOptions::new().try_lock(Lock::Exclusive);
        if existing == 0 {
            options_map = options_map.size(options.capacity as u64);
        }
        let mut map = options_map.open(path)?;
        let content = if map.as_slice().last() == Some(&0) {
            // A pre-sized file that was not trimmed: its writer crashed.
            let bytes = map.as_mut_slice()?;
            let whole = keep_whole_lines(bytes);
            // Reservations after the content must start as zeros for the next recovery.
            bytes[whole..].fill(0);
            whole
        } else {
            map.len()
        };
        let room = content
            .checked_add(options.capacity)
            .ok_or(Error::TooLarge {
                pos: content as u64,
                len: options.capacity,
            })?;
        if room > map.len() {
            map.grow(room)?;
        }
        let initial = map.len() as u64;
        let generations = std::array::from_fn(|_| OnceLock::new());
        let _ = generations[0].set(map.into_shared());
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| Shared {
            path: path.to_path_buf(),
            initial,
            end: AtomicU64::new(content as u64),
            generations,
            growing: Mutex::new(()),
            failed: AtomicBool::new(false),
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
    /// with another append.
    ///
    /// # Errors
    /// [`pmap::Error::NoSpace`] when the file had to double and the disk has no room (the
    /// line's bytes stay zeros, removed when the sink closes or reopens);
    /// [`Error::TooLarge`] past the address space.
    pub fn append(&self, line: &[u8]) -> Result<()> {
        if line.is_empty() {
            return Ok(());
        }
        let shared = &*self.shared;
        let len = line.len() as u64;
        let at = shared.end.fetch_add(len, Ordering::Relaxed);
        let result = shared.mapping_for(at, line.len()).and_then(|map| {
            // The reservation lies within the mapping: mapping_for chose one that long.
            Ok(map.write_at(at as usize, line)?)
        });
        if result.is_err() {
            shared.failed.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Bytes reserved so far (the content, once writers in flight have copied theirs).
    pub fn len(&self) -> u64 {
        self.shared.end.load(Ordering::Relaxed)
    }

    /// Whether nothing has been appended and the file held nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Writes the file's mapped bytes to the disk and waits.
    ///
    /// # Errors
    /// The [`pmap::Error`] from flushing.
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
            Err(shared) => Ok(shared.end.load(Ordering::Relaxed)),
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
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(flusher) = flusher {
                flusher.stop();
            }
        }
    }
}

impl Shared {
    /// The mapping whose length covers `len` bytes at `at`, mapping it (the file doubled,
    /// or more) if no writer has yet.
    fn mapping_for(&self, at: u64, len: usize) -> Result<&SharedMap> {
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
        let _growing = self.growing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(map) = self.generations[generation].get() {
            return Ok(map);
        }
        let cap = self.initial << generation;
        let map = usize::try_from(cap)
            .ok()
            .map(|_| pmap::open(&self.path, cap))
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

    /// Trims the file to the content (without the zeros of failed writes) and unmaps it.
    fn finish(&mut self) -> Result<u64> {
        let flusher = self
            .flusher
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(flusher) = flusher {
            flusher.stop();
        }
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
        let mut end = (self.end.load(Ordering::Relaxed) as usize).min(newest.len());
        if self.failed.load(Ordering::Relaxed) {
            let bytes = newest.as_mut_slice()?;
            end = keep_whole_lines(&mut bytes[..end]);
        }
        let len = newest.finish(end as u64)?;
        drop(maps);
        Ok(len)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Best effort, as a file's drop: close() reports the error.
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
