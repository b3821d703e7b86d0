//! `tracing` with two layers side by side, each with its own `EnvFilter`: readable lines from
//! `tracing_subscriber::fmt` at `warn` and above, and everything from `debug` on (but the
//! `noisy` target) into a plog flight recorder, fields and spans kept as data.
//!
//! `cargo run -p pounds --features tracing-layer --example tracing_filtered` prints the fmt
//! line, the records plog kept as JSON lines, and
//! `tracing_filtered: plog kept 2 of 4 events, user=bob in span request{id=42}`.

use std::sync::Arc;

use pounds::log::{Log, PlogLayer, Value};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log = Arc::new(Log::open(dir.path().join("service.plog"))?);
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_ansi(false)
                .with_writer(std::io::stdout)
                .with_filter(EnvFilter::new("warn")),
        )
        .with(PlogLayer::new(Arc::clone(&log)).with_filter(EnvFilter::new("debug,noisy=off")));
    tracing::subscriber::with_default(subscriber, || {
        let _request = tracing::info_span!("request", id = 42u64).entered();
        tracing::debug!(target: "db", rows = 3u64, "query done");
        tracing::trace!("below both filters");
        tracing::info!(target: "noisy", "off for plog, below warn for fmt");
        tracing::warn!(user = "bob", "login failed");
    });

    let records: Vec<_> = log.reader().collect();
    for record in &records {
        print!("{}", record.to_json_line());
    }
    let login = records
        .iter()
        .find(|r| r.message() == "login failed")
        .ok_or("the warning is not in the log")?;
    let user = login
        .fields()
        .find(|f| f.name == "user")
        .ok_or("the user field is not kept")?;
    let span = login.spans().next().ok_or("the span is not kept")?;
    let id = span.fields().find(|f| f.name == "id").map(|f| f.value);
    let (Value::Str(user), Some(Value::U64(id))) = (user.value, id) else {
        return Err("fields of unexpected types".into());
    };
    println!(
        "tracing_filtered: plog kept {} of 4 events, user={user} in span {}{{id={id}}}",
        records.len(),
        span.name
    );
    Ok(())
}
