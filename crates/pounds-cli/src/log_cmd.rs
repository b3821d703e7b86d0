//! `pounds log ...`: thin over `plog`; every check lives in the library.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;

use pounds::log::{Filter, FollowOptions, Format, Level, Log, LogOptions, Stats};

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
            json,
        } => {
            let log = Log::open_read_only(&file)?;
            let mut out = BufWriter::new(io::stdout().lock());
            log.dump(&mut out, &filter_of(filter), since, format_of(json))?;
            out.flush()?;
            Ok(())
        }
        LogCommand::Follow {
            file,
            filter,
            json,
            count,
            from_start,
        } => {
            let log = open_for_follow(&file)?;
            let options = FollowOptions::new()
                .from_start(from_start)
                .filter(filter_of(filter));
            let mut follower = log.follow(options)?;
            let format = format_of(json);
            let mut out = io::stdout().lock();
            let limit = count.unwrap_or(u64::MAX);
            let mut printed = 0;
            while printed < limit {
                let Some(record) = follower.next_ref() else {
                    break;
                };
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

/// A follower with write access sleeps on the log's futex and is woken by writers; a read-only
/// one has to poll. So follow read-write when the file allows it (never creating it).
fn open_for_follow(file: &Path) -> Result<Log> {
    match LogOptions::new().create(false).open(file) {
        Ok(log) => Ok(log),
        Err(_) => Ok(Log::open_read_only(file)?),
    }
}

fn filter_of(args: FilterArgs) -> Filter {
    let filter = Filter::all().levels(args.levels);
    match args.tag {
        Some(tag) => filter.tag(tag),
        None => filter,
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
