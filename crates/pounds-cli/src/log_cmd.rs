//! `pounds log ...`: thin over `plog`; every check lives in the library.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use pounds::log::{FollowOptions, Follower, Format, Level, Log, LogOptions, Reader, Stats};

use crate::args::{ColorWhen, LogCommand, Since, TimeArgs};
use crate::error::{CliError, Result};
use crate::json;
use crate::show::{Flow, Printer, Selection, last_start, stdout_closed};

/// The exit status of `dump --strict` and `follow --strict` when records were lost.
pub(crate) const LOST_EXIT: u8 = 3;

pub(crate) fn run(command: LogCommand) -> Result<ExitCode> {
    match command {
        LogCommand::Create {
            file,
            blocks,
            block_size,
            lanes,
        } => {
            let mut options = LogOptions::new();
            if let Some(lanes) = lanes {
                options = options.lanes(lanes);
            }
            if let Some(blocks) = blocks {
                options = options.blocks(blocks);
            }
            if let Some(block_size) = block_size {
                options = options.block_size(block_size);
            }
            options.open(&file)?.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::Write {
            file,
            level,
            tag,
            message,
        } => write(&file, level, &tag, &message).map(|()| ExitCode::SUCCESS),
        LogCommand::Dump {
            file,
            filter,
            times,
            last,
            json,
            strict,
            color,
        } => {
            let (since, since_time, until) = resolve_times(&times)?;
            let log = Log::open_read_only(&file)?;
            let selection = Selection::of(filter).between(since_time, until);
            // `-n N`: a first pass finds where the last N selected records start, and the
            // dump stops where that pass ended (records written since are not "the last N").
            let (start, end) = match last {
                Some(n) => {
                    let (start, end) = last_start(&log, since, &selection, n);
                    (start, Some(end))
                }
                None => (since, None),
            };
            let mut reader = match start {
                Some(id) => log.reader_from(id),
                None => log.reader(),
            };
            let asked = start.unwrap_or_else(|| Reader::position(&reader));
            let out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
            let mut printer = Printer::new(out, format_of(json), selection, asked)
                .end_at(end)
                .coloured(coloured(color, json));
            while !matches!(printer.step(&mut reader)?, Flow::Idle | Flow::End) {}
            printer.flush()?;
            Ok(status(strict, printer.lost()))
        }
        LogCommand::Follow {
            file,
            filter,
            times,
            json,
            count,
            from_start,
            last,
            strict,
            color,
            cursor,
            show_cursor,
        } => {
            let (since, since_time, until) = resolve_times(&times)?;
            let log = match &cursor {
                Some(name) => open_for_cursor(&file, name)?,
                None => open_for_follow(&file)?,
            };
            let selection = Selection::of(filter).between(since_time, until);
            // `--since TIME`: the records written since then, which may be anywhere in the
            // ring, so from the oldest (as journalctl -f --since).
            let mut options = FollowOptions::new();
            if from_start || since_time.is_some() {
                options = options.from_start();
            }
            let saved = match &cursor {
                Some(name) => log.load_cursor(name)?,
                None => None,
            };
            match (since, &cursor) {
                (Some(id), _) => options = options.from_id(id),
                // Where the cursor was saved: in a laned log, each lane exactly there.
                (None, Some(name)) => options = options.from_cursor(name),
                (None, None) => {}
            }
            if let Some(n) = last {
                if let (Some(start), _) = last_start(&log, since, &selection, n) {
                    options = options.from_id(start);
                }
            }
            let mut follower = log.follow(options)?;
            // A cursor the writers lapped reports what was lost from where it was.
            let start = saved.unwrap_or_else(|| Follower::position(&follower));
            let mut saver = cursor.map(|name| CursorSaver::new(&log, name));
            if let Some(saver) = saver.as_mut() {
                saver.save(Follower::position(&follower), 0, Some(&follower))?;
            }
            let out = io::stdout().lock();
            let mut printer = Printer::new(out, format_of(json), selection, start)
                .coloured(coloured(color, json))
                .show_cursor(show_cursor);
            let limit = count.unwrap_or(u64::MAX);
            // The position up to which every record was delivered (printed and flushed): what
            // the cursor saves, also when the output fails.
            let mut delivered = Follower::position(&follower);
            // Whether the follower has read nothing past `delivered` (a record past `--until`
            // it read and did not print would be skipped by a cursor of its lanes).
            let mut follower_at_delivered = true;
            let outcome = (|| -> Result<()> {
                while printer.printed() < limit {
                    let flow = printer.step(&mut follower)?;
                    match flow {
                        // A follower's reader is usually a person or a pipe waiting for each
                        // line.
                        Flow::Printed => printer.flush()?,
                        // `follow | head -1`: stop when the reader has gone, even with no
                        // record to write (a write into the closed pipe, EPIPE, also ends it
                        // quietly).
                        Flow::Idle if stdout_closed() => break,
                        // `--until`: the first record well past it, or the clock well past it.
                        Flow::End => break,
                        Flow::Idle if selection_over(&printer) => break,
                        _ => {}
                    }
                    if flow == Flow::End {
                        follower_at_delivered = false;
                    } else {
                        delivered = Follower::position(&follower);
                    }
                    if let Some(saver) = saver.as_mut() {
                        let at = follower_at_delivered.then_some(&follower);
                        saver.tick(delivered, printer.printed(), at)?;
                    }
                }
                printer.flush()?;
                Ok(())
            })();
            // At exit, whatever ended it (the count, a closed pipe, `--until`, an error).
            if let Some(saver) = saver.as_mut() {
                let at = follower_at_delivered.then_some(&follower);
                saver.save(delivered, printer.printed(), at)?;
            }
            outcome?;
            Ok(status(strict, printer.lost()))
        }
        LogCommand::Export {
            file,
            cursor,
            follow,
            to,
            window,
            hostname,
            facility,
            strict,
        } => {
            let log = open_for_cursor(&file, &cursor)?;
            let export = crate::export::Export {
                log,
                cursor,
                follow,
                strict,
            };
            let to = to.map(|target| crate::export::RelpExport {
                target,
                window,
                syslog: crate::syslog::Syslog::new(facility, hostname),
            });
            crate::export::run(&export, to)
        }
        LogCommand::Stat { file, json } => {
            let log = Log::open_read_only(&file)?;
            let stats = log.stats();
            let held = held(&log);
            let cursors = cursors(&log, &stats);
            let mut out = io::stdout().lock();
            if json {
                writeln!(out, "{}", stats_json(&stats, &held, &cursors))?
            } else {
                write_stats(&mut out, &stats, &held, &cursors)?
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write(file: &Path, level: Level, tag: &str, message: &[String]) -> Result<()> {
    let log = Log::open(file)?;
    if !message.is_empty() {
        log.write(level, tag, message.join(" "))?;
        return Ok(());
    }
    let max = log.max_message(tag.len());
    let mut input = io::stdin().lock();
    let mut line = Vec::new();
    let (mut number, mut skipped) = (0u64, 0u64);
    // Longer lines are kept only up to one byte past the limit: memory stays bounded.
    while let Some(len) = read_line_capped(&mut input, &mut line, max.saturating_add(1))? {
        number += 1;
        let why = if len > max {
            Some(format!(
                "{len} bytes, more than the {max} this log takes with this tag"
            ))
        } else if std::str::from_utf8(&line).is_err() {
            Some("not valid UTF-8".to_string())
        } else {
            match log.write(level, tag, &line) {
                Ok(_) => None,
                Err(pounds::log::Error::MessageTooLarge { size, max }) => Some(format!(
                    "{size} bytes, more than the {max} this log takes with this tag"
                )),
                Err(error) => return Err(error.into()),
            }
        };
        if let Some(why) = why {
            skipped += 1;
            writeln!(io::stderr(), "pounds: line {number} skipped: {why}")?;
        }
    }
    if skipped > 0 {
        return Err(CliError::Skipped {
            skipped,
            lines: number,
        });
    }
    Ok(())
}

/// Reads one line into `line` without its `\n` (nor a `\r` before it), keeping at most `cap`
/// bytes of it; returns the line's whole length, or `None` at the end of the input.
fn read_line_capped(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<usize>> {
    line.clear();
    let (mut len, mut any) = (0usize, false);
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buf.is_empty() {
            break;
        }
        any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        len = len.saturating_add(chunk.len());
        let used = newline.map_or(buf.len(), |at| at + 1);
        input.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if len == line.len() && line.last() == Some(&b'\r') {
        line.pop();
        len -= 1;
    }
    Ok(any.then_some(len))
}

/// `--after-id`, `--since` and `--until` as (the id to start at, the time to show records
/// from, the time to show them to). `--since ID` (a bare integer) is the old form of
/// `--after-id ID`: still taken, with a note on stderr.
fn resolve_times(times: &TimeArgs) -> Result<(Option<u64>, Option<u64>, Option<u64>)> {
    let (mut id, mut since) = (times.after_id, None);
    match times.since {
        Some(Since::Id(old)) => {
            if times.after_id.is_some() {
                usage_error("--since ID (deprecated) and --after-id both give the id to start at")
            }
            writeln!(
                io::stderr(),
                "pounds: --since ID is deprecated (--since takes a time now): use --after-id {old}"
            )?;
            id = Some(old);
        }
        Some(Since::Time(time)) => since = Some(time),
        None => {}
    }
    Ok((id, since, times.until))
}

/// Exits with clap's usage error (status 2) for a conflict clap's grammar cannot say.
fn usage_error(message: &str) -> ! {
    use clap::CommandFactory;
    crate::args::Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// Whether a follower with `--until` can stop: the clock is past it (with the slack).
fn selection_over<W: Write>(printer: &Printer<W>) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        });
    printer.selection().over_at(now)
}

/// Saves a follower's position under a cursor's name: at least every [`Self::EVERY`] or
/// [`Self::RECORDS`] steps, and when asked. Given the follower whose state is the position
/// (it has read nothing past what was delivered), it saves the follower's cursor, which in a
/// laned log resumes each lane exactly; else the position alone (each lane from it: some
/// records again, none missed).
struct CursorSaver<'a> {
    log: &'a Log,
    name: String,
    /// The position and the count of records printed at the last save.
    saved: Option<(u64, u64)>,
    at: std::time::Instant,
    steps: u64,
}

impl<'a> CursorSaver<'a> {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(100);
    const RECORDS: u64 = 1000;

    fn new(log: &'a Log, name: String) -> CursorSaver<'a> {
        CursorSaver {
            log,
            name,
            saved: None,
            at: std::time::Instant::now(),
            steps: 0,
        }
    }

    /// Saves `position` (with `printed` records printed) if either moved and the time or the
    /// count is up.
    fn tick(&mut self, position: u64, printed: u64, at: Option<&Follower>) -> Result<()> {
        self.steps += 1;
        if self.saved != Some((position, printed))
            && (self.steps >= Self::RECORDS || self.at.elapsed() >= Self::EVERY)
        {
            self.save(position, printed, at)?;
        }
        Ok(())
    }

    /// Saves `position` now (through `at`, the follower at that position, if given).
    fn save(&mut self, position: u64, printed: u64, at: Option<&Follower>) -> Result<()> {
        if self.saved != Some((position, printed)) {
            match at {
                Some(follower) => follower.save_cursor(&self.name)?,
                None => self.log.save_cursor(&self.name, position)?,
            }
            self.saved = Some((position, printed));
        }
        self.at = std::time::Instant::now();
        self.steps = 0;
        Ok(())
    }
}

/// `follow --cursor`: the cursor is saved in the file's header, so the log is opened
/// read-write (never created).
pub(crate) fn open_for_cursor(file: &Path, name: &str) -> Result<Log> {
    LogOptions::new()
        .must_exist()
        .open(file)
        .map_err(|error| CliError::Cursor {
            name: name.to_string(),
            file: file.display().to_string(),
            error,
        })
}

/// A follower with write access sleeps on the log's futex and is woken by writers; a read-only
/// one has to poll. So follow read-write when the file allows it (never creating it).
fn open_for_follow(file: &Path) -> Result<Log> {
    match LogOptions::new().must_exist().open(file) {
        Ok(log) => Ok(log),
        Err(_) => Ok(Log::open_read_only(file)?),
    }
}

/// Whether text lines are coloured: `auto` asks anstream (a terminal, `NO_COLOR`,
/// `CLICOLOR`, `CLICOLOR_FORCE`, `TERM=dumb`), as clap does for its own help.
fn coloured(when: ColorWhen, json: bool) -> bool {
    match when {
        _ if json => false,
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            anstream::AutoStream::choice(&io::stdout()) != anstream::ColorChoice::Never
        }
    }
}

/// Exit status 3 when records were lost and `--strict` asked about it.
pub(crate) fn status(strict: bool, lost: u64) -> ExitCode {
    if strict && lost > 0 {
        ExitCode::from(LOST_EXIT)
    } else {
        ExitCode::SUCCESS
    }
}

fn format_of(json: bool) -> Format {
    if json { Format::Json } else { Format::Text }
}

/// What a pass over the ring found readable.
struct Held {
    /// Records read.
    records: u64,
    /// The id and time of the oldest record read.
    oldest: Option<(u64, u64)>,
    /// The id and time of the newest record read.
    newest: Option<(u64, u64)>,
    /// Blocks skipped because no valid record started there (the ring's health).
    invalid: u64,
    /// Blocks the writers overwrote while the pass read them (a live log).
    lapped: u64,
}

impl Held {
    /// The write rate over the span of the records held (the last lap, once the ring is
    /// full), from the first record read to the newest.
    fn rate(&self) -> Option<Rate> {
        let ((first_id, first_time), (last_id, last_time)) = (self.oldest?, self.newest?);
        let nanos = last_time.checked_sub(first_time).filter(|&n| n > 0)?;
        let seconds = nanos as f64 / 1e9;
        Some(Rate {
            // The records after the first: each was written within the span.
            records_per_second: (self.records - 1) as f64 / seconds,
            blocks_per_second: (last_id - first_id) as f64 / seconds,
            over_seconds: seconds,
        })
    }
}

/// Records and blocks written a second, over `over_seconds`.
struct Rate {
    records_per_second: f64,
    blocks_per_second: f64,
    over_seconds: f64,
}

/// Reads the whole ring once (bounded: at most one ring of blocks).
fn held(log: &Log) -> Held {
    let mut reader = log.reader();
    let mut held = Held {
        records: 0,
        oldest: None,
        newest: None,
        invalid: 0,
        lapped: 0,
    };
    loop {
        let before = (Reader::position(&reader), reader.lost());
        if let Some(record) = reader.next_ref() {
            held.records += 1;
            held.newest = Some((record.id, record.time));
            held.oldest.get_or_insert((record.id, record.time));
        } else if (Reader::position(&reader), reader.lost()) == before {
            held.invalid = reader.invalid();
            held.lapped = reader.lost().saturating_sub(reader.invalid());
            return held;
        }
    }
}

/// A named cursor and how far it is behind the writers.
struct CursorState {
    name: String,
    position: u64,
    /// Ids between the cursor and the next id to be written.
    behind: u64,
    /// Whether the writers overwrote ids the cursor has not read.
    lapped: bool,
}

fn cursors(log: &Log, stats: &Stats) -> Vec<CursorState> {
    let oldest_kept = stats.next_id.saturating_sub(stats.blocks);
    log.cursors()
        .into_iter()
        .map(|(name, position)| CursorState {
            name,
            position,
            behind: stats.next_id.saturating_sub(position),
            lapped: position < oldest_kept,
        })
        .collect()
}

fn write_stats(
    out: &mut impl Write,
    stats: &Stats,
    held: &Held,
    cursors: &[CursorState],
) -> io::Result<()> {
    let oldest = stats
        .oldest_id
        .map_or_else(|| "none (empty)".to_string(), |id| id.to_string());
    writeln!(out, "file:         {}", stats.path.display())?;
    writeln!(out, "version:      {}", stats.version)?;
    let lanes = if stats.lanes > 1 {
        format!(", in {} writer lanes", stats.lanes)
    } else {
        String::new()
    };
    writeln!(
        out,
        "geometry:     {} blocks x {} bytes{lanes}",
        stats.blocks, stats.block_size
    )?;
    writeln!(out, "file size:    {} bytes", stats.file_size)?;
    writeln!(out, "created:      {}", pounds::log::rfc3339(stats.created))?;
    writeln!(out, "next id:      {}", stats.next_id)?;
    writeln!(out, "oldest id:    {oldest}")?;
    match (stats.oldest_id, held.newest) {
        (Some(oldest), Some((newest, _))) => writeln!(
            out,
            "ids held:     {oldest}..{newest} ({} records readable)",
            held.records
        )?,
        _ => writeln!(out, "ids held:     none (empty)")?,
    }
    match held.rate() {
        Some(rate) => writeln!(
            out,
            "write rate:   {:.1} records/s, {:.0} bytes/s of ring, over the {} the ring holds",
            rate.records_per_second,
            rate.blocks_per_second * f64::from(stats.block_size),
            seconds(rate.over_seconds)
        )?,
        None => writeln!(out, "write rate:   unknown (fewer than two records held)")?,
    }
    match held.invalid {
        0 => writeln!(out, "health:       every block checks")?,
        1 => writeln!(
            out,
            "health:       1 block fails validation (damaged, or left by a writer that died)"
        )?,
        n => writeln!(
            out,
            "health:       {n} blocks fail validation (damaged, or left by writers that died)"
        )?,
    }
    if held.lapped > 0 {
        writeln!(
            out,
            "              ({} blocks overwritten by the writers while stat read them)",
            held.lapped
        )?;
    }
    writeln!(out, "max message:  {} bytes", stats.max_message)?;
    if cursors.is_empty() {
        return writeln!(out, "cursors:      none");
    }
    for (i, cursor) in cursors.iter().enumerate() {
        let label = if i == 0 { "cursors:" } else { "" };
        writeln!(
            out,
            "{label:<14}{} at {}, {} behind{}",
            cursor.name,
            cursor.position,
            cursor.behind,
            if cursor.lapped { " (lapped)" } else { "" }
        )?;
    }
    Ok(())
}

/// A span of time for people: from microseconds to days, about three significant digits.
fn seconds(seconds: f64) -> String {
    let (value, unit) = if seconds < 1e-3 {
        (seconds * 1e6, "us")
    } else if seconds < 1.0 {
        (seconds * 1e3, "ms")
    } else if seconds < 60.0 {
        (seconds, "s")
    } else if seconds < 3600.0 {
        (seconds / 60.0, "min")
    } else if seconds < 86400.0 {
        (seconds / 3600.0, "h")
    } else {
        (seconds / 86400.0, "days")
    };
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$} {unit}")
}

fn stats_json(stats: &Stats, held: &Held, cursors: &[CursorState]) -> String {
    let id = |id: Option<u64>| id.map_or_else(|| "null".to_string(), |id| id.to_string());
    let rate = held.rate().map_or_else(
        || "null".to_string(),
        |rate| {
            format!(
                "{{\"records_per_second\":{},\"blocks_per_second\":{},\"over_seconds\":{}}}",
                rate.records_per_second, rate.blocks_per_second, rate.over_seconds
            )
        },
    );
    let cursors: Vec<String> = cursors
        .iter()
        .map(|cursor| {
            format!(
                "{{\"name\":{},\"position\":{},\"behind\":{},\"lapped\":{}}}",
                json::string(&cursor.name),
                cursor.position,
                cursor.behind,
                cursor.lapped
            )
        })
        .collect();
    format!(
        "{{\"file\":{},\"version\":{},\"blocks\":{},\"block_size\":{},\"lanes\":{},\"file_size\":{},\
         \"created\":{},\"next_id\":{},\"oldest_id\":{},\"newest_id\":{},\"records\":{},\
         \"rate\":{},\"invalid_blocks\":{},\"lapped_while_reading\":{},\
         \"max_message\":{},\"cursors\":[{}]}}",
        json::string(&stats.path.to_string_lossy()),
        stats.version,
        stats.blocks,
        stats.block_size,
        stats.lanes,
        stats.file_size,
        json::string(&pounds::log::rfc3339(stats.created)),
        stats.next_id,
        id(stats.oldest_id),
        id(held.newest.map(|(id, _)| id)),
        held.records,
        rate,
        held.invalid,
        held.lapped,
        stats.max_message,
        cursors.join(","),
    )
}
