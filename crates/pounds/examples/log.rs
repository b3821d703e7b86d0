//! plog: a flight recorder written by threads, followed live, dumped as JSON lines.
//!
//! `cargo run -p pounds --example log` prints `log: followed 4000 records, lost 0` and the
//! newest record as a JSON line.

use std::sync::Arc;

use pounds::log::{Filter, FollowOptions, Format, Level, Log};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log = Arc::new(Log::open(dir.path().join("service.plog"))?);
    // A follower, as another process would run it: it wakes as records are published.
    let mut follower = log.follow(FollowOptions::new())?;
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..1000 {
                    let _ = log.write(Level::Info, &format!("worker-{t}"), format!("job {i} done"));
                }
            })
        })
        .collect();
    let mut followed = 0;
    while followed < 4000 {
        match follower.next_ref_timeout(std::time::Duration::from_secs(10)) {
            Some(_) => followed += 1,
            None => break,
        }
    }
    for writer in writers {
        writer.join().map_err(|_| "a writer panicked")?;
    }
    println!("log: followed {followed} records, lost {}", follower.lost());
    let mut newest = Vec::new();
    let id = log.stats().next_id.saturating_sub(1);
    log.dump(&mut newest, &Filter::all(), Some(id), Format::Json)?;
    print!("{}", String::from_utf8_lossy(&newest));
    Ok(())
}
