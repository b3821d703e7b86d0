//! Writes 64-byte records into a default log, for counting a write's instructions under
//! callgrind, which load on the machine does not change:
//!
//! ```text
//! cargo build --release -p plog --example write_n
//! valgrind --tool=callgrind --toggle-collect='write_n::measured' \
//!     target/release/examples/write_n /tmp/w.plog 100000
//! ```
//!
//! One lap of the ring is written first (outside `measured`), so that the counted writes find
//! the blocks mapped and each claim word holding the record of the lap before, as in a warm
//! log. Instructions per write: the `measured` total divided by the count.

use std::hint::black_box;

use plog::{Level, Log};

/// Writes `n` records of `msg` and returns the last id.
#[inline(never)]
fn measured(log: &Log, msg: &[u8; 64], n: u64) -> plog::Result<u64> {
    let mut last = 0;
    for _ in 0..n {
        last = log.write(Level::Info, "bench", black_box(msg))?;
    }
    Ok(last)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: write_n PATH [COUNT]")?;
    let n: u64 = match args.next() {
        Some(count) => count.parse()?,
        None => 100_000,
    };
    let mut msg = [b'x'; 64];
    msg[..20].copy_from_slice(b"request 12345 served");
    let log = Log::open(&path)?;
    let lap = log.stats().blocks;
    for _ in 0..lap {
        log.write(Level::Info, "bench", black_box(&msg))?;
    }
    let last = measured(&log, &msg, n)?;
    println!("wrote {n} records after a lap of {lap}; last id {last}");
    Ok(())
}
