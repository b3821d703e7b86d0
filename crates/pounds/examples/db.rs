//! pblockdb: a fixed-record table shared by processes, with a user header and lookups by key.
//!
//! `cargo run -p pounds --example db` prints `db: 1000 leases, client-0042 holds "until 12:42"`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = pounds::db::DbOptions::new(16, 64)
        .capacity(256) // grows by doubling when full
        .open(dir.path().join("leases.pdb"))?;
    for i in 0..1000 {
        db.put(
            format!("client-{i:04}").as_bytes(),
            format!("until 12:{:02}", i % 60).as_bytes(),
        )?;
    }
    let value = db.get(b"client-0042")?.ok_or("client-0042 is missing")?;
    let value = String::from_utf8_lossy(&value);
    println!(
        "db: {} leases, client-0042 holds {:?}",
        db.len(),
        value.trim_end_matches('\0')
    );
    Ok(())
}
