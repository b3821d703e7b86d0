//! pmap-stream: an append writer that grows its file by doubling and trims it on finish.
//!
//! `cargo run -p pounds --example stream` prints `stream: wrote 100000 lines, file 3300000 bytes`.

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("out.log");
    let mut writer = pounds::stream::AppendWriter::open(&path)?;
    for i in 0..100_000 {
        writeln!(writer, "line {i:06} of the append writer")?;
    }
    let written = writer.finish()?;
    let on_disk = std::fs::metadata(&path)?.len();
    assert_eq!(written, on_disk, "trimmed to the bytes written");
    println!("stream: wrote 100000 lines, file {on_disk} bytes");
    Ok(())
}
