//! Levels (trace to error) and the filter readers apply by level and tag.

use std::fmt;
use std::str::FromStr;

/// How important a record is, from [`Level::Trace`] (least) to [`Level::Error`] (most).
///
/// Parsing accepts the names in any case, and `warning` for [`Level::Warn`]:
/// ```
/// assert_eq!("WARNING".parse::<plog::Level>(), Ok(plog::Level::Warn));
/// assert_eq!(plog::Level::Info.to_string(), "info");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Fine detail, for tracing a path through the code.
    Trace = 0,
    /// Detail for debugging.
    Debug = 1,
    /// Normal operation worth recording.
    Info = 2,
    /// Something unexpected that was handled.
    Warn = 3,
    /// Something failed.
    Error = 4,
}

impl Level {
    /// Every level, least important first.
    pub const ALL: [Level; 5] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ];

    /// The lowercase name: `trace`, `debug`, `info`, `warn`, `error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The uppercase name padded to five characters, as text lines show it.
    #[must_use]
    pub fn as_padded_upper(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
        }
    }

    /// The level stored as `code` in a record, if it is one.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Level> {
        Level::ALL.get(usize::from(code)).copied()
    }

    /// The code stored in a record (0 for trace to 4 for error).
    #[must_use]
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The text given is not a level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?} (expected trace, debug, info, warn or error)")]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Level, ParseLevelError> {
        let found = match s.to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            _ => return Err(ParseLevelError(s.to_owned())),
        };
        Ok(found)
    }
}

/// Which records a reader or follower returns: a set of levels and, optionally, one exact tag.
///
/// ```
/// use plog::{Filter, Level};
/// let filter = Filter::all().min_level(Level::Warn).tag("db");
/// assert!(filter.accepts(Level::Error, "db"));
/// assert!(!filter.accepts(Level::Info, "db"));
/// assert!(!filter.accepts(Level::Error, "net"));
/// ```
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    levels: u8,
    tag: Option<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter::all()
    }
}

impl Filter {
    /// Accepts every record.
    pub fn all() -> Filter {
        Filter {
            levels: 0b1_1111,
            tag: None,
        }
    }

    /// Accepts exactly the given levels (an empty list accepts every level, as a command line
    /// without `--level` does).
    pub fn levels(mut self, levels: impl IntoIterator<Item = Level>) -> Filter {
        let mask = levels
            .into_iter()
            .fold(0u8, |mask, level| mask | 1 << level.code());
        self.levels = if mask == 0 { 0b1_1111 } else { mask };
        self
    }

    /// Accepts `level` and every more important level.
    pub fn min_level(mut self, level: Level) -> Filter {
        self.levels = 0b1_1111 & !((1u8 << level.code()) - 1);
        self
    }

    /// Accepts only records whose tag is exactly `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Filter {
        self.tag = Some(tag.into());
        self
    }

    /// Whether a record of `level` and `tag` passes.
    #[must_use]
    pub fn accepts(&self, level: Level, tag: &str) -> bool {
        self.levels & (1 << level.code()) != 0 && self.tag.as_deref().is_none_or(|t| t == tag)
    }

    /// Whether a record of `level` and tag bytes `tag` passes (tags are compared as bytes).
    #[must_use]
    pub fn accepts_bytes(&self, level: Level, tag: &[u8]) -> bool {
        self.levels & (1 << level.code()) != 0
            && self.tag.as_deref().is_none_or(|t| t.as_bytes() == tag)
    }

    /// Whether `record` passes.
    #[must_use]
    pub fn matches(&self, record: &crate::Record) -> bool {
        self.accepts(record.level, &record.tag)
    }

    /// Whether this filter accepts everything (readers then skip the check).
    #[must_use]
    pub fn is_all(&self) -> bool {
        self.levels == 0b1_1111 && self.tag.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_every_name_in_any_case() {
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
            assert_eq!(level.as_str().to_uppercase().parse::<Level>(), Ok(level));
            assert_eq!(Level::from_code(level.code()), Some(level));
        }
        assert_eq!("Warning".parse::<Level>(), Ok(Level::Warn));
        assert!("fatal".parse::<Level>().is_err());
        assert!("".parse::<Level>().is_err());
        assert_eq!(Level::from_code(5), None);
        assert_eq!(format!("{:>6}", Level::Warn), "  warn");
    }

    #[test]
    fn filters_combine_levels_and_tag() {
        let f = Filter::all().levels([Level::Debug, Level::Error]);
        assert!(f.accepts(Level::Debug, "x") && f.accepts(Level::Error, ""));
        assert!(!f.accepts(Level::Info, "x"));
        assert!(Filter::all().levels([]).is_all());
        let f = Filter::all().min_level(Level::Trace);
        assert!(f.is_all());
        let f = Filter::all().min_level(Level::Error).tag("a");
        assert!(f.accepts(Level::Error, "a") && !f.accepts(Level::Error, "ab"));
        assert!(!f.accepts(Level::Warn, "a"));
    }
}
