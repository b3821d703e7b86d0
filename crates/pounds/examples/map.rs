//! pmap: a file mapping grown by doubling, a shared counter in it, and a checked typed read.
//!
//! `cargo run -p pounds --example map` prints `map: counter 3, 8192 bytes, bad offset refused`.

use std::sync::atomic::Ordering;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("counter.bin");
    // Create the file (4 KiB), share a counter in it, bump it three times.
    let mut map = pounds::map::Map::create(&path, 4096)?.into_shared();
    for _ in 0..3 {
        map.atomic_u64(0)?.fetch_add(1, Ordering::AcqRel);
    }
    // Grow it (the disk blocks are reserved first: a full disk is an error, never a signal).
    map.grow(8192)?;
    let counter = map.load_u64(0, Ordering::Acquire)?;
    // Offsets a file controls are checked: a misaligned atomic is an error, not a crash.
    let refused = map.atomic_u64(3).is_err();
    println!(
        "map: counter {counter}, {} bytes, bad offset {}",
        map.len(),
        if refused { "refused" } else { "accepted" }
    );
    Ok(())
}
