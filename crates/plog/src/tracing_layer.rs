//! A `tracing_subscriber::Layer` writing events into a plog file (feature `tracing`).

use std::fmt::{self, Write as _};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use crate::log_adapter_shared::cut;
use crate::{Level, Log, MAX_TAG_LEN};

/// A layer that writes each `tracing` event as one record: the event's target as the tag, its
/// level, and as payload its `message` followed by its other fields as ` name=value`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app.plog");
/// use tracing_subscriber::layer::SubscriberExt;
/// let log = std::sync::Arc::new(plog::Log::open(&path)?);
/// let subscriber = tracing_subscriber::registry().with(plog::PlogLayer::new(log.clone()));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::warn!(target: "db", retries = 3, "slow query");
/// });
/// let record = log.reader().last().unwrap();
/// assert_eq!((record.level, record.tag.as_str()), (plog::Level::Warn, "db"));
/// assert_eq!(record.message(), "slow query retries=3");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PlogLayer {
    log: Arc<Log>,
}

impl PlogLayer {
    /// A layer writing into `log`.
    pub fn new(log: Arc<Log>) -> PlogLayer {
        PlogLayer { log }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
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

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PlogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut text = fields.message;
        if text.is_empty() {
            text = fields.rest.trim_start().to_owned();
        } else {
            text.push_str(&fields.rest);
        }
        let tag = cut(meta.target(), MAX_TAG_LEN.min(self.log.max_message(0)));
        let message = cut(&text, self.log.max_message(tag.len()));
        // A layer has nowhere to report its own failure.
        let _ = self.log.write(level_of(meta.level()), tag, message);
    }
}
