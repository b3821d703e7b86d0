//! `pounds log ...`: thin over `plog`; every check lives in the library.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;

use pounds::log::{
    Filter, FollowOptions, Format, Level, Log, LogOptions, Reader, RecordRef, Stats,
};

use crate::args::{FilterArgs, LogCommand};
use crate::error::Result;
use crate::json;

pub(crate) fn run(command: LogCommand) -> Result<()> {
    match command {
        LogCommand::Create {
            file,
            blocks,
            block_size,
        } => {
            let mut options = LogOptions::new();
            if let Some(blocks) = blocks {
                options = options.blocks(blocks);
            }
            if let Some(block_size) = block_size {
                options = options.block_size(block_size);
            }
            options.open(&file)?.flush()?;
            Ok(())
        }
        LogCommand::Write {
            file,
            level,
            tag,
            message,
        } => write(&file, level, &tag, &message),
        LogCommand::Dump {
            file,
            filter,
            since,
            last,
            json,
        } => {
            let log = Log::open_read_only(&file)?;
            let selection = Selection::of(filter);
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
            let format = format_of(json);
            let mut out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
            let mut result = Ok(());
            drain(&mut reader, |record| {
                if end.is_some_and(|end| record.id >= end) {
                    return false;
                }
                if selection.accepts(record) {
                    result = format.write_ref(record, &mut out);
                }
                result.is_ok()
            });
            result?;
            out.flush()?;
            Ok(())
        }
        LogCommand::Follow {
            file,
            filter,
            json,
            count,
            from_start,
            last,
        } => {
            let log = open_for_follow(&file)?;
            let selection = Selection::of(filter);
            let mut options = FollowOptions::new()
                .from_start(from_start)
                .filter(selection.library_filter());
            if let Some(n) = last {
                if let (Some(start), _) = last_start(&log, None, &selection, n) {
                    options = options.from_id(start);
                }
            }
            let mut follower = log.follow(options)?;
            let format = format_of(json);
            let mut out = io::stdout().lock();
            let limit = count.unwrap_or(u64::MAX);
            let mut printed = 0;
            while printed < limit {
                let Some(record) = follower.next_ref() else {
                    break;
                };
                if !selection.accepts(&record) {
                    continue;
                }
                format.write_ref(&record, &mut out)?;
                // A follower's reader is usually a person or a pipe waiting for each line.
                out.flush()?;
                printed += 1;
            }
            Ok(())
        }
        LogCommand::Stat { file, json } => {
            let stats = Log::open_read_only(&file)?.stats();
            let mut out = io::stdout().lock();
            if json {
                writeln!(out, "{}", stats_json(&stats))?
            } else {
                write_stats(&mut out, &stats)?
            }
            Ok(())
        }
    }
}

fn write(file: &Path, level: Level, tag: &str, message: &[String]) -> Result<()> {
    let log = Log::open(file)?;
    if !message.is_empty() {
        log.write(level, tag, message.join(" "))?;
        return Ok(());
    }
    for line in io::stdin().lock().lines() {
        log.write(level, tag, line?)?;
    }
    Ok(())
}

/// Hands every record `reader` can reach to `each` until it returns false or the reader is at
/// the newest record. `Reader::next_ref` also returns `None` when writers keep lapping it (its
/// work per call is bounded); that is told apart from the end by the reader having moved.
fn drain(reader: &mut Reader, mut each: impl FnMut(&RecordRef<'_>) -> bool) {
    loop {
        let before = (Reader::position(reader), reader.lost());
        if let Some(record) = reader.next_ref() {
            if !each(&record) {
                return;
            }
        } else if (Reader::position(reader), reader.lost()) == before {
            return;
        }
    }
}

/// Where the last `n` records that `selection` accepts start (from `since` or the oldest on):
/// `None` when there are fewer (start where the reading would have), and the position the
/// pass ended at. With `n == 0`, the start is that end.
fn last_start(log: &Log, since: Option<u64>, selection: &Selection, n: u64) -> (Option<u64>, u64) {
    let mut reader = match since {
        Some(id) => log.reader_from(id),
        None => log.reader(),
    };
    let keep = usize::try_from(n).unwrap_or(usize::MAX);
    let mut ids = VecDeque::with_capacity(keep.min(1 << 16));
    drain(&mut reader, |record| {
        if keep > 0 && selection.accepts(record) {
            if ids.len() == keep {
                ids.pop_front();
            }
            ids.push_back(record.id);
        }
        true
    });
    let end = Reader::position(&reader);
    let start = if keep == 0 {
        Some(end)
    } else if ids.len() == keep {
        ids.front().copied()
    } else {
        since
    };
    (start, end)
}

/// A follower with write access sleeps on the log's futex and is woken by writers; a read-only
/// one has to poll. So follow read-write when the file allows it (never creating it).
fn open_for_follow(file: &Path) -> Result<Log> {
    match LogOptions::new().create(false).open(file) {
        Ok(log) => Ok(log),
        Err(_) => Ok(Log::open_read_only(file)?),
    }
}

/// The records `--level` and `--tag` select.
struct Selection {
    /// The levels, as the library's filter (no tag in it).
    levels: Filter,
    /// Any of these tags (as bytes); empty: every tag.
    tags: Vec<String>,
}

impl Selection {
    /// One level is a threshold (it and the more severe ones); several are exactly those.
    fn of(args: FilterArgs) -> Selection {
        let levels = match args.levels.as_slice() {
            [] => Filter::all(),
            [level] => Filter::all().min_level(*level),
            several => Filter::all().levels(several.iter().copied()),
        };
        Selection {
            levels,
            tags: args.tags,
        }
    }

    /// What the library can filter by itself: the levels, and the tag when there is one.
    fn library_filter(&self) -> Filter {
        match self.tags.as_slice() {
            [tag] => self.levels.clone().tag(tag.clone()),
            _ => self.levels.clone(),
        }
    }

    fn accepts(&self, record: &RecordRef<'_>) -> bool {
        self.levels.accepts_bytes(record.level, record.tag)
            && (self.tags.is_empty() || self.tags.iter().any(|tag| tag.as_bytes() == record.tag))
    }
}

fn format_of(json: bool) -> Format {
    if json { Format::Json } else { Format::Text }
}

fn write_stats(out: &mut impl Write, stats: &Stats) -> io::Result<()> {
    let oldest = stats
        .oldest_id
        .map_or_else(|| "none (empty)".to_string(), |id| id.to_string());
    writeln!(out, "file:         {}", stats.path.display())?;
    writeln!(out, "version:      {}", stats.version)?;
    writeln!(
        out,
        "geometry:     {} blocks x {} bytes",
        stats.blocks, stats.block_size
    )?;
    writeln!(out, "file size:    {} bytes", stats.file_size)?;
    writeln!(out, "created:      {}", pounds::log::rfc3339(stats.created))?;
    writeln!(out, "next id:      {}", stats.next_id)?;
    writeln!(out, "oldest id:    {oldest}")?;
    writeln!(out, "max message:  {} bytes", stats.max_message)
}

fn stats_json(stats: &Stats) -> String {
    let oldest = stats
        .oldest_id
        .map_or_else(|| "null".to_string(), |id| id.to_string());
    format!(
        "{{\"file\":{},\"version\":{},\"blocks\":{},\"block_size\":{},\"file_size\":{},\
         \"created\":{},\"next_id\":{},\"oldest_id\":{},\"max_message\":{}}}",
        json::string(&stats.path.to_string_lossy()),
        stats.version,
        stats.blocks,
        stats.block_size,
        stats.file_size,
        json::string(&pounds::log::rfc3339(stats.created)),
        stats.next_id,
        oldest,
        stats.max_message,
    )
}
