//! Structured payloads (record kind 1): a message, typed fields and the span stack with each
//! span's fields, encoded as a flat list of items (docs/plog-format.md, "Structured payloads").
//!
//! The encoding is a list rather than a tree so that a writer appends items as its visitor
//! meets them (no counts to know first, no allocation once its buffer is warm), and so that
//! cutting a payload to fit a record drops whole items from the end.

use std::fmt;
use std::io::{self, Write};

/// Item tag: the record's message (at most one, the first item).
const ITEM_MESSAGE: u8 = 0;
/// Item tag: a span; the fields after it, up to the next span, are its own.
const ITEM_SPAN: u8 = 1;
/// Item tags `ITEM_FIELD + type`: a field and its value's type.
const ITEM_FIELD: u8 = 0x10;
const TYPE_STR: u8 = 0;
const TYPE_I64: u8 = 1;
const TYPE_U64: u8 = 2;
const TYPE_F64: u8 = 3;
const TYPE_BOOL: u8 = 4;

/// Bytes of the longest length prefix (LEB128 of a `u32`).
const MAX_LEN_BYTES: usize = 5;

/// A field's value as stored: the types `tracing` and `log`'s key-values record natively;
/// anything else is kept as its `Debug` or `Display` text.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// Text.
    Str(&'a str),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A floating-point number.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Value<'a> {
        Value::Str(value)
    }
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::I64(value)
    }
}

impl From<u64> for Value<'_> {
    fn from(value: u64) -> Self {
        Value::U64(value)
    }
}

impl From<f64> for Value<'_> {
    fn from(value: f64) -> Self {
        Value::F64(value)
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl fmt::Display for Value<'_> {
    /// The value as text: strings as they are, numbers in decimal, booleans as `true`/`false`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Str(text) => f.write_str(text),
            Value::I64(n) => write!(f, "{n}"),
            Value::U64(n) => write!(f, "{n}"),
            Value::F64(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One field: a name and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field<'a> {
    /// The field's name.
    pub name: &'a str,
    /// Its value.
    pub value: Value<'a>,
}

/// A structured payload being built: the message, the event's fields, then each span from the
/// outermost with its fields. Reused (see [`StructuredPayload::clear`]), it allocates nothing
/// once its buffer has grown to the records written. Write it with [`crate::Log::write_structured`].
///
/// ```
/// # fn main() -> Result<(), plog::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("app.plog");
/// use plog::{Level, Log, StructuredPayload, Value};
/// let log = Log::open(&path)?;
/// let mut payload = StructuredPayload::new();
/// payload.message("login failed").field("user", "bob").span("request").field("id", 7u64);
/// log.write_structured(Level::Warn, "auth", &payload)?;
/// let record = log.reader().last().unwrap();
/// assert_eq!(record.message(), "login failed");
/// let user = record.fields().next().unwrap();
/// assert_eq!((user.name, user.value), ("user", Value::Str("bob")));
/// assert_eq!(record.spans().next().unwrap().name, "request");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StructuredPayload {
    bytes: Vec<u8>,
    has_message: bool,
    /// Where the message's text starts and how long it is, while `has_message` (the message
    /// item is always first): the layers write it without parsing the item again.
    message_at: (usize, usize),
    /// Where the first span item starts (`bytes.len()` while there is none): a message set
    /// late goes to the front, fields before it belong to the event.
    spans_at: Option<usize>,
}

impl StructuredPayload {
    /// An empty payload.
    #[must_use]
    pub fn new() -> StructuredPayload {
        StructuredPayload::default()
    }

    /// Empties the payload, keeping its buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.has_message = false;
        self.message_at = (0, 0);
        self.spans_at = None;
    }

    /// The encoded bytes (the record's payload).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether nothing has been added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    #[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
    /// Whether the payload holds only a message (or nothing): a plain record says as much.
    pub(crate) fn is_message_only(&self) -> bool {
        self.bytes.is_empty()
            || (self.has_message && self.message_at.0 + self.message_at.1 == self.bytes.len())
    }

    #[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
    /// The message's bytes (UTF-8, written from a `str`; empty if none), without parsing the
    /// item or checking the text again.
    pub(crate) fn message_bytes(&self) -> &[u8] {
        let (at, len) = self.message_at;
        match self.has_message {
            true => self.bytes.get(at..at + len).unwrap_or_default(),
            false => &[],
        }
    }

    #[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
    /// Sets the message to `args` formatted straight into the payload (no intermediate
    /// string), moved to the front when other items came first; a second message is kept as a
    /// field named `message`, as [`Self::message`] does.
    pub(crate) fn message_fmt(&mut self, args: fmt::Arguments<'_>) {
        if self.has_message {
            self.field_fmt("message", args);
            return;
        }
        let old_len = self.bytes.len();
        self.bytes.push(ITEM_MESSAGE);
        let (len_bytes, text_len) = self.push_formatted(args);
        let item_len = self.bytes.len() - old_len;
        if old_len > 0 {
            self.bytes.rotate_right(item_len);
        }
        if let Some(at) = self.spans_at.as_mut() {
            *at += item_len;
        }
        self.has_message = true;
        self.message_at = (1 + len_bytes, text_len);
    }

    /// Sets the message. It is stored first whenever it is set (a visitor may meet the
    /// `message` field after others); a second message is kept as a field named `message`.
    pub fn message(&mut self, text: &str) -> &mut StructuredPayload {
        if self.has_message {
            return self.field("message", text);
        }
        let text = cut_to_u32(text);
        let mut head = [0u8; 1 + MAX_LEN_BYTES];
        head[0] = ITEM_MESSAGE;
        let head_len = 1 + put_len(&mut head[1..], text.len());
        let item_len = head_len + text.len();
        let old_len = self.bytes.len();
        // Shift what is there to make room at the front (no allocation beyond growth).
        self.bytes.resize(old_len + item_len, 0);
        self.bytes.copy_within(..old_len, item_len);
        self.bytes[..head_len].copy_from_slice(&head[..head_len]);
        self.bytes[head_len..item_len].copy_from_slice(text.as_bytes());
        if let Some(at) = self.spans_at.as_mut() {
            *at += item_len;
        }
        self.has_message = true;
        self.message_at = (head_len, text.len());
        self
    }

    /// Adds a field (to the event, or after [`Self::span`] to that span).
    pub fn field<'v>(&mut self, name: &str, value: impl Into<Value<'v>>) -> &mut StructuredPayload {
        let value = value.into();
        let type_code = match value {
            Value::Str(_) => TYPE_STR,
            Value::I64(_) => TYPE_I64,
            Value::U64(_) => TYPE_U64,
            Value::F64(_) => TYPE_F64,
            Value::Bool(_) => TYPE_BOOL,
        };
        self.bytes.push(ITEM_FIELD + type_code);
        self.push_text(name);
        match value {
            Value::Str(text) => self.push_text(text),
            Value::I64(n) => self.bytes.extend_from_slice(&n.to_le_bytes()),
            Value::U64(n) => self.bytes.extend_from_slice(&n.to_le_bytes()),
            Value::F64(n) => self.bytes.extend_from_slice(&n.to_le_bytes()),
            Value::Bool(b) => self.bytes.push(u8::from(b)),
        }
        self
    }

    /// Adds a text field holding `value` formatted (a `Debug` or `Display` value), written
    /// straight into the buffer.
    pub fn field_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) -> &mut StructuredPayload {
        self.bytes.push(ITEM_FIELD + TYPE_STR);
        self.push_text(name);
        self.push_formatted(value);
        self
    }

    /// Starts a span: the fields added after it, up to the next span, are its own. Spans go
    /// from the outermost to the innermost.
    pub fn span(&mut self, name: &str) -> &mut StructuredPayload {
        if self.spans_at.is_none() {
            self.spans_at = Some(self.bytes.len());
        }
        self.bytes.push(ITEM_SPAN);
        self.push_text(name);
        self
    }

    #[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
    /// Appends the fields of `other` (its message and spans markers are left out): a span's
    /// fields kept encoded since the span was entered.
    pub(crate) fn append_fields(&mut self, other: &StructuredPayload) {
        let mut rest = other.as_bytes();
        while let Some((item, after)) = next_item(rest) {
            if matches!(item, Item::Field(_)) {
                let len = rest.len() - after.len();
                self.bytes.extend_from_slice(&rest[..len]);
            }
            rest = after;
        }
    }

    #[cfg_attr(not(any(feature = "log", feature = "tracing")), allow(dead_code))]
    /// Cuts the payload to at most `max` bytes: whole items are dropped from the end, then the
    /// message is cut at a character boundary if it alone is too long.
    pub(crate) fn fit(&mut self, max: usize) {
        if self.bytes.len() <= max {
            return;
        }
        let mut keep = 0;
        let mut rest = self.bytes.as_slice();
        while let Some((_, after)) = next_item(rest) {
            let end = self.bytes.len() - after.len();
            if end > max {
                break;
            }
            keep = end;
            rest = after;
        }
        if keep == 0 && self.has_message {
            // The message alone does not fit: keep as much of it as does.
            let Some((Item::Message(text), after)) = next_item(&self.bytes) else {
                self.clear();
                return;
            };
            let text_at = self.bytes.len() - after.len() - text.len();
            let room = max.saturating_sub(1 + MAX_LEN_BYTES);
            let mut end = room.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let mut head = [0u8; 1 + MAX_LEN_BYTES];
            head[0] = ITEM_MESSAGE;
            let head_len = 1 + put_len(&mut head[1..], end);
            if head_len + end > max {
                self.clear();
                return;
            }
            self.bytes.copy_within(text_at..text_at + end, head_len);
            self.bytes[..head_len].copy_from_slice(&head[..head_len]);
            keep = head_len + end;
            self.message_at = (head_len, end);
        }
        self.bytes.truncate(keep);
        if self.spans_at.is_some_and(|at| at >= keep) {
            self.spans_at = None;
        }
        self.has_message = self.has_message && keep > 0;
        if !self.has_message {
            self.message_at = (0, 0);
        }
    }

    fn push_text(&mut self, text: &str) {
        let text = cut_to_u32(text);
        let mut len = [0u8; MAX_LEN_BYTES];
        let n = put_len(&mut len, text.len());
        self.bytes.extend_from_slice(&len[..n]);
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// Pushes `args` formatted, with its length before it: room for the longest length is
    /// left, the text written after it, and the text moved back when the length is shorter.
    /// Returns the bytes of the length and the text's length.
    fn push_formatted(&mut self, args: fmt::Arguments<'_>) -> (usize, usize) {
        let len_at = self.bytes.len();
        self.bytes.extend_from_slice(&[0; MAX_LEN_BYTES]);
        let text_at = self.bytes.len();
        let mut writer = Utf8Sink(&mut self.bytes);
        if fmt::write(&mut writer, args).is_err() {
            // A Debug impl that fails leaves what it wrote: still text.
        }
        let text_len = (self.bytes.len() - text_at).min(u32::MAX as usize);
        self.bytes.truncate(text_at + text_len);
        let mut len = [0u8; MAX_LEN_BYTES];
        let n = put_len(&mut len, text_len);
        self.bytes[len_at..len_at + n].copy_from_slice(&len[..n]);
        self.bytes.copy_within(text_at.., len_at + n);
        self.bytes.truncate(len_at + n + text_len);
        (n, text_len)
    }
}

/// Formatted text appended to a byte buffer (`fmt::Write` hands over whole `str`s).
struct Utf8Sink<'a>(&'a mut Vec<u8>);

impl fmt::Write for Utf8Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `text` cut at a character boundary to what a length prefix can say.
fn cut_to_u32(text: &str) -> &str {
    let max = u32::MAX as usize;
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Writes `len` (at most `u32::MAX`) as LEB128 into `out`; returns the bytes used.
fn put_len(out: &mut [u8], len: usize) -> usize {
    let mut value = len.min(u32::MAX as usize) as u32;
    let mut at = 0;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[at] = byte;
            return at + 1;
        }
        out[at] = byte | 0x80;
        at += 1;
    }
}

/// Reads a LEB128 length of at most 5 bytes and `u32::MAX`.
fn take_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(MAX_LEN_BYTES) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(value)
                .ok()
                .map(|v| (v as usize, &bytes[i + 1..]));
        }
    }
    None
}

fn take_text(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = take_len(bytes)?;
    if len > rest.len() {
        return None;
    }
    let (text, rest) = rest.split_at(len);
    Some((std::str::from_utf8(text).ok()?, rest))
}

fn take_array<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    let head = bytes.get(..N)?;
    let mut array = [0u8; N];
    array.copy_from_slice(head);
    Some((array, &bytes[N..]))
}

/// One decoded item.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item<'a> {
    Message(&'a str),
    Span(&'a str),
    Field(Field<'a>),
}

/// The first item of `bytes` and what follows it; `None` at the end or on bytes that are not
/// an item. Every length is checked against the bytes left, so any input costs work linear in
/// its length and never panics.
fn next_item(bytes: &[u8]) -> Option<(Item<'_>, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    match tag {
        ITEM_MESSAGE => take_text(rest).map(|(text, rest)| (Item::Message(text), rest)),
        ITEM_SPAN => take_text(rest).map(|(name, rest)| (Item::Span(name), rest)),
        _ => {
            let (name, rest) = take_text(rest)?;
            let (value, rest) = match tag.checked_sub(ITEM_FIELD)? {
                TYPE_STR => take_text(rest).map(|(t, r)| (Value::Str(t), r))?,
                TYPE_I64 => {
                    take_array(rest).map(|(a, r)| (Value::I64(i64::from_le_bytes(a)), r))?
                }
                TYPE_U64 => {
                    take_array(rest).map(|(a, r)| (Value::U64(u64::from_le_bytes(a)), r))?
                }
                TYPE_F64 => {
                    take_array(rest).map(|(a, r)| (Value::F64(f64::from_le_bytes(a)), r))?
                }
                TYPE_BOOL => match rest.split_first()? {
                    (0, r) => (Value::Bool(false), r),
                    (1, r) => (Value::Bool(true), r),
                    _ => return None,
                },
                _ => return None,
            };
            Some((Item::Field(Field { name, value }), rest))
        }
    }
}

/// A structured payload read back, checked whole: its message, its fields and its spans.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Structured<'a> {
    message: &'a str,
    /// The items after the message.
    items: &'a [u8],
}

impl<'a> Structured<'a> {
    /// Decodes `payload`; `None` unless every byte belongs to a well-formed item and a message,
    /// if any, comes first. Linear in the payload's length, whatever its bytes.
    #[must_use]
    pub fn parse(payload: &'a [u8]) -> Option<Structured<'a>> {
        let (message, items) = match next_item(payload) {
            Some((Item::Message(text), rest)) => (text, rest),
            _ => ("", payload),
        };
        let mut rest = items;
        while !rest.is_empty() {
            let (item, after) = next_item(rest)?;
            if matches!(item, Item::Message(_)) {
                return None;
            }
            rest = after;
        }
        Some(Structured { message, items })
    }

    /// The message (empty if the writer gave none).
    #[must_use]
    pub fn message(&self) -> &'a str {
        self.message
    }

    /// The event's own fields (not its spans').
    #[must_use]
    pub fn fields(&self) -> Fields<'a> {
        Fields { rest: self.items }
    }

    /// The spans the event was in, from the outermost.
    #[must_use]
    pub fn spans(&self) -> Spans<'a> {
        Spans { rest: self.items }
    }

    /// Writes the text form: `outer{k=v}:inner: message k=v` (spans, then the message, then
    /// the fields; values quoted only when they hold spaces, quotes, `=` or controls, or are
    /// empty).
    pub(crate) fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let mut any = false;
        for span in self.spans() {
            write_text_escaped(out, span.name)?;
            let mut fields = span.fields().peekable();
            if fields.peek().is_some() {
                out.write_all(b"{")?;
                for (i, field) in fields.enumerate() {
                    if i > 0 {
                        out.write_all(b" ")?;
                    }
                    write_text_field(out, &field)?;
                }
                out.write_all(b"}")?;
            }
            out.write_all(b":")?;
            any = true;
        }
        if !self.message.is_empty() {
            if any {
                out.write_all(b" ")?;
            }
            write_text_escaped(out, self.message)?;
            any = true;
        }
        for field in self.fields() {
            if any {
                out.write_all(b" ")?;
            }
            write_text_field(out, &field)?;
            any = true;
        }
        Ok(())
    }

    /// Writes `,"fields":{..},"spans":[{"name":..,..},..]` (after the message of a JSON line),
    /// as tracing-subscriber's JSON formatter lays them out.
    pub(crate) fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(b",\"fields\":{")?;
        write_json_fields(out, self.fields(), true)?;
        out.write_all(b"},\"spans\":[")?;
        for (i, span) in self.spans().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(b"{\"name\":")?;
            crate::record::write_json_string(out, span.name)?;
            write_json_fields(out, span.fields(), false)?;
            out.write_all(b"}")?;
        }
        out.write_all(b"]")
    }
}

fn write_json_fields(out: &mut impl Write, fields: Fields<'_>, first: bool) -> io::Result<()> {
    for (i, field) in fields.enumerate() {
        if i > 0 || !first {
            out.write_all(b",")?;
        }
        crate::record::write_json_string(out, field.name)?;
        out.write_all(b":")?;
        match field.value {
            Value::Str(text) => crate::record::write_json_string(out, text)?,
            // JSON has no NaN or infinities; serde_json (tracing's JSON formatter) writes null.
            Value::F64(n) if !n.is_finite() => out.write_all(b"null")?,
            other => write!(out, "{other}")?,
        }
    }
    Ok(())
}

fn write_text_escaped(out: &mut impl Write, text: &str) -> io::Result<()> {
    crate::record::write_escaped_text(out, text)
}

fn write_text_field(out: &mut impl Write, field: &Field<'_>) -> io::Result<()> {
    write_text_escaped(out, field.name)?;
    out.write_all(b"=")?;
    match field.value {
        Value::Str(text) if needs_quotes(text) => crate::record::write_json_string(out, text),
        Value::Str(text) => out.write_all(text.as_bytes()),
        other => write!(out, "{other}"),
    }
}

/// Whether a text value must be quoted to read back as one `key=value` token (logfmt's rule).
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control())
}

/// The fields up to the next span (or the end).
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// No fields.
    pub(crate) fn none() -> Fields<'a> {
        Fields { rest: &[] }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        match next_item(self.rest)? {
            (Item::Field(field), rest) => {
                self.rest = rest;
                Some(field)
            }
            _ => {
                self.rest = &[];
                None
            }
        }
    }
}

/// A span an event was in: its name and its fields.
#[derive(Debug, Clone)]
pub struct Span<'a> {
    /// The span's name.
    pub name: &'a str,
    fields: &'a [u8],
}

impl<'a> Span<'a> {
    /// The span's fields.
    #[must_use]
    pub fn fields(&self) -> Fields<'a> {
        Fields { rest: self.fields }
    }
}

/// The spans of a structured payload, from the outermost.
#[derive(Debug, Clone)]
pub struct Spans<'a> {
    rest: &'a [u8],
}

impl<'a> Spans<'a> {
    /// No spans.
    pub(crate) fn none() -> Spans<'a> {
        Spans { rest: &[] }
    }
}

impl<'a> Iterator for Spans<'a> {
    type Item = Span<'a>;

    fn next(&mut self) -> Option<Span<'a>> {
        loop {
            let (item, rest) = next_item(self.rest)?;
            self.rest = rest;
            if let Item::Span(name) = item {
                return Some(Span { name, fields: rest });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StructuredPayload {
        let mut payload = StructuredPayload::new();
        payload
            .field("retries", 3u64)
            .field("ok", false)
            .field_fmt(
                "latency",
                format_args!("{:?}", std::time::Duration::from_millis(5)),
            )
            .message("slow query")
            .span("request")
            .field("id", -7i64)
            .span("db")
            .field("ratio", 0.5f64)
            .field("who", "a b");
        payload
    }

    #[test]
    fn items_read_back_in_order_with_their_types() {
        let payload = sample();
        let parsed = Structured::parse(payload.as_bytes()).unwrap();
        assert_eq!(parsed.message(), "slow query");
        let fields: Vec<_> = parsed.fields().collect();
        assert_eq!(
            fields,
            [
                Field {
                    name: "retries",
                    value: Value::U64(3)
                },
                Field {
                    name: "ok",
                    value: Value::Bool(false)
                },
                Field {
                    name: "latency",
                    value: Value::Str("5ms")
                },
            ]
        );
        let spans: Vec<_> = parsed
            .spans()
            .map(|s| (s.name, s.fields().collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            spans[0],
            (
                "request",
                vec![Field {
                    name: "id",
                    value: Value::I64(-7)
                }]
            )
        );
        assert_eq!(spans[1].0, "db");
        assert_eq!(
            spans[1].1[1],
            Field {
                name: "who",
                value: Value::Str("a b")
            }
        );
        let mut text = Vec::new();
        parsed.write_text(&mut text).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "request{id=-7}:db{ratio=0.5 who=\"a b\"}: slow query retries=3 ok=false latency=5ms"
        );
    }

    /// A message formatted after fields (and a span) goes to the front as `message` would put
    /// it, and its bytes are known without parsing; a second one is a field.
    #[test]
    fn a_formatted_message_is_the_same_as_a_set_one() {
        let mut set = StructuredPayload::new();
        set.field("k", 1u64)
            .span("s")
            .message("m 2")
            .field("message", "again");
        let mut formatted = StructuredPayload::new();
        formatted.field("k", 1u64).span("s");
        formatted.message_fmt(format_args!("m {}", 2));
        formatted.message_fmt(format_args!("{}", "again"));
        assert_eq!(formatted.as_bytes(), set.as_bytes());
        assert_eq!(formatted.message_bytes(), b"m 2");
        assert!(!formatted.is_message_only());
        let mut alone = StructuredPayload::new();
        alone.message_fmt(format_args!("only"));
        assert!(alone.is_message_only());
        assert_eq!(alone.message_bytes(), b"only");
    }

    #[test]
    fn fitting_drops_whole_items_then_cuts_the_message() {
        let full = sample();
        for max in 0..=full.as_bytes().len() + 1 {
            let mut payload = full.clone();
            payload.fit(max);
            assert!(payload.as_bytes().len() <= max, "{max}");
            let parsed = Structured::parse(payload.as_bytes()).unwrap();
            assert!("slow query".starts_with(parsed.message()), "{max}");
            if parsed.message() == "slow query" {
                assert!(
                    full.as_bytes().starts_with(payload.as_bytes()),
                    "{max}: whole items"
                );
            }
        }
        let mut long = StructuredPayload::new();
        long.message(&"é".repeat(300)).field("k", 1u64);
        long.fit(100);
        let parsed = Structured::parse(long.as_bytes()).unwrap();
        assert_eq!(parsed.fields().count(), 0);
        assert!(parsed.message().len() > 90 && parsed.message().chars().all(|c| c == 'é'));
    }

    #[test]
    fn lengths_round_trip_at_every_width() {
        for len in [
            0usize,
            1,
            127,
            128,
            16_383,
            16_384,
            1 << 21,
            (1 << 28) + 5,
            u32::MAX as usize,
        ] {
            let mut buf = [0u8; MAX_LEN_BYTES];
            let n = put_len(&mut buf, len);
            let (back, rest) = take_len(&buf[..n]).unwrap();
            assert_eq!((back, rest.len()), (len, 0));
        }
        assert_eq!(
            take_len(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
            None,
            "six bytes"
        );
        assert_eq!(take_len(&[0xff, 0xff, 0xff, 0xff, 0x7f]), None, "over u32");
    }

    /// Random bytes, and every cut and one-byte change of a real payload: the decoder and the
    /// text and JSON writers never panic, and what they accept stays within the input.
    #[test]
    fn any_bytes_decode_without_panicking() {
        let mut rng = pounds_testkit::Rng::new(13);
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        let real = sample().as_bytes().to_vec();
        for cut in 0..real.len() {
            inputs.push(real[..cut].to_vec());
        }
        for at in 0..real.len() {
            for b in [0u8, 1, 0x10, 0x14, 0x15, 0x7f, 0x80, 0xff] {
                let mut changed = real.clone();
                changed[at] = b;
                inputs.push(changed);
            }
        }
        for round in 0..40_000 {
            let len = rng.below(64) as usize;
            // Half the inputs from the bytes that are item tags and short lengths, so that
            // many decode; half from any byte.
            let span = if round % 2 == 0 { 0x20 } else { 0x100 };
            inputs.push((0..len).map(|_| rng.below(span) as u8).collect());
        }
        let mut accepted = 0;
        for input in &inputs {
            if let Some(parsed) = Structured::parse(input) {
                accepted += 1;
                let mut out = Vec::new();
                parsed.write_text(&mut out).unwrap();
                parsed.write_json(&mut out).unwrap();
                let fields = parsed.fields().count()
                    + parsed.spans().map(|s| s.fields().count()).sum::<usize>();
                assert!(fields <= input.len() / 2);
            }
        }
        assert!(
            accepted > 100,
            "the generator reaches valid payloads: {accepted}"
        );
    }
}
