//! A record read back, and its text and JSON lines.

use std::borrow::Cow;
use std::io::{self, Write};

use crate::Level;
use crate::structured::{Fields, Spans, Structured};

/// What a record's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// The payload is the message (kind 0).
    #[default]
    Plain,
    /// The payload is a [`Structured`] encoding: message, fields and spans (kind 1).
    Structured,
}

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
    /// What the payload holds.
    pub kind: RecordKind,
    /// The payload bytes as written.
    pub payload: Vec<u8>,
}

impl Record {
    /// The message: the payload as text (invalid UTF-8 replaced by U+FFFD), or a structured
    /// record's message.
    #[must_use]
    pub fn message(&self) -> Cow<'_, str> {
        match self.structured() {
            Some(structured) => Cow::Borrowed(structured.message()),
            None => String::from_utf8_lossy(&self.payload),
        }
    }

    /// A structured record's payload, decoded (see [`RecordRef::structured`]).
    #[must_use]
    pub fn structured(&self) -> Option<Structured<'_>> {
        self.as_record_ref().structured()
    }

    /// A structured record's own fields; none for a plain record.
    #[must_use]
    pub fn fields(&self) -> Fields<'_> {
        self.as_record_ref().fields()
    }

    /// The spans a structured record was written in, from the outermost; none for a plain
    /// record.
    #[must_use]
    pub fn spans(&self) -> Spans<'_> {
        self.as_record_ref().spans()
    }

    /// The time as RFC 3339 UTC with nanoseconds, e.g. `2026-01-02T03:04:05.123456789Z`.
    #[must_use]
    pub fn time_rfc3339(&self) -> String {
        rfc3339(self.time)
    }

    /// This record, borrowed.
    #[must_use]
    pub fn as_record_ref(&self) -> RecordRef<'_> {
        RecordRef {
            id: self.id,
            time: self.time,
            level: self.level,
            pid: self.pid,
            kind: self.kind,
            tag: self.tag.as_bytes(),
            payload: &self.payload,
        }
    }

    /// Writes one text line (see [`RecordRef::write_text`]).
    ///
    /// # Errors
    /// The destination's I/O error.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        self.as_record_ref().write_text(out)
    }

    /// Writes one JSON line (see [`RecordRef::write_json`]).
    ///
    /// # Errors
    /// The destination's I/O error.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        self.as_record_ref().write_json(out)
    }

    /// The text line, as a `String` (with its newline).
    #[must_use]
    pub fn to_text_line(&self) -> String {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_text(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The JSON line, as a `String` (with its newline).
    #[must_use]
    pub fn to_json_line(&self) -> String {
        let mut out = Vec::new();
        let _ = self.write_json(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A record borrowed from a reader's buffer ([`crate::Reader::next_ref`],
/// [`crate::Follower::next_ref_timeout`]): the same fields as [`Record`] without a copy.
/// `tag` and `payload` are the bytes as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The record's id (see [`Record::id`]).
    pub id: u64,
    /// When it was written, in nanoseconds since the Unix epoch (UTC).
    pub time: u64,
    /// Its level.
    pub level: Level,
    /// The writer's process id.
    pub pid: u32,
    /// What the payload holds.
    pub kind: RecordKind,
    /// The tag's bytes (UTF-8 as written by [`crate::Log::write`]).
    pub tag: &'a [u8],
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// A structured record's payload, decoded; `None` for a plain record, and for a
    /// structured one whose payload does not decode (then it reads as a plain record).
    #[must_use]
    pub fn structured(&self) -> Option<Structured<'a>> {
        match self.kind {
            RecordKind::Structured => Structured::parse(self.payload),
            RecordKind::Plain => None,
        }
    }

    /// A structured record's own fields; none for a plain record.
    pub fn fields(&self) -> Fields<'a> {
        self.structured().map_or_else(Fields::none, |s| s.fields())
    }

    /// The spans a structured record was written in, from the outermost; none for a plain
    /// record.
    pub fn spans(&self) -> Spans<'a> {
        self.structured().map_or_else(Spans::none, |s| s.spans())
    }

    /// An owned copy.
    #[must_use]
    pub fn to_owned(&self) -> Record {
        Record {
            id: self.id,
            time: self.time,
            level: self.level,
            tag: String::from_utf8_lossy(self.tag).into_owned(),
            pid: self.pid,
            kind: self.kind,
            payload: self.payload.to_vec(),
        }
    }

    /// The message: the payload as text (invalid UTF-8 replaced by U+FFFD; borrowed when
    /// valid), or a structured record's message.
    #[must_use]
    pub fn message(&self) -> Cow<'a, str> {
        match self.structured() {
            Some(structured) => Cow::Borrowed(structured.message()),
            None => text_of(self.payload),
        }
    }

    /// The tag as text (invalid UTF-8 replaced by U+FFFD; borrowed when valid).
    #[must_use]
    pub fn tag_str(&self) -> Cow<'a, str> {
        text_of(self.tag)
    }

    /// Writes one text line: `time LEVEL tag pid=P id=I message`, newline-terminated; a
    /// structured record's message is `outer{k=v}:inner: message key=value ...` (its spans,
    /// message and fields, the way `tracing_subscriber::fmt` lays them out). Control
    /// characters in the tag and message are escaped (`\n`, `\r`, `\t`, `\u{..}`) so that a
    /// record is always exactly one line; an empty tag shows as `-`. Allocates nothing unless
    /// the tag or payload is not valid UTF-8.
    ///
    /// # Errors
    /// The destination's I/O error.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        write_rfc3339(out, self.time)?;
        out.write_all(b" ")?;
        out.write_all(self.level.as_padded_upper().as_bytes())?;
        out.write_all(b" ")?;
        let tag = self.tag_str();
        write_escaped_text(out, if tag.is_empty() { "-" } else { &tag })?;
        out.write_all(b" pid=")?;
        write_decimal(out, u64::from(self.pid))?;
        out.write_all(b" id=")?;
        write_decimal(out, self.id)?;
        out.write_all(b" ")?;
        match self.structured() {
            Some(structured) => structured.write_text(out)?,
            None => write_escaped_text(out, &self.message())?,
        }
        out.write_all(b"\n")
    }

    /// Writes one JSON object on one line, newline-terminated:
    /// `{"id":..,"time":"<RFC 3339>","time_ns":..,"level":"info","tag":"..","pid":..,"message":".."}`;
    /// a structured record adds `"fields":{"key":value,..}` (strings, numbers, booleans) and
    /// `"spans":[{"name":"..","key":value,..},..]` from the outermost, as tracing-subscriber's
    /// JSON formatter does. Allocates nothing unless the tag or payload is not valid UTF-8.
    ///
    /// # Errors
    /// The destination's I/O error.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        self.write_json_with(out, &mut LineBuf::new())
    }

    /// [`Self::write_json`], assembling a plain record's line in `line` (reused by a caller
    /// that writes many).
    #[inline]
    pub(crate) fn write_json_with(
        &self,
        out: &mut impl Write,
        line: &mut LineBuf,
    ) -> io::Result<()> {
        if self.plain_json_line(line) {
            out.write_all(line.bytes())
        } else {
            self.write_json_general(out)
        }
    }

    /// [`Self::write_json`] for any record, field by field.
    fn write_json_general(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(b"{\"id\":")?;
        write_decimal(out, self.id)?;
        out.write_all(b",\"time\":\"")?;
        write_rfc3339(out, self.time)?;
        out.write_all(b"\",\"time_ns\":")?;
        write_decimal(out, self.time)?;
        out.write_all(b",\"level\":\"")?;
        out.write_all(self.level.as_str().as_bytes())?;
        out.write_all(b"\",\"tag\":")?;
        write_json_string(out, &self.tag_str())?;
        out.write_all(b",\"pid\":")?;
        write_decimal(out, u64::from(self.pid))?;
        out.write_all(b",\"message\":")?;
        let structured = self.structured();
        match structured {
            Some(structured) => {
                write_json_string(out, structured.message())?;
                structured.write_json(out)?;
            }
            None => write_json_string(out, &self.message())?,
        }
        out.write_all(b"}\n")
    }
}

impl RecordRef<'_> {
    /// Assembles in `line` the JSON line of a plain record whose tag and payload are printable
    /// ASCII without `"` or `\\` (so need no escape, and are valid UTF-8) and short enough, for
    /// one write: the same bytes as the general path of [`Self::write_json`], which takes every
    /// other record (false).
    #[inline]
    fn plain_json_line(&self, line: &mut LineBuf) -> bool {
        if self.kind != RecordKind::Plain
            || self.tag.len() + self.payload.len() > LINE_BUF - LINE_FIXED
            || has_special_byte(self.tag, true)
            || has_special_byte(self.payload, true)
        {
            return false;
        }
        line.len = 0;
        line.overflowed = false;
        line.push(b"{\"id\":");
        line.decimal(self.id);
        line.push(b",\"time\":\"");
        let fraction_at = line.len + 20;
        line.time(self.time);
        line.push(b"\",\"time_ns\":");
        line.time_ns(self.time, fraction_at);
        line.push(b",\"level\":\"");
        line.push(self.level.as_str().as_bytes());
        line.push(b"\",\"tag\":\"");
        line.push(self.tag);
        line.push(b"\",\"pid\":");
        line.decimal(u64::from(self.pid));
        line.push(b",\"message\":\"");
        line.push(self.payload);
        line.push(b"\"}\n");
        !line.overflowed
    }
}

/// The buffer of [`RecordRef::plain_json_line`].
const LINE_BUF: usize = 512;
/// Its bytes other than the tag and the payload, at most: the field names and punctuation
/// (about 80), three numbers (up to 20 digits each) and the time (30).
const LINE_FIXED: usize = 192;

/// A line assembled in a fixed buffer; a push past its end marks it overflowed (and the line
/// is then written by the general path).
#[derive(Debug)]
pub(crate) struct LineBuf {
    buf: [u8; LINE_BUF],
    len: usize,
    overflowed: bool,
    /// The second [`Self::time`] formatted last, and its date and time of day (a dump's records
    /// come many a second): no thread-local look-up, no 30-byte copy out of one.
    second: Option<u64>,
    prefix: [u8; 30],
    /// That second in decimal (its first `.1` bytes), for [`Self::time_ns`].
    second_digits: ([u8; 20], usize),
}

impl LineBuf {
    #[inline]
    pub(crate) fn new() -> LineBuf {
        LineBuf {
            buf: [0; LINE_BUF],
            len: 0,
            overflowed: false,
            second: None,
            prefix: [0; 30],
            second_digits: ([0; 20], 0),
        }
    }

    /// Pushes the RFC 3339 form of `nanos` (the bytes of [`rfc3339_bytes`]).
    #[inline]
    fn time(&mut self, nanos: u64) {
        let secs = nanos / 1_000_000_000;
        if self.second != Some(secs) {
            self.prefix = second_prefix(secs);
            self.second = Some(secs);
            let mut digits = [0u8; 20];
            let at = decimal_digits(secs, &mut digits);
            let len = digits.len() - at;
            digits.copy_within(at.., 0);
            self.second_digits = (digits, len);
        }
        let Some(room) = self.buf.get_mut(self.len..self.len + 30) else {
            self.overflowed = true;
            return;
        };
        room.copy_from_slice(&self.prefix);
        put_fraction(room, nanos % 1_000_000_000);
        self.len += 30;
    }

    /// Pushes `nanos` in decimal, right after [`Self::time`] pushed its RFC 3339 form with the
    /// nine fraction digits at `fraction_at`: the digits are the second's (kept with its date,
    /// a dump's records come many a second) and then those nine, copied; the 19-digit number's
    /// divisions are not done again. Any other case is [`Self::decimal`].
    #[inline]
    fn time_ns(&mut self, nanos: u64, fraction_at: usize) {
        let secs = nanos / 1_000_000_000;
        let (digits, len) = self.second_digits;
        let fraction = self
            .buf
            .get(fraction_at..fraction_at + 9)
            .and_then(|bytes| <[u8; 9]>::try_from(bytes).ok());
        match fraction {
            Some(fraction) if secs > 0 && self.second == Some(secs) && !self.overflowed => {
                self.push(&digits[..len.min(20)]);
                self.push(&fraction);
            }
            _ => self.decimal(nanos),
        }
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflowed = true,
        }
    }

    /// Pushes `n` in decimal, its digits written straight into the line (its length known
    /// first): no staging array and no copy of a variable length, which went through `memcpy`.
    /// Numbers past eight digits (a time in nanoseconds has 19) are split into eight-digit
    /// parts written each at its fixed width, so their divisions do not form one chain.
    #[inline]
    fn decimal(&mut self, n: u64) {
        let count = n.checked_ilog10().map_or(1, |log| log as usize + 1);
        let Some(room) = self.buf.get_mut(self.len..self.len + count) else {
            self.overflowed = true;
            return;
        };
        const EIGHT: u64 = 100_000_000;
        if n < EIGHT {
            put_short(room, n as u32);
        } else if n < EIGHT * EIGHT {
            let (head, low) = room.split_at_mut(count - 8);
            put_short(head, (n / EIGHT) as u32);
            put_eight(low, (n % EIGHT) as u32);
        } else {
            let (head, rest) = room.split_at_mut(count - 16);
            let (mid, low) = rest.split_at_mut(8);
            put_short(head, (n / (EIGHT * EIGHT)) as u32);
            put_eight(mid, ((n / EIGHT) % EIGHT) as u32);
            put_eight(low, (n % EIGHT) as u32);
        }
        self.len += count;
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
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
        self.write_ref(&record.as_record_ref(), out)
    }

    /// Writes a borrowed record in this format.
    ///
    /// # Errors
    /// The destination's I/O error.
    pub fn write_ref(self, record: &RecordRef<'_>, out: &mut impl Write) -> io::Result<()> {
        self.write_ref_with(record, out, &mut LineBuf::new())
    }

    /// [`Self::write_ref`] with a line buffer the caller reuses.
    #[inline]
    pub(crate) fn write_ref_with(
        self,
        record: &RecordRef<'_>,
        out: &mut impl Write,
        line: &mut LineBuf,
    ) -> io::Result<()> {
        match self {
            Format::Text => record.write_text(out),
            Format::Json => record.write_json_with(out, line),
        }
    }
}

/// `bytes` as text: borrowed when valid UTF-8 (checked by the fast validator first), else with
/// U+FFFD for each invalid sequence.
#[inline]
fn text_of(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Writes `n` in decimal without allocating.
fn write_decimal(out: &mut impl Write, n: u64) -> io::Result<()> {
    let mut digits = [0u8; 20];
    let at = decimal_digits(n, &mut digits);
    out.write_all(&digits[at..])
}

/// The two-digit pairs 00..99, for [`decimal_digits`].
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `n` (below 10^8) in decimal into all of `dst`, which holds exactly its digits, two
/// a division from the last.
#[inline]
fn put_short(dst: &mut [u8], mut n: u32) {
    let mut at = dst.len();
    while n >= 100 && at >= 2 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        dst[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 && at >= 2 {
        let pair = n as usize * 2;
        dst[at - 2..at].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else if at >= 1 {
        dst[at - 1] = b'0' + n as u8;
    }
}

/// Writes `n` (below 10^8) as exactly eight decimal digits, zero-padded, into `dst` (eight
/// bytes): two halves of four digits, whose divisions are independent.
#[inline]
fn put_eight(dst: &mut [u8], n: u32) {
    let (high, low) = (n / 10_000, n % 10_000);
    for (four, value) in dst.chunks_exact_mut(4).zip([high, low]) {
        let (a, b) = ((value / 100) as usize * 2, (value % 100) as usize * 2);
        four[..2].copy_from_slice(&PAIRS[a..a + 2]);
        four[2..].copy_from_slice(&PAIRS[b..b + 2]);
    }
}

/// Writes `n` in decimal at the end of `digits`, two digits a division; returns where it
/// starts.
#[inline]
fn decimal_digits(mut n: u64, digits: &mut [u8; 20]) -> usize {
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    at
}

/// Whether every byte of `text` is printable ASCII (0x20..=0x7e): no escape is needed in a
/// text line or a JSON string (apart from `"` and `\\`, which the JSON writer checks). One pass
/// over bytes, the common case for log messages.
#[inline]
fn plain_ascii(text: &str) -> bool {
    !has_special_byte(text.as_bytes(), false)
}

/// Whether `bytes` holds a byte outside printable ASCII (below 0x20, 0x7f, or 0x80 and up), or,
/// with `json`, a `"` or `\\`. Eight bytes at a time (the classic "has a zero byte" word tricks,
/// which may report a byte that is not there after a real one, never miss one: a false report
/// only sends the caller down its careful path).
#[inline]
fn has_special_byte(bytes: &[u8], json: bool) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for word in words.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let mut special = control | (x & HIGHS) | zero_in(x ^ (ONES * 0x7f));
        if json {
            special |=
                zero_in(x ^ (ONES * u64::from(b'"'))) | zero_in(x ^ (ONES * u64::from(b'\\')));
        }
        if special != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| !(0x20..0x7f).contains(&b) || (json && (b == b'"' || b == b'\\')))
}

pub(crate) fn write_escaped_text(out: &mut impl Write, text: &str) -> io::Result<()> {
    if plain_ascii(text) {
        return out.write_all(text.as_bytes());
    }
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

pub(crate) fn write_json_string(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    if !has_special_byte(text.as_bytes(), true) {
        out.write_all(text.as_bytes())?;
        return out.write_all(b"\"");
    }
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
#[must_use]
pub fn rfc3339(nanos: u64) -> String {
    String::from_utf8_lossy(&rfc3339_bytes(nanos)).into_owned()
}

/// Writes [`rfc3339`]`(nanos)` without allocating.
fn write_rfc3339(out: &mut impl Write, nanos: u64) -> io::Result<()> {
    out.write_all(&rfc3339_bytes(nanos))
}

/// The 30 bytes of [`rfc3339`]`(nanos)`: `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ` (a `u64` of
/// nanoseconds ends in the year 2554, so the year has four digits).
fn rfc3339_bytes(nanos: u64) -> [u8; 30] {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    // Records come in time order, many a second: the date and time of day are computed once
    // per second per thread.
    let mut b = LAST_SECOND.with(|last| {
        let (cached, prefix) = last.get();
        if cached == secs && prefix[0] != 0 {
            return prefix;
        }
        let prefix = second_prefix(secs);
        last.set((secs, prefix));
        prefix
    });
    put_fraction(&mut b, frac);
    b
}

/// Writes the nine digits of `frac` (below 10^9) at bytes 20..29 of a 30-byte RFC 3339 time:
/// the first alone, then pairs.
#[inline]
fn put_fraction(b: &mut [u8], frac: u64) {
    let mut value = frac;
    for at in [27, 25, 23, 21] {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        b[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    b[20] = b'0' + (value % 10) as u8;
}

thread_local! {
    /// The last second formatted on this thread and its bytes (with a zero fraction).
    static LAST_SECOND: std::cell::Cell<(u64, [u8; 30])> = const { std::cell::Cell::new((0, [0; 30])) };
}

/// `YYYY-MM-DDTHH:MM:SS.000000000Z` for `secs` since the epoch.
fn second_prefix(secs: u64) -> [u8; 30] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem % 3600 / 60);
    put(17, 2, rem % 60);
    b
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

    #[test]
    fn the_word_scan_finds_every_special_byte_at_every_position() {
        for len in 0..40 {
            let plain = vec![b'a'; len];
            assert!(!has_special_byte(&plain, true), "{len}");
            for at in 0..len {
                for b in [0u8, 0x1f, 0x7f, 0x80, 0xff, b'"', b'\\', b'\n'] {
                    let mut bytes = plain.clone();
                    bytes[at] = b;
                    let json_special = true;
                    let text_special = !(b == b'"' || b == b'\\');
                    assert_eq!(
                        has_special_byte(&bytes, true),
                        json_special,
                        "{len} {at} {b}"
                    );
                    assert_eq!(
                        has_special_byte(&bytes, false),
                        text_special,
                        "{len} {at} {b}"
                    );
                }
                for b in [0x20u8, b'~', b'!', b'#', b'[', b']'] {
                    let mut bytes = plain.clone();
                    bytes[at] = b;
                    assert!(!has_special_byte(&bytes, true), "{len} {at} {b}");
                }
            }
        }
    }

    fn record(tag: &str, payload: &[u8]) -> Record {
        Record {
            id: 42,
            time: 1_700_000_000_123_456_789,
            level: Level::Warn,
            tag: tag.into(),
            pid: 7,
            kind: RecordKind::Plain,
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

    #[test]
    fn decimals_and_the_one_buffer_json_line_match_the_general_path() {
        for n in [
            0u64,
            7,
            9,
            10,
            42,
            99,
            100,
            101,
            999,
            1000,
            123_456_789,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_decimal(&mut out, n).unwrap();
            assert_eq!(out, n.to_string().as_bytes());
        }
        // The line buffer's decimals, at every number of digits and at each power of ten's
        // edges.
        let mut line = LineBuf::new();
        let mut edges = vec![0u64, 1, 9, u64::MAX];
        let mut power = 10u64;
        for _ in 1..20 {
            edges.extend([
                power - 1,
                power,
                power.saturating_add(1),
                power.saturating_mul(2).saturating_add(57),
            ]);
            power = power.saturating_mul(10);
        }
        // And a spread of values of every size (a xorshift, its output cut to a random width),
        // each after a prefix that must survive.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            edges.push(state >> (state % 64));
        }
        for n in edges {
            line.len = 0;
            line.push(b"ab");
            line.decimal(n);
            assert_eq!(line.bytes(), format!("ab{n}").as_bytes(), "{n}");
        }
        for nanos in [
            0u64,
            1,
            999_999_999,
            1_000_000_000,
            1_764_633_600_123_456_789,
        ] {
            assert_eq!(rfc3339_bytes(nanos), rfc3339(nanos).as_bytes(), "{nanos}");
        }
        let long = "x".repeat(LINE_BUF);
        let texts: [&[u8]; 8] = [
            b"",
            b"bench",
            b"request 12345 served",
            b"with \"quote\"",
            b"back\\slash",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            long.as_bytes(),
        ];
        let mut line = LineBuf::new();
        for tag in texts {
            for payload in texts {
                for (id, time, pid) in [(0, 0, 0), (9, 1_764_633_600_000_000_007, 4_000_000_000)] {
                    for kind in [RecordKind::Plain, RecordKind::Structured] {
                        let record = RecordRef {
                            id,
                            time,
                            level: Level::Warn,
                            pid,
                            kind,
                            tag,
                            payload,
                        };
                        let (mut fast, mut general) = (Vec::new(), Vec::new());
                        record.write_json(&mut fast).unwrap();
                        // And through a line buffer reused across seconds, as a dump does.
                        let mut reused = Vec::new();
                        for time in [time, time + 1, time + 1_000_000_000, time] {
                            reused.clear();
                            let at = RecordRef { time, ..record };
                            at.write_json_with(&mut reused, &mut line).unwrap();
                            let mut expected = Vec::new();
                            at.write_json_general(&mut expected).unwrap();
                            assert_eq!(reused, expected);
                        }
                        record.write_json_general(&mut general).unwrap();
                        assert_eq!(
                            String::from_utf8_lossy(&fast),
                            String::from_utf8_lossy(&general)
                        );
                    }
                }
            }
        }
    }
}
