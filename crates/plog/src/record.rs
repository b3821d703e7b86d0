//! A record read back, and its text and JSON lines.

use std::borrow::Cow;
use std::io::{self, Write};

use crate::Level;

/// One record read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's id: its starting position in the log's 64-bit block counter. Unique and
    /// increasing for the life of the file; ids are not dense (a record of `n` blocks uses
    /// `n` ids, and padding at the ring's end uses some too).
    pub id: u64,
    /// When it was written, in nanoseconds since the Unix epoch (UTC).
    pub time: u64,
    /// Its level.
    pub level: Level,
    /// The tag naming the module or writer.
    pub tag: String,
    /// The writer's process id.
    pub pid: u32,
    /// The payload bytes as written.
    pub payload: Vec<u8>,
}

impl Record {
    /// The payload as text (invalid UTF-8 replaced by U+FFFD).
    pub fn message(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.payload)
    }

    /// The time as RFC 3339 UTC with nanoseconds, e.g. `2026-01-02T03:04:05.123456789Z`.
    pub fn time_rfc3339(&self) -> String {
        rfc3339(self.time)
    }

    /// Writes one text line: `time LEVEL tag pid=P id=I message`, newline-terminated. Control
    /// characters in the tag and message are escaped (`\n`, `\r`, `\t`, `\u{..}`) so that a
    /// record is always exactly one line; an empty tag shows as `-`.
    ///
    /// # Errors
    /// The destination's I/O error.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let tag = if self.tag.is_empty() { "-" } else { &self.tag };
        write!(
            out,
            "{} {} ",
            rfc3339(self.time),
            self.level.as_padded_upper()
        )?;
        write_escaped_text(out, tag)?;
        write!(out, " pid={} id={} ", self.pid, self.id)?;
        write_escaped_text(out, &self.message())?;
        out.write_all(b"\n")
    }

    /// Writes one JSON object on one line, newline-terminated:
    /// `{"id":..,"time":"<RFC 3339>","time_ns":..,"level":"info","tag":"..","pid":..,"message":".."}`.
    ///
    /// # Errors
    /// The destination's I/O error.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        write!(
            out,
            "{{\"id\":{},\"time\":\"{}\",\"time_ns\":{},\"level\":\"{}\",\"tag\":",
            self.id,
            rfc3339(self.time),
            self.time,
            self.level.as_str()
        )?;
        write_json_string(out, &self.tag)?;
        write!(out, ",\"pid\":{},\"message\":", self.pid)?;
        write_json_string(out, &self.message())?;
        out.write_all(b"}\n")
    }

    /// The text line, as a `String` (with its newline).
    pub fn to_text_line(&self) -> String {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_text(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The JSON line, as a `String` (with its newline).
    pub fn to_json_line(&self) -> String {
        let mut out = Vec::new();
        let _ = self.write_json(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// How [`crate::Log::dump`] and the follow printer write records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// [`Record::write_text`] lines.
    #[default]
    Text,
    /// [`Record::write_json`] lines.
    Json,
}

impl Format {
    /// Writes `record` in this format.
    ///
    /// # Errors
    /// The destination's I/O error.
    pub fn write(self, record: &Record, out: &mut impl Write) -> io::Result<()> {
        match self {
            Format::Text => record.write_text(out),
            Format::Json => record.write_json(out),
        }
    }
}

fn write_escaped_text(out: &mut impl Write, text: &str) -> io::Result<()> {
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_control() {
            out.write_all(&text.as_bytes()[start..i])?;
            match c {
                '\n' => out.write_all(b"\\n")?,
                '\r' => out.write_all(b"\\r")?,
                '\t' => out.write_all(b"\\t")?,
                c => write!(out, "\\u{{{:x}}}", u32::from(c))?,
            }
            start = i + c.len_utf8();
        }
    }
    out.write_all(&text.as_bytes()[start..])
}

fn write_json_string(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let escape: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => None,
            _ => continue,
        };
        out.write_all(&text.as_bytes()[start..i])?;
        match escape {
            Some(e) => out.write_all(e)?,
            None => write!(out, "\\u{:04x}", u32::from(c))?,
        }
        start = i + c.len_utf8();
    }
    out.write_all(&text.as_bytes()[start..])?;
    out.write_all(b"\"")
}

/// Formats `nanos`, nanoseconds since the Unix epoch, as an RFC 3339 UTC time with nine
/// fractional digits: the form of [`Record::time_rfc3339`] and of the `time` field of JSON
/// lines, for any other time a log holds (such as [`crate::Stats::created`]).
///
/// Every `u64` has a result (the largest is in the year 2554); no time zone database is
/// consulted.
///
/// ```
/// assert_eq!(plog::rfc3339(0), "1970-01-01T00:00:00.000000000Z");
/// assert_eq!(plog::rfc3339(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456789Z");
/// ```
pub fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let nanos = nanos % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (the
/// well-known era algorithm, on unsigned numbers since times before 1970 do not occur).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tag: &str, payload: &[u8]) -> Record {
        Record {
            id: 42,
            time: 1_700_000_000_123_456_789,
            level: Level::Warn,
            tag: tag.into(),
            pid: 7,
            payload: payload.into(),
        }
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339(4_107_542_399_000_000_000),
            "2100-02-28T23:59:59.000000000Z"
        );
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn text_line_is_one_line() {
        let line = record("db", b"a\nb\tc\x01").to_text_line();
        assert_eq!(
            line,
            "2023-11-14T22:13:20.123456789Z WARN  db pid=7 id=42 a\\nb\\tc\\u{1}\n"
        );
        assert!(record("", b"x").to_text_line().contains(" - pid=7"));
    }

    #[test]
    fn json_line_escapes() {
        let line = record("t\"q", b"say \"hi\"\\\n\x1f\xff").to_json_line();
        assert_eq!(
            line,
            "{\"id\":42,\"time\":\"2023-11-14T22:13:20.123456789Z\",\"time_ns\":1700000000123456789,\
             \"level\":\"warn\",\"tag\":\"t\\\"q\",\"pid\":7,\"message\":\"say \\\"hi\\\"\\\\\\n\\u001f\u{fffd}\"}\n"
        );
    }
}
