//! Records as RFC 5424 syslog messages: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
//! [SD] MSG`, with the level as the severity, the tag as the APP-NAME, the writer's pid as the
//! PROCID, and the record's id as structured data (`[pounds@32473 id="N"]`) for deduplication
//! downstream. Records carry no structured fields of their own (the `tracing` layer writes an
//! event's fields into the message as ` name=value`), so that element is the only one.

use std::io::Write as _;

use pounds::log::{Level, RecordRef};

use crate::relp::MAX_DATA;
use crate::show::Gap;

/// The SD-ID of the element carrying the record's id. 32473 is the private enterprise number
/// RFC 5612 sets aside for documentation and examples: the project has no number of its own.
pub(crate) const SD_ID: &str = "pounds@32473";

/// The syslog severity of a level (RFC 5424, 6.2.1): error 3, warning 4, informational 6,
/// debug 7 (trace too, syslog having nothing finer).
pub(crate) fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        _ => 7,
    }
}

/// Formats records (and reports of records lost) as syslog messages.
pub(crate) struct Syslog {
    facility: u8,
    hostname: String,
    /// The second last formatted, and its `YYYY-MM-DDTHH:MM:SS`: most records share it.
    second: Option<(u64, String)>,
}

impl Syslog {
    /// Messages of `facility` (0 to 23) from `hostname` (default: this host's name).
    pub(crate) fn new(facility: u8, hostname: Option<String>) -> Syslog {
        let hostname = hostname.unwrap_or_else(host_name);
        Syslog {
            facility,
            hostname: header_field(&hostname, 255),
            second: None,
        }
    }

    /// Appends `record` as one message of at most [`MAX_DATA`] bytes (a longer message is cut
    /// at a character boundary).
    pub(crate) fn record(&mut self, record: &RecordRef<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        self.header(out, severity(record.level), record.time);
        let tag = record.tag_str();
        out.extend_from_slice(header_field(&tag, 48).as_bytes());
        // Formatting into a Vec cannot fail.
        let _ = write!(out, " {} - [{SD_ID} id=\"{}\"] ", record.pid, record.id);
        let room = MAX_DATA.saturating_sub(out.len() - start);
        out.extend_from_slice(cut(&record.message(), room).as_bytes());
    }

    /// Appends the report of `gap`, a warning from this process (APP-NAME `pounds`) written
    /// at `now` (ns since the epoch), its numbers as structured data too.
    pub(crate) fn lost(&mut self, gap: Gap, now: u64, out: &mut Vec<u8>) {
        self.header(out, severity(Level::Warn), now);
        let Gap { lost, from, to } = gap;
        let _ = write!(
            out,
            "pounds {} - [{SD_ID} lost=\"{lost}\" from=\"{from}\" to=\"{to}\"] {gap} before \
             it was shipped",
            std::process::id()
        );
    }

    /// `<PRI>1 TIMESTAMP HOSTNAME ` (the time to the microsecond, all RFC 5424 allows).
    fn header(&mut self, out: &mut Vec<u8>, severity: u8, nanos: u64) {
        let pri = u32::from(self.facility) * 8 + u32::from(severity);
        let second = nanos / 1_000_000_000;
        let text = match &self.second {
            Some((cached, text)) if *cached == second => text,
            _ => {
                // `YYYY-MM-DDTHH:MM:SS` of the library's RFC 3339 form.
                let full = pounds::log::rfc3339(nanos);
                let text = full.get(..19).unwrap_or(&full).to_string();
                &self.second.insert((second, text)).1
            }
        };
        let micros = (nanos % 1_000_000_000) / 1000;
        let _ = write!(out, "<{pri}>1 {text}.{micros:06}Z {} ", self.hostname);
    }
}

/// This host's name (`-`, the nil value, when it has none).
#[cfg(unix)]
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// This host's name (`-`, the nil value, when it has none).
#[cfg(not(unix))]
fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

/// `text` as a header field: printable US-ASCII without spaces (others become `_`), at most
/// `max` bytes, and `-` (the nil value) when empty.
fn header_field(text: &str, max: usize) -> String {
    let field: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// The longest start of `text` of at most `max` bytes that ends at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(level: Level, tag: &'a [u8], payload: &'a [u8]) -> RecordRef<'a> {
        RecordRef {
            id: 42,
            // 2023-11-14T22:13:20.123456789Z
            time: 1_700_000_000_123_456_789,
            level,
            pid: 777,
            kind: pounds::log::RecordKind::Plain,
            tag,
            payload,
        }
    }

    fn formatted(syslog: &mut Syslog, record: &RecordRef<'_>) -> String {
        let mut out = Vec::new();
        syslog.record(record, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_record_is_an_rfc_5424_message_with_its_id_as_structured_data() {
        let mut syslog = Syslog::new(1, Some("node-1".to_string()));
        assert_eq!(
            formatted(
                &mut syslog,
                &record(Level::Warn, b"db", b"disk almost full")
            ),
            "<12>1 2023-11-14T22:13:20.123456Z node-1 db 777 - [pounds@32473 id=\"42\"] disk \
             almost full"
        );
        // The cached second is not reused for another second.
        let mut later = record(Level::Error, b"", b"x");
        later.time += 1_000_000_000;
        let text = formatted(&mut syslog, &later);
        assert!(
            text.starts_with("<11>1 2023-11-14T22:13:21.123456Z node-1 - 777 "),
            "{text}"
        );
    }

    #[test]
    fn levels_map_to_severities_and_facilities_scale_the_priority() {
        let got: Vec<u8> = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ]
        .into_iter()
        .map(severity)
        .collect();
        assert_eq!(got, [7, 7, 6, 4, 3]);
        let mut local7 = Syslog::new(23, Some("h".to_string()));
        assert!(formatted(&mut local7, &record(Level::Info, b"t", b"m")).starts_with("<190>1 "));
    }

    #[test]
    fn header_fields_are_printable_ascii_and_bounded() {
        let mut syslog = Syslog::new(1, Some("my host".to_string()));
        let long_tag = "é".repeat(60);
        let text = formatted(&mut syslog, &record(Level::Info, long_tag.as_bytes(), b"m"));
        let fields: Vec<&str> = text.split(' ').collect();
        assert_eq!(fields[2], "my_host");
        assert_eq!(fields[3], "_".repeat(48));
    }

    #[test]
    fn long_messages_are_cut_to_a_frame_at_a_character_boundary() {
        let mut syslog = Syslog::new(1, Some("h".to_string()));
        let payload = "é".repeat(MAX_DATA);
        let text = formatted(&mut syslog, &record(Level::Info, b"t", payload.as_bytes()));
        assert!(
            text.len() <= MAX_DATA && text.len() > MAX_DATA - 2,
            "{}",
            text.len()
        );
    }

    #[test]
    fn a_loss_is_a_warning_with_its_numbers_as_structured_data() {
        let mut syslog = Syslog::new(1, Some("h".to_string()));
        let mut out = Vec::new();
        let gap = Gap {
            lost: 5,
            from: 10,
            to: 14,
        };
        syslog.lost(gap, 0, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("<12>1 1970-01-01T00:00:00.000000Z h pounds "),
            "{text}"
        );
        assert!(
            text.contains("- [pounds@32473 lost=\"5\" from=\"10\" to=\"14\"] lost 5 records"),
            "{text}"
        );
    }
}
