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
    Db(DbArgs),
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
        /// Writer lanes: 1, 2, 4, 8 or 16 rings of their own counter, so that writers on
        /// different cores do not contend (format version 3; readers merge them by time).
        #[arg(long)]
        lanes: Option<u32>,
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
    /// Ship the records to a log pipeline, resuming at a named cursor: as JSON lines on
    /// standard output (for an agent's stdin or exec source), or with `--to relp://HOST:PORT`
    /// as RFC 5424 syslog messages to a RELP server (rsyslog's imrelp). The cursor moves past a
    /// record only once it was written out (JSON) or acknowledged by the server (RELP): killed
    /// at any moment, a new run resends from there, so records may come twice, never not at
    /// all while the ring holds them. Records the writers overwrote before they were shipped
    /// are reported as a loss: a `{"lost":N,"from":A,"to":B}` line or a syslog message, and a
    /// line on stderr. Opens the log read-write (the cursor is saved in its header).
    Export {
        /// The log file.
        file: PathBuf,
        /// The persistent cursor to resume at and to save the position in. A new cursor
        /// starts at the oldest record the ring holds.
        #[arg(long, value_name = "NAME")]
        cursor: String,
        /// Go on shipping records as they are written, until killed; a RELP connection that
        /// breaks is opened again (with growing pauses, up to 5 s) and the unacknowledged
        /// records resent. Without it, stop at the newest record.
        #[arg(long)]
        follow: bool,
        /// Send to this RELP server instead of standard output.
        #[arg(long, value_name = "relp://HOST:PORT", value_parser = parse_relp_target)]
        to: Option<RelpTarget>,
        /// RELP: the most messages sent and not yet acknowledged (also the most a restart
        /// may send twice).
        #[arg(
            long,
            value_name = "N",
            default_value_t = 1024,
            requires = "to",
            value_parser = clap::value_parser!(u32).range(1..=65536)
        )]
        window: u32,
        /// RELP: the HOSTNAME of the syslog messages (default: this host's name).
        #[arg(long, value_name = "NAME", requires = "to")]
        hostname: Option<String>,
        /// RELP: the syslog facility of the messages, a name (`user`, `daemon`, `auth`,
        /// `local0` to `local7`, ...) or a number 0 to 23.
        #[arg(long, value_name = "FACILITY", default_value = "user", requires = "to",
              value_parser = parse_facility)]
        facility: u8,
        /// Exit with status 3 if records were lost to wrap-around before they were shipped;
        /// they are reported either way.
        #[arg(long)]
        strict: bool,
    },
    /// Print the log's geometry and counters, the ids it holds (oldest to newest) and how many
    /// records are readable, the write rate over the span the ring holds (the last lap, once
    /// it is full), its health (blocks that fail validation: damaged, or left by a writer that
    /// died), and each named cursor with how far it is behind the writers (in ids; "lapped"
    /// when the writers overwrote ids it had not read).
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

/// Where `--to` sends: a RELP server's host (a name, an IPv4 address, or an IPv6 address in
/// brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelpTarget {
    /// The host, without brackets.
    pub(crate) host: String,
    /// The TCP port.
    pub(crate) port: u16,
}

impl std::fmt::Display for RelpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "relp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "relp://{}:{}", self.host, self.port)
        }
    }
}

fn parse_relp_target(text: &str) -> Result<RelpTarget, String> {
    let usage = || format!("{text:?} is not relp://HOST:PORT");
    let rest = text.strip_prefix("relp://").ok_or_else(usage)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(usage)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(usage)?,
        None if host.contains(':') => {
            return Err(format!("{}: an IPv6 address goes in brackets", usage()));
        }
        None => host,
    };
    if host.is_empty() || host.contains('/') {
        return Err(usage());
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| format!("{}: the port must be 1 to 65535", usage()))?;
    Ok(RelpTarget {
        host: host.to_string(),
        port,
    })
}

/// The syslog facilities by name (RFC 5424, 6.2.1), numbered by their place.
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

fn parse_facility(text: &str) -> Result<u8, String> {
    let number = match text.parse::<u8>() {
        Ok(number) => Some(number),
        Err(_) => FACILITIES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
            .and_then(|at| u8::try_from(at).ok()),
    };
    number.filter(|&n| n < 24).ok_or_else(|| {
        format!(
            "unknown facility {text:?}; expected 0 to 23 or one of {}",
            FACILITIES.join(", ")
        )
    })
}

/// `pounds db [--storage S] COMMAND`.
#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    /// How the command reaches the file: `mapped` and `write` share a file with any other
    /// handle (reading commands read through a read-only mapping with either); `unmapped` maps
    /// nothing and must be alone with the file while the command runs.
    #[arg(long, global = true, value_enum, default_value_t = StorageArg::Mapped)]
    pub(crate) storage: StorageArg,
    #[command(subcommand)]
    pub(crate) command: DbCommand,
}

/// `--storage`: pblockdb's `Storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StorageArg {
    /// Through a writable shared mapping (the fastest).
    Mapped,
    /// By positioned writes (`pwrite`) beside a read-only mapping; only the coordination words
    /// go through a writable view.
    Write,
    /// Without any mapping: a copy of the file in memory, every write by a positioned write
    /// (for file systems where shared mappings do not work); alone with the file.
    Unmapped,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Create a database file.
    Create {
        /// The database file.
        file: PathBuf,
        /// The largest key, in bytes.
        #[arg(long = "key-size")]
        key_size: u32,
        /// The largest value, in bytes.
        #[arg(long = "value-size")]
        value_size: u32,
        /// Initial capacity in records.
        #[arg(long)]
        capacity: Option<u64>,
        /// Versions kept for older snapshots (history ring entries).
        #[arg(long)]
        history: Option<u64>,
    },
    /// Insert or replace a record, in a transaction of its own.
    Put {
        /// The database file.
        file: PathBuf,
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        encoding: EncodingArgs,
    },
    /// Print the values of one or more keys, all read from one snapshot. With one key, its
    /// value; with several, `KEY<tab>VALUE` lines. Exit 1 if a key is missing (reported on
    /// stderr).
    Get {
        /// The database file.
        file: PathBuf,
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        encoding: EncodingArgs,
    },
    /// Delete a record; exit 1 if the key is missing.
    Del {
        /// The database file.
        file: PathBuf,
        /// The key.
        key: String,
        #[command(flatten)]
        encoding: EncodingArgs,
    },
    /// Print every record of one snapshot. Bytes that are not printable text are escaped
    /// (`\xNN`), so nothing raw reaches the terminal.
    List {
        /// The database file.
        file: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        encoding: EncodingArgs,
    },
    /// Apply `put KEY VALUE` and `del KEY` lines from standard input as one transaction: all
    /// of them or, if a line is bad or the commit fails, none. The value is the rest of the
    /// line after the key and one space.
    Batch {
        /// The database file.
        file: PathBuf,
        #[command(flatten)]
        encoding: EncodingArgs,
    },
    /// Copy one snapshot of a live database to a new file (consistent while writers run; a
    /// plain `cp` of a live database is not a backup).
    Backup {
        /// The database file.
        file: PathBuf,
        /// The new file.
        dest: PathBuf,
    },
    /// Print the header's figures: capacity, records, commit clock, history, rebuilds.
    Stat {
        /// The database file.
        file: PathBuf,
    },
    /// Check every slot, hint and count; exit 1 and name the first problem if one is found.
    Verify {
        /// The database file.
        file: PathBuf,
    },
}

/// How keys and values are given and printed.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct EncodingArgs {
    /// Keys and values are hexadecimal (for binary data), in arguments, input and output.
    #[arg(long)]
    pub(crate) hex: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relp_targets_take_names_addresses_and_bracketed_ipv6() {
        let target = |text: &str| parse_relp_target(text);
        assert_eq!(
            target("relp://logs.example:2514"),
            Ok(RelpTarget {
                host: "logs.example".into(),
                port: 2514
            })
        );
        assert_eq!(
            target("relp://[::1]:20514").map(|t| t.host),
            Ok("::1".to_string())
        );
        assert_eq!(
            target("relp://[::1]:20514").map(|t| t.to_string()),
            Ok("relp://[::1]:20514".to_string())
        );
        for bad in [
            "tcp://h:1",
            "relp://h",
            "relp://h:0",
            "relp://h:70000",
            "relp://::1:5",
            "relp://:5",
            "relp://h/x:5",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn facilities_by_name_or_number() {
        assert_eq!(parse_facility("user"), Ok(1));
        assert_eq!(parse_facility("LOCAL7"), Ok(23));
        assert_eq!(parse_facility("13"), Ok(13));
        assert!(parse_facility("24").is_err());
        assert!(parse_facility("nope").is_err());
    }
}
