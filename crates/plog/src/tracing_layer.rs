//! A `tracing_subscriber::Layer` writing events into a plog file (feature `tracing`), their
//! fields and spans kept as data (structured records).

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::log_adapter_shared::cut;
use crate::{Level, Log, MAX_TAG_LEN, StructuredPayload};

/// A layer that writes each `tracing` event as one record: the event's target as the tag, its
/// level, and as payload its `message`, its other fields with their types, and the spans it is
/// in (from the outermost) with theirs. An event with no fields but its message and outside
/// every span is a plain record; the others are structured records ([`crate::RecordKind`]).
///
/// It filters nothing itself, so it composes with per-layer filters
/// (`PlogLayer::new(log).with_filter(EnvFilter::new("info"))`) beside other layers such as
/// `tracing_subscriber::fmt`, each seeing what its own filter passes
/// (`crates/pounds/examples/tracing_filtered.rs`).
///
/// An event is encoded in a per-thread buffer, so writing allocates nothing once warm; a
/// span's fields are encoded once, when it is created (and when it records more).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app.plog");
/// use tracing_subscriber::layer::SubscriberExt;
/// let log = std::sync::Arc::new(plog::Log::open(&path)?);
/// let subscriber = tracing_subscriber::registry().with(plog::PlogLayer::new(log.clone()));
/// tracing::subscriber::with_default(subscriber, || {
///     let _request = tracing::info_span!("request", id = 7).entered();
///     tracing::warn!(target: "db", retries = 3, "slow query");
/// });
/// let record = log.reader().last().unwrap();
/// assert_eq!((record.level, record.tag.as_str()), (plog::Level::Warn, "db"));
/// assert_eq!(record.message(), "slow query");
/// assert_eq!(record.fields().next().unwrap().value, plog::Value::I64(3));
/// assert_eq!(record.spans().next().unwrap().name, "request");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PlogLayer {
    log: Arc<Log>,
    /// Tells this layer's span data from another `PlogLayer`'s in the same subscriber: each
    /// records a span's fields into its own slot.
    id: u64,
}

/// Layer ids, so that two layers (two logs) in one subscriber keep their span data apart.
static NEXT_LAYER_ID: AtomicU64 = AtomicU64::new(0);

impl PlogLayer {
    /// A layer writing into `log`.
    pub fn new(log: Arc<Log>) -> PlogLayer {
        PlogLayer {
            log,
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Clone for PlogLayer {
    /// Another layer on the same log, with span data of its own.
    fn clone(&self) -> PlogLayer {
        PlogLayer::new(Arc::clone(&self.log))
    }
}

/// A span's fields, encoded, kept in the span's extensions (one entry per layer id).
#[derive(Debug, Default)]
struct SpanFields(Vec<(u64, StructuredPayload)>);

impl SpanFields {
    fn of_layer(&mut self, id: u64) -> &mut StructuredPayload {
        let at = match self.0.iter().position(|(owner, _)| *owner == id) {
            Some(at) => at,
            None => {
                self.0.push((id, StructuredPayload::new()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    fn get(&self, id: u64) -> Option<&StructuredPayload> {
        self.0
            .iter()
            .find_map(|(owner, payload)| (*owner == id).then_some(payload))
    }
}

/// Records a `tracing` visit into a payload: `message` as the message, other fields typed.
struct Visitor<'a>(&'a mut StructuredPayload);

impl Visit for Visitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.field(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.field(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.field(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.field(field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.message(value);
        } else {
            self.0.field(field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // The message is format_args!: its Debug is its Display. Formatted once, straight
            // into the payload.
            self.0.message_fmt(format_args!("{value:?}"));
        } else {
            self.0.field_fmt(field.name(), format_args!("{value:?}"));
        }
    }
}

thread_local! {
    /// The event being encoded.
    static PAYLOAD: RefCell<StructuredPayload> = RefCell::new(StructuredPayload::new());
}

fn level_of(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        tracing::Level::DEBUG => Level::Debug,
        _ => Level::Trace,
    }
}

impl<S> tracing_subscriber::Layer<S> for PlogLayer
where
    S: tracing::Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if extensions.get_mut::<SpanFields>().is_none() {
            extensions.insert(SpanFields::default());
        }
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            attrs.record(&mut Visitor(fields.of_layer(self.id)));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(&mut Visitor(fields.of_layer(self.id)));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let tag = cut(meta.target(), MAX_TAG_LEN.min(self.log.max_message(0)));
        let level = level_of(meta.level());
        PAYLOAD.with(|payload| {
            // Re-entered (a Debug impl that logs): the inner event is dropped rather than
            // tangled with the outer one.
            let Ok(mut payload) = payload.try_borrow_mut() else {
                return;
            };
            payload.clear();
            event.record(&mut Visitor(&mut payload));
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    payload.span(span.name());
                    if let Some(fields) = span.extensions().get::<SpanFields>()
                        && let Some(fields) = fields.get(self.id)
                    {
                        payload.append_fields(fields);
                    }
                }
            }
            payload.fit(self.log.max_message(tag.len()));
            // A layer has nowhere to report its own failure. A message alone goes as the bytes
            // it was formatted into (UTF-8 already, not parsed and checked again).
            let _ = if payload.is_message_only() {
                self.log.write(level, tag, payload.message_bytes())
            } else {
                self.log.write_structured(level, tag, &payload)
            };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn fields_and_spans_are_kept_as_data() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(crate::LogOptions::new().open(dir.path().join("t")).unwrap());
        let subscriber = tracing_subscriber::registry().with(PlogLayer::new(Arc::clone(&log)));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("request", id = 7u64, path = "/login");
            let _outer = outer.enter();
            let inner = tracing::info_span!("db", table = tracing::field::Empty);
            inner.record("table", "users");
            let _inner = inner.enter();
            tracing::warn!(target: "db", retries = 3, ok = false, elapsed = ?std::time::Duration::from_millis(5), "slow {}", "query");
            drop(_inner);
            tracing::info!("plain");
        });
        let records: Vec<_> = log.reader().collect();
        assert_eq!(records.len(), 2);
        let record = &records[0];
        assert_eq!(record.message(), "slow query");
        let fields: Vec<_> = record.fields().map(|f| (f.name, f.value)).collect();
        assert_eq!(
            fields,
            [
                ("retries", Value::I64(3)),
                ("ok", Value::Bool(false)),
                ("elapsed", Value::Str("5ms"))
            ]
        );
        let spans: Vec<_> = record
            .spans()
            .map(|s| {
                (
                    s.name,
                    s.fields().map(|f| (f.name, f.value)).collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                (
                    "request",
                    vec![("id", Value::U64(7)), ("path", Value::Str("/login"))]
                ),
                ("db", vec![("table", Value::Str("users"))]),
            ]
        );
        assert_eq!(records[1].spans().count(), 1, "still inside the outer span");
    }

    #[test]
    fn a_message_alone_outside_spans_is_a_plain_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(crate::LogOptions::new().open(dir.path().join("t")).unwrap());
        let subscriber = tracing_subscriber::registry().with(PlogLayer::new(Arc::clone(&log)));
        tracing::subscriber::with_default(subscriber, || tracing::info!("started"));
        let record = log.reader().next().unwrap();
        assert_eq!(
            (record.kind, record.payload.as_slice()),
            (crate::RecordKind::Plain, b"started".as_slice())
        );
    }

    /// The message formatted once, straight into the payload, and written without being
    /// parsed again: the record's message and fields are what the event said, whether the
    /// message comes alone, after fields, inside a span, or cut to fit a small log.
    #[test]
    fn messages_formatted_once_are_recorded_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(
            crate::LogOptions::new()
                .blocks(16)
                .block_size(64)
                .open(dir.path().join("t"))
                .unwrap(),
        );
        let max = log.max_message("plog::tracing_layer::tests".len());
        let long = "é".repeat(max);
        let subscriber = tracing_subscriber::registry().with(PlogLayer::new(Arc::clone(&log)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("a {} c", "b");
            tracing::info!(n = 1u64, "m {}", 2);
            tracing::info!("{long}");
            let _span = tracing::info_span!("s").entered();
            tracing::info!("in {}", "span");
        });
        let records: Vec<_> = log.reader().collect();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].kind, crate::RecordKind::Plain);
        assert_eq!(records[0].payload, b"a b c");
        assert_eq!(records[1].message(), "m 2");
        let fields: Vec<_> = records[1].fields().map(|f| (f.name, f.value)).collect();
        assert_eq!(fields, [("n", Value::U64(1))]);
        assert_eq!(records[2].kind, crate::RecordKind::Plain);
        let cut = std::str::from_utf8(&records[2].payload).unwrap();
        assert!(
            !cut.is_empty() && long.starts_with(cut),
            "a whole-character prefix"
        );
        assert!(
            cut.len() <= max && cut.len() + 2 > max - 6,
            "{} of {max}",
            cut.len()
        );
        assert_eq!(records[3].message(), "in span");
        assert_eq!(records[3].spans().next().unwrap().name, "s");
    }

    #[test]
    fn two_layers_keep_their_span_fields_apart() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(crate::LogOptions::new().open(dir.path().join("a")).unwrap());
        let b = Arc::new(crate::LogOptions::new().open(dir.path().join("b")).unwrap());
        let subscriber = tracing_subscriber::registry()
            .with(PlogLayer::new(Arc::clone(&a)))
            .with(PlogLayer::new(Arc::clone(&b)));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("s", n = 1u64, later = tracing::field::Empty);
            span.record("later", 2u64);
            let _span = span.enter();
            tracing::info!("x");
        });
        for log in [&a, &b] {
            let record = log.reader().next().unwrap();
            let span = record.spans().next().unwrap();
            assert_eq!(span.fields().count(), 2, "each field once");
        }
    }
}
