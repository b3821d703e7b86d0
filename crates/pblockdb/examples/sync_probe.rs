//! Synced one-put commits on a database of 100,000 records, for timing their syncs with
//! `strace -T -e trace=msync,fdatasync`: `sync_probe PATH COUNT [mapped|write|unmapped]`.

use pblockdb::{DbOptions, Durability, Storage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: sync_probe PATH [COUNT]")?;
    let n: u64 = args.next().map_or(Ok(100), |c| c.parse())?;
    let storage = match args.next().as_deref() {
        None | Some("mapped") => Storage::Mapped,
        Some("write") => Storage::Write,
        Some("unmapped") => Storage::Unmapped,
        Some(other) => return Err(format!("unknown storage {other}").into()),
    };
    let _ = std::fs::remove_file(&path);
    let db = DbOptions::new(16, 64)
        .capacity(100_000)
        .storage(storage)
        .open(&path)?;
    db.write(|txn| {
        for i in 0..100_000u64 {
            txn.put(&i.to_le_bytes(), &[b'v'; 64])?;
        }
        Ok(())
    })?;
    db.flush()?;
    eprintln!("filled");
    let start = std::time::Instant::now();
    for i in 0..n {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Synced);
        txn.put(&(i * 7919 % 100_000).to_le_bytes(), &[b'w'; 64])?;
        txn.commit()?;
    }
    eprintln!(
        "{:.1} us a synced commit",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
