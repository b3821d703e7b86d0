//! pblockdb: a record table shared by processes, with transactions and snapshots.
//!
//! `cargo run -p pounds --example db` prints `db: 1000 leases, client-0042 holds "until 12:42"`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = pounds::db::DbOptions::new(16, 64)
        .capacity(256) // grows by doubling when full
        .open(dir.path().join("leases.pdb"))?;
    // One transaction: other processes see all 1000 leases or none.
    db.write(|txn| {
        for i in 0..1000 {
            txn.put(
                format!("client-{i:04}").as_bytes(),
                format!("until 12:{:02}", i % 60).as_bytes(),
            )?;
        }
        Ok(())
    })?;
    let snapshot = db.begin_read()?;
    let value = snapshot
        .get(b"client-0042")?
        .ok_or("client-0042 is missing")?;
    println!(
        "db: {} leases, client-0042 holds {:?}",
        snapshot.len()?,
        String::from_utf8_lossy(&value)
    );
    Ok(())
}
