//! Reads back the records of a default log, for counting a read's instructions under callgrind,
//! which load on the machine does not change:
//!
//! ```text
//! cargo build --release -p plog --example read_n
//! valgrind --tool=callgrind --toggle-collect='read_n::measured' \
//!     target/release/examples/read_n /tmp/r.plog 10
//! ```
//!
//! One lap of the ring is written with 64-byte records first (outside `measured`), then
//! `measured` reads the whole ring COUNT times (default 10) with a fresh `Reader` from the oldest
//! record (`Reader::next_ref`, one validation per record). Instructions per read: the `measured`
//! total divided by the records it prints (it prints the wall time a record too, for A/B runs
//! of two builds, alternated). A third argument picks the path: `reader` (the
//! default), `follower` (a follower from the start, batched validation, `Follower::next_ref`) or
//! `dump` (`Log::dump` as JSON lines into `std::io::sink`). A fourth argument, LANES (default
//! 1), makes a laned log whose lanes are written in turn, read merged; a fifth, `lane0`, writes
//! only lane 0 of it instead (one busy writer, the other lanes empty).

use std::hint::black_box;

use plog::{Filter, FollowOptions, Format, Level, Log, LogOptions};

/// Which read path `measured` takes.
#[derive(Clone, Copy)]
enum Path {
    Reader,
    Follower,
    Dump,
}

/// Reads the ring `rounds` times and returns the records read.
#[inline(never)]
fn measured(log: &Log, rounds: u64, path: Path) -> plog::Result<u64> {
    let mut records = 0;
    let ring = log.stats().blocks;
    for _ in 0..rounds {
        match path {
            Path::Reader => {
                let mut reader = log.reader();
                while let Some(record) = reader.next_ref() {
                    black_box(record.payload);
                    records += 1;
                }
            }
            Path::Follower => {
                let mut follower = log.follow(FollowOptions::new().from_start())?;
                for _ in 0..ring {
                    if let Some(record) = follower.next_ref() {
                        black_box(record.payload);
                        records += 1;
                    }
                }
            }
            Path::Dump => {
                let summary = log.dump(&mut std::io::sink(), &Filter::all(), None, Format::Json)?;
                records += summary.written;
            }
        }
    }
    Ok(records)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: read_n PATH [COUNT] [reader|follower|dump] [LANES] [turns|lane0]")?;
    let rounds: u64 = match args.next() {
        Some(count) => count.parse()?,
        None => 10,
    };
    let path_kind = match args.next().as_deref() {
        None | Some("reader") => Path::Reader,
        Some("follower") => Path::Follower,
        Some("dump") => Path::Dump,
        Some(other) => return Err(format!("unknown path {other}: reader, follower or dump").into()),
    };
    let lanes: u32 = match args.next() {
        Some(lanes) => lanes.parse()?,
        None => 1,
    };
    let one_lane_busy = match args.next().as_deref() {
        None | Some("turns") => false,
        Some("lane0") => true,
        Some(other) => return Err(format!("unknown writing {other}: turns or lane0").into()),
    };
    let _ = std::fs::remove_file(&path);
    let mut msg = [b'x'; 64];
    msg[..20].copy_from_slice(b"request 12345 served");
    let log = LogOptions::new().lanes(lanes).open(&path)?;
    for i in 0..log.stats().blocks {
        let lane = if one_lane_busy {
            0
        } else {
            usize::try_from(i % u64::from(lanes))?
        };
        plog::testing::write_in_lane(&log, lane, Level::Info, "bench", &msg)?;
    }
    let start = std::time::Instant::now();
    let records = measured(&log, rounds, path_kind)?;
    let elapsed = start.elapsed();
    println!(
        "{records} records read, {:.1} ns a record",
        elapsed.as_nanos() as f64 / records.max(1) as f64
    );
    Ok(())
}
