//! Reads keys of a small database, for counting a get's instructions under callgrind, which load
//! on the machine does not change:
//!
//! ```text
//! cargo build --release -p pblockdb --example get_n
//! valgrind --tool=callgrind --toggle-collect='get_n::measured' \
//!     target/release/examples/get_n /tmp/g.pdb 100000
//! ```
//!
//! KEYS keys (default 1,000) of 16 bytes with 64-byte values are put first (outside `measured`)
//! into a table sized for them as the benchmark sizes its own, then `measured` gets them in a
//! shuffled order through `Db::get_with` (no allocation per get). Instructions per get: the
//! `measured` total divided by the count. It prints the wall time a get too: with 100,000 keys
//! the table outgrows the caches as the `get_hit` benchmark's does, for A/B runs of two builds
//! alternated (`get_n /tmp/g.pdb 3000000 100000`).

use std::hint::black_box;

use pblockdb::{Db, DbOptions};

/// The key of record `i`.
fn key(i: u64) -> [u8; 16] {
    let mut key = *b"key-000000000000";
    key[4..].copy_from_slice(format!("{i:012}").as_bytes());
    key
}

/// `0..n` in an order fixed by a small xorshift generator (Fisher-Yates).
fn shuffled(n: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

/// Gets `n` keys in turn and returns the bytes of the values found.
#[inline(never)]
fn measured(db: &Db, keys: &[[u8; 16]], n: u64) -> pblockdb::Result<usize> {
    let mut total = 0;
    for i in 0..n {
        let key = &keys[(i % keys.len() as u64) as usize];
        total += db
            .get_with(black_box(key), |value| value.len())?
            .unwrap_or(0);
    }
    Ok(total)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: get_n PATH [COUNT [KEYS]]")?;
    let n: u64 = match args.next() {
        Some(count) => count.parse()?,
        None => 100_000,
    };
    let records: u64 = match args.next() {
        Some(records) => records.parse()?,
        None => 1000,
    };
    let _ = std::fs::remove_file(&path);
    let db = DbOptions::new(16, 64).capacity(records).open(&path)?;
    let keys: Vec<[u8; 16]> = shuffled(records).into_iter().map(key).collect();
    db.write(|txn| {
        for k in &keys {
            txn.put(k, &[7u8; 64])?;
        }
        Ok(())
    })?;
    let started = std::time::Instant::now();
    let total = measured(&db, &keys, n)?;
    let per_get = started.elapsed().as_nanos() as f64 / n as f64;
    println!("{n} gets, {total} value bytes, {per_get:.1} ns a get");
    Ok(())
}
