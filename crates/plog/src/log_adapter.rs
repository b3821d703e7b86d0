//! A `log::Log` implementation writing into a plog file (feature `log`).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::log_adapter_shared::cut;
use crate::{Level, Log, MAX_TAG_LEN, StructuredPayload};

/// A logger for the `log` crate: each record's target becomes the tag (cut to
/// [`MAX_TAG_LEN`] bytes), its level the level, its formatted arguments the payload (cut to what
/// the log can hold). A record with key-values (`log::warn!(user = "bob"; "login failed")`) is
/// a structured record whose fields they are ([`crate::Record::fields`]), typed when the value
/// is a number, a boolean or text, else as its `Display` text. Formatting reuses per-thread
/// buffers, so logging does not allocate once warm.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app.plog");
/// let log = std::sync::Arc::new(plog::Log::open(&path)?);
/// plog::Logger::new(log.clone()).max_level(log::LevelFilter::Debug).install()?;
/// log::info!(target: "startup", "listening on port {}", 8080);
/// let record = log.reader().last().unwrap();
/// assert_eq!((record.tag.as_str(), record.message().as_ref()), ("startup", "listening on port 8080"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Logger {
    log: Arc<Log>,
    max_level: ::log::LevelFilter,
}

thread_local! {
    static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
    static PAYLOAD: RefCell<StructuredPayload> = RefCell::new(StructuredPayload::new());
}

/// Copies a record's key-values into a payload as fields.
struct KeyValues<'a>(&'a mut StructuredPayload);

impl<'kvs> ::log::kv::VisitSource<'kvs> for KeyValues<'_> {
    fn visit_pair(
        &mut self,
        key: ::log::kv::Key<'kvs>,
        value: ::log::kv::Value<'kvs>,
    ) -> Result<(), ::log::kv::Error> {
        let name = key.as_str();
        // Integers first: a value captured as an integer also answers to_f64.
        if let Some(n) = value.to_u64() {
            self.0.field(name, n);
        } else if let Some(n) = value.to_i64() {
            self.0.field(name, n);
        } else if let Some(b) = value.to_bool() {
            self.0.field(name, b);
        } else if let Some(n) = value.to_f64() {
            self.0.field(name, n);
        } else if let Some(text) = value.to_borrowed_str() {
            self.0.field(name, text);
        } else {
            self.0.field_fmt(name, format_args!("{value}"));
        }
        Ok(())
    }
}

impl Logger {
    /// A logger writing into `log`, accepting every level.
    #[must_use]
    pub fn new(log: Arc<Log>) -> Logger {
        Logger {
            log,
            max_level: ::log::LevelFilter::Trace,
        }
    }

    /// Accepts only records at `level` or more important.
    #[must_use]
    pub fn max_level(mut self, level: ::log::LevelFilter) -> Logger {
        self.max_level = level;
        self
    }

    /// Installs this logger as the process's `log` logger and sets the global max level.
    ///
    /// # Errors
    /// `log::SetLoggerError` if a logger is already installed.
    pub fn install(self) -> Result<(), ::log::SetLoggerError> {
        ::log::set_max_level(self.max_level);
        ::log::set_boxed_logger(Box::new(self))
    }
}

fn level_of(level: ::log::Level) -> Level {
    match level {
        ::log::Level::Error => Level::Error,
        ::log::Level::Warn => Level::Warn,
        ::log::Level::Info => Level::Info,
        ::log::Level::Debug => Level::Debug,
        ::log::Level::Trace => Level::Trace,
    }
}

impl ::log::Log for Logger {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.level() <= self.max_level
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tag = cut(record.target(), MAX_TAG_LEN.min(self.log.max_message(0)));
        BUFFER.with(|buffer| {
            let Ok(mut text) = buffer.try_borrow_mut() else {
                return;
            };
            text.clear();
            let _ = write!(text, "{}", record.args());
            let level = level_of(record.level());
            let max = self.log.max_message(tag.len());
            if record.key_values().count() == 0 {
                // A logger has nowhere to report its own failure.
                let _ = self.log.write(level, tag, cut(&text, max));
                return;
            }
            PAYLOAD.with(|payload| {
                let Ok(mut payload) = payload.try_borrow_mut() else {
                    return;
                };
                payload.clear();
                payload.message(&text);
                let _ = record.key_values().visit(&mut KeyValues(&mut payload));
                payload.fit(max);
                let _ = self.log.write_structured(level, tag, &payload);
            });
        });
    }

    fn flush(&self) {
        let _ = self.log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::log::Log as _;

    #[test]
    fn levels_targets_and_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(
            crate::LogOptions::new()
                .blocks(64)
                .block_size(64)
                .open(dir.path().join("l"))
                .unwrap(),
        );
        let logger = Logger::new(Arc::clone(&log)).max_level(::log::LevelFilter::Info);
        let target = "t".repeat(300);
        logger.log(
            &::log::Record::builder()
                .level(::log::Level::Warn)
                .target(&target)
                .args(format_args!("{}", "é".repeat(2000)))
                .build(),
        );
        logger.log(
            &::log::Record::builder()
                .level(::log::Level::Debug)
                .target("quiet")
                .args(format_args!("no"))
                .build(),
        );
        logger.flush();
        let records: Vec<_> = log.reader().collect();
        assert_eq!(records.len(), 1, "debug is filtered out");
        assert_eq!((records[0].level, records[0].tag.len()), (Level::Warn, 255));
        assert!(records[0].message().chars().all(|c| c == 'é'));
        // 32 blocks of 56 content bytes, less the 32 header bytes and the 255-byte tag: 1505,
        // cut to 1504 at the two-byte char boundary.
        assert_eq!(
            records[0].payload.len(),
            1504,
            "cut to what fits, at a char boundary"
        );
    }

    #[test]
    fn key_values_are_kept_as_typed_fields() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(crate::LogOptions::new().open(dir.path().join("l")).unwrap());
        let logger = Logger::new(Arc::clone(&log));
        let kvs: [(&str, ::log::kv::Value<'_>); 5] = [
            ("user", "bob".into()),
            ("attempts", 3u64.into()),
            ("delta", (-2i64).into()),
            ("admin", false.into()),
            ("ratio", 0.25f64.into()),
        ];
        logger.log(
            &::log::Record::builder()
                .level(::log::Level::Warn)
                .target("auth")
                .args(format_args!("login failed"))
                .key_values(&kvs)
                .build(),
        );
        let record = log.reader().next().unwrap();
        assert_eq!(record.kind, crate::RecordKind::Structured);
        assert_eq!(record.message(), "login failed");
        let fields: Vec<_> = record.fields().map(|f| (f.name, f.value)).collect();
        assert_eq!(
            fields,
            [
                ("user", crate::Value::Str("bob")),
                ("attempts", crate::Value::U64(3)),
                ("delta", crate::Value::I64(-2)),
                ("admin", crate::Value::Bool(false)),
                ("ratio", crate::Value::F64(0.25)),
            ]
        );
    }
}
