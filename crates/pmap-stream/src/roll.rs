//! When a [`LineSink`](crate::LineSink) rolls its file ([`Roll`]), what the rolled files are
//! named, and the file-system steps of a roll (rename, list, prune): the one place that knows
//! how renames behave on each platform.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// When a [`LineSink`](crate::LineSink) moves its live file aside and starts a new one, set
/// with [`LineSinkOptions::roll`](crate::LineSinkOptions::roll). A size and a period can both
/// be on (call `roll` once with each): the file rolls at whichever comes first.
///
/// Periods are UTC and aligned to the Unix epoch: [`Roll::Daily`] rolls at the first line
/// written at or after midnight UTC, [`Roll::Hourly`] on the hour, [`Roll::Minutely`] on the
/// minute. A roll happens when a line is written (nothing is rolled while nothing is logged), or
/// when [`LineSink::roll`](crate::LineSink::roll) asks for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Roll {
    /// No rolling at all (clears the others); the default. Such a sink reaches its one file
    /// without a load per line, and [`LineSink::roll`](crate::LineSink::roll) on it is
    /// [`Error::NotRolling`].
    Never,
    /// Roll only when [`LineSink::roll`](crate::LineSink::roll) asks (it may be set beside a
    /// size or a period, which roll as well).
    OnRequest,
    /// Roll before a line that would take the live file past this many bytes (a line longer
    /// than that still goes whole into a file of its own).
    Size(u64),
    /// Roll at the first line of each UTC minute.
    Minutely,
    /// Roll at the first line of each UTC hour.
    Hourly,
    /// Roll at the first line of each UTC day.
    Daily,
}

impl Roll {
    /// The period in seconds, for the time-based variants.
    fn period(self) -> Option<u64> {
        match self {
            Roll::Minutely => Some(60),
            Roll::Hourly => Some(3600),
            Roll::Daily => Some(86_400),
            Roll::Never | Roll::OnRequest | Roll::Size(_) => None,
        }
    }
}

/// The wall clock a sink reads for time-based rolling; a test injects its own.
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A point inside a roll, for tests that crash a writer there
/// ([`LineSinkOptions::roll_hook`](crate::LineSinkOptions::roll_hook)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RollStep {
    /// New lines are held back and the lines in flight are copied; the file is not trimmed.
    Closed,
    /// The live file is trimmed to its content and closed, not yet renamed.
    Trimmed,
    /// The live file was renamed to its rolled name; no new live file exists yet.
    Renamed,
    /// The new live file is open (pre-sized, empty); no line is in it yet.
    Opened,
}

/// A callback run at each [`RollStep`].
pub(crate) type Hook = Arc<dyn Fn(RollStep) + Send + Sync>;

/// What a sink's options say about rolling.
#[derive(Clone, Default)]
pub(crate) struct Policy {
    pub(crate) size: Option<u64>,
    pub(crate) period: Option<u64>,
    /// [`Roll::OnRequest`]: rolls when asked, even with no size or period.
    pub(crate) on_request: bool,
    pub(crate) keep: Option<usize>,
    pub(crate) clock: Option<Clock>,
    pub(crate) hook: Option<Hook>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("size", &self.size)
            .field("period", &self.period)
            .field("on_request", &self.on_request)
            .field("keep", &self.keep)
            .field("clock", &self.clock.as_ref().map(|_| "injected"))
            .finish_non_exhaustive()
    }
}

impl Policy {
    pub(crate) fn set(&mut self, roll: Roll) {
        match roll {
            Roll::Never => (self.size, self.period, self.on_request) = (None, None, false),
            Roll::OnRequest => self.on_request = true,
            Roll::Size(bytes) => self.size = Some(bytes),
            other => self.period = other.period(),
        }
    }

    /// Whether the sink rolls at all (and so needs a directory and a file name, and writers
    /// that load the live file for each line).
    pub(crate) fn rolls(&self) -> bool {
        self.on_request || self.size.is_some() || self.period.is_some()
    }

    /// Now, in whole seconds since the epoch (0 before it).
    pub(crate) fn now_secs(&self) -> u64 {
        let now = self
            .clock
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock());
        secs(now)
    }

    /// The end of the period that holds `secs`: the time at which a file started then rolls.
    pub(crate) fn deadline_after(&self, secs: u64) -> Option<u64> {
        self.period
            .map(|period| (secs / period).saturating_add(1).saturating_mul(period))
    }

    pub(crate) fn step(&self, step: RollStep) {
        if let Some(hook) = &self.hook {
            hook(step);
        }
    }

    /// Checks the options against the sink's path.
    pub(crate) fn check(&self, path: &Path) -> Result<()> {
        if self.size == Some(0) {
            return Err(Error::ZeroRollSize {
                path: path.to_path_buf(),
            });
        }
        if self.rolls() && path.file_name().is_none() {
            return Err(Error::NoFileName {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    }
}

/// Whole seconds since the epoch of `time` (0 before it).
pub(crate) fn secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The digits of a rolled file's number, at least: `app.log.000001` sorts by age in a listing.
const SEQ_DIGITS: usize = 6;

/// The name of the rolled file number `seq` of the live file `path`: `<path>.<seq>`, the
/// number zero-padded to six digits.
pub(crate) fn rolled_name(path: &Path, seq: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{seq:0SEQ_DIGITS$}"));
    PathBuf::from(name)
}

/// The rolled files of `path` that exist (regular files named `<file name>.<digits>` beside
/// it), oldest (lowest number) first.
pub(crate) fn rolled_files(path: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let Some(name) = path.file_name() else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let io_error = |source| Error::Io {
        op: "list the rolled files of",
        path: path.to_path_buf(),
        source,
    };
    let mut prefix: OsString = name.to_owned();
    prefix.push(".");
    let prefix = prefix.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let file_name = entry.file_name();
        let Some(seq) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix.as_str()))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            found.push((seq, entry.path()));
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Removes the oldest rolled files of `path` beyond the newest `keep`. Best effort: a file
/// that cannot be removed now is left and tried again at the next roll.
pub(crate) fn prune(path: &Path, keep: usize) {
    let Ok(files) = rolled_files(path) else {
        return;
    };
    let surplus = files.len().saturating_sub(keep);
    for (_, old) in &files[..surplus] {
        let _ = std::fs::remove_file(old);
    }
}

/// Moves the closed live file `from` to its rolled name `to`, refusing to replace a file that
/// is already there.
///
/// The sink renames only a file it has trimmed, unmapped and unlocked, so no mapping or lock
/// of its own is on it on any platform: on Windows, where a file cannot be renamed while
/// another handle without `FILE_SHARE_DELETE` has it open (a reader in another program), the
/// rename fails and the sink goes on writing the same live file, trying again at the next
/// roll; on Unix a reader keeps reading the renamed file.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(Error::Io {
            op: "roll (the rolled name is taken)",
            path: to.to_path_buf(),
            source: std::io::ErrorKind::AlreadyExists.into(),
        });
    }
    std::fs::rename(from, to).map_err(|source| Error::Io {
        op: "roll (rename)",
        path: from.to_path_buf(),
        source,
    })
}
