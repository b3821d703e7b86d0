//! Replaces records of a database of 100,000, one put a transaction, for counting a put's
//! instructions under callgrind (which load on the machine does not change) and for `perf`:
//!
//! ```text
//! cargo build --release -p pblockdb --example put_n
//! valgrind --tool=callgrind --toggle-collect='put_n::measured' \
//!     target/release/examples/put_n /tmp/p.pdb 20000
//! ```
//!
//! 100,000 keys of 16 bytes with 64-byte values are put first (outside `measured`), as the
//! `put_replace` benchmark does; then `measured` replaces random ones with `Db::put`
//! (`Durability::Buffered`). Instructions per put: the `measured` total divided by the count;
//! it prints the wall time a put too.

use std::hint::black_box;
use std::time::Instant;

use pblockdb::{Db, DbOptions};

/// The key of record `i`.
fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    k[8..].copy_from_slice(&i.to_le_bytes());
    k
}

/// Replaces `n` pseudo-random records, each in its own transaction.
#[inline(never)]
fn measured(db: &Db, n: u64) -> pblockdb::Result<u64> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut replaced = 0;
    for _ in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = state % 100_000;
        let mut value = [b'v'; 64];
        value[..8].copy_from_slice(&state.to_le_bytes());
        replaced += u64::from(db.put(black_box(&key(i)), &value)?);
    }
    Ok(replaced)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: put_n PATH [COUNT]")?;
    let n: u64 = match args.next() {
        Some(count) => count.parse()?,
        None => 20_000,
    };
    let _ = std::fs::remove_file(&path);
    let db = DbOptions::new(16, 64).capacity(100_000).open(&path)?;
    db.write(|txn| {
        for i in 0..100_000 {
            txn.put(&key(i), &[b'v'; 64])?;
        }
        Ok(())
    })?;
    let start = Instant::now();
    let replaced = measured(&db, n)?;
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{n} puts ({replaced} replaced), {ns:.1} ns a put");
    Ok(())
}
