//! The command-line grammar. Scripts rely on it: keep it stable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pounds::log::Level;

/// Durable, very fast work on memory-mapped files.
#[derive(Debug, Parser)]
#[command(name = "pounds", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Work with a circular log file.
    #[command(subcommand)]
    Log(LogCommand),
    /// Work with a block database file.
    #[command(subcommand)]
    Db(DbCommand),
    /// The main job in one run: writers in threads and processes fill a log while a follower
    /// reads it live; prints throughput, latency percentiles, and records checked and lost.
    Demo(DemoArgs),
    /// Print a completion script for a shell: `pounds completions bash >
    /// /etc/bash_completion.d/pounds`, `pounds completions zsh > "${fpath[1]}/_pounds"`,
    /// `pounds completions fish > ~/.config/fish/completions/pounds.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of `pounds`, or of one of its subcommands: `pounds man | man
    /// -l -`, `pounds man log follow | man -l -`.
    Man {
        /// The subcommand, as words (`log follow`); none: the page of `pounds` itself.
        subcommand: Vec<String>,
    },
    /// One writer process of the demo (started by `demo` itself).
    #[command(hide = true)]
    DemoWriter(DemoWriterArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Create a log file (an existing one must have the same geometry).
    Create {
        /// The log file.
        file: PathBuf,
        /// Number of blocks in the ring.
        #[arg(long)]
        blocks: Option<u64>,
        /// Size of one block in bytes (a power of two).
        #[arg(long = "block-size")]
        block_size: Option<u32>,
    },
    /// Write a message, or one message per line of standard input when none is given. Creates
    /// the file with the default geometry if it does not exist.
    ///
    /// From standard input, a line that is not valid UTF-8, or longer than the log takes, is
    /// skipped (not split) and reported on stderr with its line number; the other lines are
    /// written, and the exit status is then 1.
    Write {
        /// The log file.
        file: PathBuf,
        /// The message's level: trace, debug, info, warn (or warning), error.
        #[arg(long, default_value = "info", value_parser = parse_level)]
        level: Level,
        /// The tag naming the writer or module.
        #[arg(long, default_value = "cli")]
        tag: String,
        /// The message; its words are joined with spaces.
        message: Vec<String>,
    },
    /// Print the records, oldest first. Records lost to wrap-around (ids asked for with
    /// `--since` that were overwritten, or overwritten while the dump read) are reported: a
    /// line `pounds: lost N records (ids A..B) to wrap-around` on stderr, or with `--json` an
    /// object `{"lost":N,"from":A,"to":B}` in the stream (ids A to B inclusive).
    Dump {
        /// The log file.
        file: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        times: TimeArgs,
        /// Only the last N of the records selected.
        #[arg(short = 'n', long = "lines", value_name = "N")]
        last: Option<u64>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Exit with status 3 if records were lost to wrap-around (overwritten before they
        /// were read); they are reported either way.
        #[arg(long)]
        strict: bool,
        #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
        /// Colour text lines by level: auto (on a terminal, unless NO_COLOR is set), always,
        /// never. JSON is never coloured.
        color: ColorWhen,
    },
    /// Print records as they are written, until interrupted or `--count` records. Records the
    /// writers overwrote before the follower read them are reported as `dump` reports them.
    Follow {
        /// The log file.
        file: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        times: TimeArgs,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Stop after printing this many records (those of `-n` included).
        #[arg(long)]
        count: Option<u64>,
        /// Start at the oldest record instead of the newest.
        #[arg(long = "from-start", conflicts_with = "last")]
        from_start: bool,
        /// Print the last N of the records selected first, then follow.
        #[arg(short = 'n', long = "lines", value_name = "N")]
        last: Option<u64>,
        /// Exit with status 3 if records were lost to wrap-around (the writers lapped the
        /// follower); they are reported either way.
        #[arg(long)]
        strict: bool,
        /// Resume at the named persistent cursor (kept in the log's header) and save the
        /// position there as records are read (every 100 ms or 1000 records, and at exit). A
        /// new cursor starts at the newest record (the oldest with `--from-start`). Opens the
        /// log read-write: a file this user may not write is an error.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["last", "after_id"])]
        cursor: Option<String>,
        /// Print with each record the position after it (what `--cursor` saves, and what
        /// `--after-id` takes to resume there): a trailing ` cursor=N`, or a `"cursor":N`
        /// field with `--json`.
        #[arg(long = "show-cursor")]
        show_cursor: bool,
        /// Colour text lines by level: auto (on a terminal, unless NO_COLOR is set), always,
        /// never. JSON is never coloured.
        #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
        color: ColorWhen,
    },
    /// Print the log's geometry and counters, the ids it holds (oldest to newest) and how many
    /// records are readable, and each named cursor with how far it is behind the writers (in
    /// ids; "lapped" when the writers overwrote ids it had not read).
    Stat {
        /// The log file.
        file: PathBuf,
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set (`CLICOLOR_FORCE` forces it).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Which records to show.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// One level: show it and the more severe ones (`--level warn` shows warn and error, like
    /// journalctl's `-p`). Several, by comma or by repeating the option (`--level debug,error`):
    /// show exactly those. Names: trace, debug, info, warn (or warning), error.
    #[arg(
        long = "level",
        value_name = "LEVEL[,LEVEL...]",
        value_delimiter = ',',
        value_parser = parse_level
    )]
    pub(crate) levels: Vec<Level>,
    /// Show only records with this tag; repeat it for any of several tags.
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
}

/// Which records to show by time, or from which id.
#[derive(Debug, Args)]
pub(crate) struct TimeArgs {
    /// Only records written at or after TIME: RFC 3339 (`2026-12-01T10:00:00Z`, with a
    /// fraction or an offset; no zone or a bare date: UTC) or relative (`now`, `today`,
    /// `yesterday`, `"10 min ago"`, `"2 hours ago"`, `-30s`), as journalctl takes them. A bare
    /// integer is read as a record id, as before (deprecated: use `--after-id`).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub(crate) since: Option<Since>,
    /// Only records written at or before TIME (as `--since`). A dump stops at the first record
    /// more than 1 s past it (writers in several processes can be slightly out of time order);
    /// a follower stops there too, or when the clock is more than 1 s past it.
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    pub(crate) until: Option<u64>,
    /// Start at record id ID (what `--since ID` did): the position `--show-cursor` prints, or
    /// one past the id of the last record seen.
    #[arg(long = "after-id", value_name = "ID")]
    pub(crate) after_id: Option<u64>,
}

/// What `--since` was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// A record id (the old meaning of `--since`).
    Id(u64),
    /// A time, in nanoseconds since the Unix epoch (UTC).
    Time(u64),
}

fn parse_since(text: &str) -> Result<Since, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Since::Id)
            .map_err(|_| format!("record id {text} is too large"));
    }
    crate::when::parse(text).map(Since::Time)
}

fn parse_until(text: &str) -> Result<u64, String> {
    crate::when::parse(text)
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Create a database file.
    Create {
        /// The database file.
        file: PathBuf,
        /// Key size in bytes.
        #[arg(long = "key-size")]
        key_size: u32,
        /// Value size in bytes.
        #[arg(long = "value-size")]
        value_size: u32,
        /// Initial capacity in records.
        #[arg(long)]
        capacity: Option<u64>,
    },
    /// Insert or replace a record.
    Put {
        /// The database file.
        file: PathBuf,
        /// The key (UTF-8, zero-padded to the key size).
        key: String,
        /// The value (UTF-8, zero-padded to the value size).
        value: String,
    },
    /// Print a record's value; exit 1 if the key is missing.
    Get {
        /// The database file.
        file: PathBuf,
        /// The key.
        key: String,
    },
    /// Delete a record; exit 1 if the key is missing.
    Del {
        /// The database file.
        file: PathBuf,
        /// The key.
        key: String,
    },
    /// Print every record.
    List {
        /// The database file.
        file: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Writer processes (at least 1).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) processes: u32,
    /// Writer threads in each process (at least 1).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) threads: u32,
    /// Messages each writer thread writes.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) messages: u64,
    /// The log file (default: a new file in a new private temporary directory, removed
    /// afterwards). One that already holds records is refused unless `--force`.
    #[arg(long)]
    pub(crate) file: Option<PathBuf>,
    /// Write the demo into a `--file` that already holds records (they are not checked).
    #[arg(long, requires = "file")]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DemoWriterArgs {
    pub(crate) file: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub(crate) process: u32,
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: u32,
    #[arg(long, default_value_t = 0)]
    pub(crate) messages: u64,
    /// Instead of the load: this many ping-pongs with the demo's follower.
    #[arg(long)]
    pub(crate) ping: Option<u64>,
    /// The demo's process id: the writer exits when its parent is no longer that process
    /// (the demo was killed), so that no writer outlives it.
    #[arg(long)]
    pub(crate) parent: Option<u32>,
}

fn parse_level(text: &str) -> Result<Level, String> {
    text.parse::<Level>().map_err(|_| {
        format!("unknown level {text:?}; expected trace, debug, info, warn (or warning), error")
    })
}
