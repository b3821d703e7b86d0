//! `tracing` into two places at once: readable lines in a rolling mmap log file
//! (`pounds::stream::LineSink` as `tracing_subscriber::fmt`'s writer, shared by four threads
//! with no lock) and the same events as data in a plog flight recorder (`PlogLayer`).
//!
//! `cargo run -p pounds --features tracing-layer,tracing-sink --example tracing_sink` prints
//! the files the sink left and
//! `tracing_sink: 4000 events, plog kept 4000, the live file and 3 rolled files, every line whole`.

use std::sync::Arc;

use pounds::log::{Log, PlogLayer};
use pounds::stream::{LineSinkOptions, Roll};
use tracing_subscriber::layer::SubscriberExt;

const THREADS: u64 = 4;
const EVENTS: u64 = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("service.log");
    // A new file every 32 KiB, the newest three rolled files kept beside the live one.
    let sink = LineSinkOptions::new()
        .roll(Roll::Size(32 << 10))
        .keep(3)
        .open(&path)?;
    let log = Arc::new(Log::open(dir.path().join("service.plog"))?);
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_ansi(false)
                .with_writer(sink.clone()),
        )
        .with(PlogLayer::new(Arc::clone(&log)));
    let dispatch = tracing::Dispatch::new(subscriber);
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for n in 0..EVENTS {
                        tracing::info!(thread, n, "request served");
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a writer thread panicked")?;
    }
    // The subscriber holds a handle of the sink: the last one to go trims the live file.
    drop(dispatch);
    sink.close()?;

    let mut names: Vec<String> = std::fs::read_dir(dir.path())?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    let mut rolled = 0;
    for name in names.iter().filter(|n| n.starts_with("service.log")) {
        let text = std::fs::read_to_string(dir.path().join(name))?;
        let whole = text.lines().all(|line| {
            line.starts_with(" INFO tracing_sink: request served thread=") && line.contains(" n=")
        });
        if !whole || !text.ends_with('\n') {
            return Err(format!("{name} holds a line that is not whole").into());
        }
        println!(
            "{name}: {} lines, {} bytes",
            text.lines().count(),
            text.len()
        );
        rolled += usize::from(name != "service.log");
    }
    println!(
        "tracing_sink: {} events, plog kept {}, the live file and {rolled} rolled files, every line whole",
        THREADS * EVENTS,
        log.reader().count()
    );
    Ok(())
}
