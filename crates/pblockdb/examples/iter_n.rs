//! Iterates a database of 100,000 records, for counting an iterated record's instructions under
//! callgrind (which load on the machine does not change) and for `perf`:
//!
//! ```text
//! cargo build --release -p pblockdb --example iter_n
//! valgrind --tool=callgrind --toggle-collect='iter_n::measured' \
//!     target/release/examples/iter_n /tmp/i.pdb 10
//! ```
//!
//! 100,000 random 16-byte keys with 64-byte values are put first (outside `measured`), as the
//! `iterate` benchmark does; then `measured` walks every record ROUNDS times with
//! `Db::for_each`. A third argument CHURN first puts and deletes that many fresh keys, one
//! transaction each, as the benchmark's `put_new` and `delete` groups do before `iterate`. Instructions per record: the `measured` total divided by the records it
//! prints; it prints the wall time a record too (for A/B runs of two builds, alternated).

use std::hint::black_box;

use pblockdb::{Db, DbOptions};

/// Walks every record `rounds` times; returns the records seen.
#[inline(never)]
fn measured(db: &Db, rounds: u64) -> pblockdb::Result<u64> {
    let mut seen = 0;
    for _ in 0..rounds {
        db.for_each(|key, value| {
            black_box((key, value));
            seen += 1;
        })?;
    }
    Ok(seen)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: iter_n PATH [ROUNDS [CHURN]]")?;
    let rounds: u64 = match args.next() {
        Some(count) => count.parse()?,
        None => 10,
    };
    let churn: u64 = match args.next() {
        Some(count) => count.parse()?,
        None => 0,
    };
    let _ = std::fs::remove_file(&path);
    let db = DbOptions::new(16, 64).capacity(100_000).open(&path)?;
    // A fixed xorshift sequence: random keys, the same every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    db.write(|txn| {
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&state.to_le_bytes());
            key[8..].copy_from_slice(&state.rotate_left(29).to_le_bytes());
            txn.put(&key, &[7u8; 64])?;
        }
        Ok(())
    })?;
    // The benchmark's `put_new` and `delete` groups run before `iterate`: fresh keys put and
    // deleted again, one transaction each, which leaves tombstones behind.
    for i in 0..churn {
        let mut key = [0xffu8; 16];
        key[..8].copy_from_slice(&i.to_le_bytes());
        db.put(&key, &[1u8; 64])?;
        db.delete(&key)?;
    }
    println!("capacity {}, {} records", db.capacity()?, db.len());
    let start = std::time::Instant::now();
    let seen = measured(&db, rounds)?;
    let elapsed = start.elapsed();
    println!(
        "{seen} records iterated, {:.1} ns a record",
        elapsed.as_nanos() as f64 / seen.max(1) as f64
    );
    Ok(())
}
