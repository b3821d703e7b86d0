//! `pounds log export`: ships the records past a persistent cursor, as JSON lines on standard
//! output or as syslog messages to a RELP server, and moves the cursor only past what was
//! delivered: written out whole (JSON), or acknowledged by the server (RELP). Killed at any
//! moment, the next run resends from the cursor: at least once, never silently skipped.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pounds::log::{FollowOptions, Follower, Format, Log, Reader, RecordRef};

use crate::args::RelpTarget;
use crate::error::{CliError, Result};
use crate::log_cmd::status;
use crate::relp::{RelpError, Session};
use crate::show::{FOLLOW_WAIT, Flow, Losses, Printer, Selection, Source, stdout_closed};
use crate::syslog::Syslog;

/// Bytes of JSON lines gathered before they are written out: large enough that a write
/// costs little per line, small enough that a pipe's reader sees them soon.
const JSON_BATCH: usize = 256 << 10;

/// Bytes of frames queued for the connection before the exporter stops reading records.
const RELP_BACKLOG: usize = 256 << 10;

/// How long the RELP exporter waits for the connection when it has nothing else to do.
const RELP_WAIT: Duration = Duration::from_millis(20);

/// The first and the longest pause before connecting again after a failure.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What `pounds log export` was asked.
pub(crate) struct Export {
    /// The log, opened read-write (the cursor is saved in its header).
    pub(crate) log: Log,
    /// The cursor's name.
    pub(crate) cursor: String,
    /// Go on as records are written.
    pub(crate) follow: bool,
    /// Exit 3 when records were lost.
    pub(crate) strict: bool,
}

/// Where a RELP export sends, and how.
pub(crate) struct RelpExport {
    /// The server.
    pub(crate) target: RelpTarget,
    /// The most messages sent and not acknowledged.
    pub(crate) window: u32,
    /// How records become messages.
    pub(crate) syslog: Syslog,
}

/// `pounds log export FILE --cursor NAME ...`: to standard output, or `to` a RELP server.
pub(crate) fn run(export: &Export, to: Option<RelpExport>) -> Result<ExitCode> {
    match to {
        None => json_lines(export),
        Some(relp) => relp_messages(export, relp),
    }
}

/// Where an export reads: a reader (to the newest record) or a follower, which waits for
/// records only when the exporter has nothing of its own to finish first.
enum Feed {
    Reader(Reader),
    Follower { follower: Follower, wait: Duration },
}

impl Feed {
    /// From the cursor `name` (in a laned log, each lane where the cursor's last exact save
    /// left it), or from the oldest record the ring holds if there is no such cursor.
    fn open(log: &Log, name: &str, follow: bool) -> Result<Feed> {
        if !follow {
            return Ok(Feed::Reader(log.reader_from_cursor(name)?));
        }
        let options = FollowOptions::new().from_start().from_cursor(name);
        Ok(Feed::Follower {
            follower: log.follow(options)?,
            wait: FOLLOW_WAIT,
        })
    }

    /// Saves where this feed is under the cursor `name`: each lane's place, in a laned log.
    fn save_cursor(&self, name: &str) -> Result<()> {
        match self {
            Feed::Reader(reader) => reader.save_cursor(name)?,
            Feed::Follower { follower, .. } => follower.save_cursor(name)?,
        }
        Ok(())
    }

    /// Whether a follower may wait for the next record (or must say at once that there is
    /// none, so that what was gathered goes out now).
    fn may_wait(&mut self, may: bool) {
        if let Feed::Follower { wait, .. } = self {
            *wait = if may { FOLLOW_WAIT } else { Duration::ZERO };
        }
    }
}

impl Source for Feed {
    fn next_record(&mut self) -> pounds::log::Result<Option<RecordRef<'_>>> {
        match self {
            Feed::Reader(reader) => reader.try_next_ref(),
            Feed::Follower { follower, wait } => follower.try_next_ref_timeout(*wait),
        }
    }
    fn at(&self) -> u64 {
        match self {
            Feed::Reader(reader) => reader.at(),
            Feed::Follower { follower, .. } => follower.at(),
        }
    }
    fn lost_so_far(&self) -> u64 {
        match self {
            Feed::Reader(reader) => reader.lost_so_far(),
            Feed::Follower { follower, .. } => follower.lost_so_far(),
        }
    }
}

/// The cursor of an export: loaded, and saved whenever the delivered position moves (a store
/// into the mapped header: cheap enough for every batch).
struct Cursor<'a> {
    log: &'a Log,
    name: &'a str,
    saved: Option<u64>,
    /// Records delivered at the last save of a feed's places ([`Cursor::save_feed`]): in a
    /// laned log the places move while the position may not.
    printed_at_save: Option<u64>,
}

impl<'a> Cursor<'a> {
    fn load(log: &'a Log, name: &'a str) -> Result<Cursor<'a>> {
        let saved = log.load_cursor(name)?;
        Ok(Cursor {
            log,
            name,
            saved,
            printed_at_save: None,
        })
    }

    fn save(&mut self, position: u64) -> Result<()> {
        if self.saved != Some(position) {
            self.log.save_cursor(self.name, position)?;
            self.saved = Some(position);
            self.printed_at_save = None;
        }
        Ok(())
    }

    /// Saves where `feed` is, every record it read having been delivered (`printed` of them
    /// so far): in a laned log each lane's place, so that the next export re-reads nothing.
    fn save_feed(&mut self, feed: &Feed, printed: u64) -> Result<()> {
        let position = feed.at();
        if (self.saved, self.printed_at_save) != (Some(position), Some(printed)) {
            feed.save_cursor(self.name)?;
            self.saved = Some(position);
            self.printed_at_save = Some(printed);
        }
        Ok(())
    }
}

/// JSON lines on standard output; the cursor moves once the lines before it were written.
fn json_lines(export: &Export) -> Result<ExitCode> {
    let mut cursor = Cursor::load(&export.log, &export.cursor)?;
    let mut feed = Feed::open(&export.log, &export.cursor, export.follow)?;
    // A cursor the writers lapped reports what was lost from where it was.
    let start = cursor.saved.unwrap_or_else(|| feed.at());
    cursor.save(start)?;
    let batch = Vec::with_capacity(JSON_BATCH + (4 << 10));
    let mut printer =
        Printer::new(batch, Format::Json, Selection::everything(), start).lost_on_stderr(true);
    let mut out = io::stdout().lock();
    widen_pipe(&out);
    loop {
        let gathered = !printer.output_mut().is_empty();
        feed.may_wait(!gathered);
        let flow = printer.step(&mut feed)?;
        let idle = matches!(flow, Flow::Idle | Flow::End);
        let batch = printer.output_mut();
        if batch.len() >= JSON_BATCH || (idle && !batch.is_empty()) {
            out.write_all(batch)?;
            out.flush()?;
            batch.clear();
        }
        if batch.is_empty() {
            // Every record the feed read was written (or lost, and reported).
            cursor.save_feed(&feed, printer.printed())?;
        }
        if idle && (!export.follow || stdout_closed()) {
            break;
        }
    }
    Ok(status(export.strict, printer.lost()))
}

/// The most a pipe on standard output is widened to: Linux's default limit for a user
/// (`/proc/sys/fs/pipe-max-size`).
#[cfg(target_os = "linux")]
const PIPE_SIZE: usize = 1 << 20;

/// Widens the pipe standard output is, if it is one: with the default 64 KiB, every batch
/// wakes the reader and waits for it, and the copying through the kernel costs more than the
/// formatting. Not a pipe, or the limit lower: the pipe stays as it is.
#[cfg(target_os = "linux")]
fn widen_pipe(out: &io::StdoutLock<'_>) {
    use std::os::fd::AsFd;
    let _ = rustix::pipe::fcntl_setpipe_size(out.as_fd(), PIPE_SIZE);
}

/// Pipes keep their size here.
#[cfg(not(target_os = "linux"))]
fn widen_pipe(_: &io::StdoutLock<'_>) {}

/// The time now, in ns since the epoch.
fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Syslog messages over RELP; the cursor moves once the server acknowledged the messages
/// before it. With `--follow`, a broken session is opened again and what it had not
/// acknowledged is sent again.
fn relp_messages(export: &Export, mut relp: RelpExport) -> Result<ExitCode> {
    let mut cursor = Cursor::load(&export.log, &export.cursor)?;
    let first = Feed::open(&export.log, &export.cursor, export.follow)?;
    let start = cursor.saved.unwrap_or_else(|| first.at());
    cursor.save(start)?;
    let mut losses = Losses::new(start);
    let mut feed = Some(first);
    let mut pause = RETRY_FIRST;
    loop {
        let failed = match Session::open(&relp.target) {
            Ok(mut session) => {
                pause = RETRY_FIRST;
                let mut current = match feed.take() {
                    Some(feed) => feed,
                    // Again from the last position acknowledged.
                    None => Feed::open(&export.log, &export.cursor, export.follow)?,
                };
                match ship(
                    export,
                    &mut relp,
                    &mut session,
                    &mut current,
                    &mut losses,
                    &mut cursor,
                ) {
                    Ok(()) => {
                        // Everything was acknowledged; a `close` the server does not answer
                        // loses nothing.
                        let _ = session.close();
                        return Ok(status(export.strict, losses.total()));
                    }
                    Err(Broken::Session(error)) => error,
                    Err(Broken::Export(error)) => return Err(error),
                }
            }
            Err(error) => error,
        };
        if !export.follow {
            return Err(CliError::Relp {
                target: relp.target.to_string(),
                error: failed,
            });
        }
        // The records not acknowledged are read again from the cursor, which reports again
        // what was lost since it: the count starts there.
        losses = Losses::new(cursor.saved.unwrap_or(start));
        feed = None;
        writeln!(
            io::stderr(),
            "pounds: {}: {failed}; connecting again in {pause:?}",
            relp.target
        )?;
        // A pause between attempts, not a wait for an event: nothing tells when the server is
        // back.
        std::thread::sleep(pause);
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Why shipping stopped: the session broke (try again), or the export cannot go on.
enum Broken {
    Session(RelpError),
    Export(CliError),
}

impl From<CliError> for Broken {
    fn from(error: CliError) -> Broken {
        Broken::Export(error)
    }
}

impl From<io::Error> for Broken {
    fn from(error: io::Error) -> Broken {
        Broken::Export(error.into())
    }
}

/// Sends the feed's records over `session` until the feed is at its end and everything was
/// acknowledged (without `--follow`), or the session breaks.
fn ship(
    export: &Export,
    relp: &mut RelpExport,
    session: &mut Session,
    feed: &mut Feed,
    losses: &mut Losses,
    cursor: &mut Cursor<'_>,
) -> std::result::Result<(), Broken> {
    let window = usize::try_from(relp.window).unwrap_or(usize::MAX);
    // The window is filled again once a quarter of it is free, not at every answer: a
    // server answers each message on its own, and a write of one frame per answer costs
    // more than the frame.
    let refill_below = window - (window / 4).max(1) + 1;
    let mut message = Vec::with_capacity(1024);
    let mut idle = false;
    // Records read from the feed in this session: with the position, what tells a save of the
    // feed's places that they moved.
    let mut read = 0u64;
    loop {
        // Read records while the window and the queue have room.
        let refill = session.unacked() < refill_below;
        if refill {
            idle = false;
        }
        while refill && session.unacked() < window && session.backlog() < RELP_BACKLOG {
            // Wait for records only when nothing is in flight: acknowledgements come first.
            feed.may_wait(session.unacked() == 0);
            let before = (feed.at(), feed.lost_so_far());
            message.clear();
            let got = match feed.next_record().map_err(CliError::from)? {
                Some(record) => {
                    relp.syslog.record(&record, &mut message);
                    Some(record.id)
                }
                None => None,
            };
            if let Some(gap) = losses.after_step(feed, got) {
                writeln!(io::stderr(), "pounds: {gap}")?;
                let mut report = Vec::with_capacity(256);
                relp.syslog.lost(gap, now_nanos(), &mut report);
                // Acknowledged, the report moves the cursor to the record after the gap.
                session.send_syslog(&report, got.unwrap_or_else(|| feed.at()));
            }
            if got.is_some() {
                read += 1;
                session.send_syslog(&message, feed.at());
            } else if (feed.at(), feed.lost_so_far()) == before {
                idle = true;
                break;
            }
        }
        if session.unacked() == 0 {
            // Nothing in flight: every record the feed read was acknowledged.
            cursor.save_feed(feed, read)?;
            if idle && !export.follow {
                return Ok(());
            }
            if idle {
                continue;
            }
        }
        // Nothing to do but wait for answers: no record to send, or the window too full.
        let wait = if idle
            || !refill
            || session.unacked() >= window
            || session.backlog() >= RELP_BACKLOG
        {
            RELP_WAIT
        } else {
            Duration::ZERO
        };
        let exchanged = session.exchange(wait);
        if let Some(position) = exchanged.acked {
            cursor.save(position)?;
        }
        if let Some(error) = exchanged.broken {
            return Err(Broken::Session(error));
        }
    }
}
