//! Reads keys of a small database, for counting a get's instructions under callgrind, which load
//! on the machine does not change:
//!
//! ```text
//! cargo build --release -p pblockdb --example get_n
//! valgrind --tool=callgrind --toggle-collect='get_n::measured' \
//!     target/release/examples/get_n /tmp/g.pdb 100000
//! ```
//!
//! 1,000 keys of 16 bytes with 64-byte values are put first (outside `measured`), then `measured`
//! gets them in turn through `Db::get_with` (no allocation per get). Instructions per get: the
//! `measured` total divided by the count.

use std::hint::black_box;

use pblockdb::{Db, DbOptions};

/// The key of record `i`.
fn key(i: u64) -> [u8; 16] {
    let mut key = *b"key-000000000000";
    key[4..].copy_from_slice(format!("{:012}", i % 1000).as_bytes());
    key
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
    let path = args.next().ok_or("usage: get_n PATH [COUNT]")?;
    let n: u64 = match args.next() {
        Some(count) => count.parse()?,
        None => 100_000,
    };
    let _ = std::fs::remove_file(&path);
    let db = DbOptions::new(16, 64).capacity(2048).open(&path)?;
    let keys: Vec<[u8; 16]> = (0..1000).map(key).collect();
    db.write(|txn| {
        for k in &keys {
            txn.put(k, &[7u8; 64])?;
        }
        Ok(())
    })?;
    let total = measured(&db, &keys, n)?;
    println!("{n} gets, {total} value bytes");
    Ok(())
}
