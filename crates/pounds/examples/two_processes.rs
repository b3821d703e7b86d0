//! Two processes sharing a log and a database: a child (this program again) writes records and
//! puts keys while the parent follows the log live; then the parent reads the child's keys.
//!
//! `cargo run -p pounds --example two_processes` prints
//! `two_processes: followed 1000 records from pid N, read 100 keys the child put`.

use std::process::Command;
use std::time::Duration;

use pounds::db::DbOptions;
use pounds::log::{FollowOptions, Level, Log};

const CHILD: &str = "POUNDS_EXAMPLE_CHILD_DIR";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(dir) = std::env::var(CHILD) {
        return child(std::path::Path::new(&dir));
    }
    let dir = tempfile::tempdir()?;
    let log = Log::open(dir.path().join("shared.plog"))?;
    drop(DbOptions::new(16, 32).open(dir.path().join("shared.pdb"))?);
    let mut follower = log.follow(FollowOptions::new())?;
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD, dir.path())
        .spawn()?;
    let (mut followed, mut pid) = (0, 0);
    while followed < 1000 {
        let Some(record) = follower.next_ref_timeout(Duration::from_secs(20)) else {
            break;
        };
        pid = record.pid;
        followed += 1;
    }
    if !child.wait()?.success() {
        return Err("the child failed".into());
    }
    let db = pounds::db::Db::open(dir.path().join("shared.pdb"))?;
    let keys = (0..100)
        .filter(|i| db.contains(format!("key-{i}").as_bytes()).unwrap_or(false))
        .count();
    println!(
        "two_processes: followed {followed} records from pid {pid}, read {keys} keys the child put"
    );
    Ok(())
}

fn child(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let log = Log::open(dir.join("shared.plog"))?;
    let db = pounds::db::Db::open(dir.join("shared.pdb"))?;
    for i in 0..1000 {
        log.write(Level::Info, "child", format!("record {i}"))?;
        if i % 10 == 0 {
            db.put(format!("key-{}", i / 10).as_bytes(), b"from the child")?;
        }
    }
    Ok(())
}
