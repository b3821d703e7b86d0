//! `plog_file`: any bytes as a log file, opened and read to the end by every reader path.

use std::io::Write;

/// Writes `data` as a log file, then opens it read-only and reads it whole (borrowed and owned
/// records, structured payloads, a JSON and a text dump), then opens it read-write (which may
/// recover or refuse it) and writes and reads back one record. Panics if anything panics, or if
/// a reader yields more records than the file has blocks (unbounded work).
pub fn plog_file(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.plog");
    std::fs::write(&path, data).unwrap();
    // No record is smaller than a 16-byte block.
    let bound = data.len() as u64 / 16 + 1;
    if let Ok(log) = plog::Log::open_read_only(&path) {
        let mut reader = log.reader();
        let mut n = 0u64;
        while let Ok(Some(record)) = reader.try_next_ref() {
            n += 1;
            assert!(n <= bound, "more records than blocks");
            let _ = record.structured();
            for field in record.fields() {
                let _ = field;
            }
            for span in record.spans() {
                let _ = span;
            }
            let owned = record.to_owned();
            let _ = owned.message();
            let _ = owned.to_json_line();
            let _ = owned.to_text_line();
        }
        for format in [plog::Format::Json, plog::Format::Text] {
            let mut out = std::io::sink();
            let _ = log.reader().dump(&mut out, format);
            let _ = out.flush();
        }
        let _ = log.stats();
    }
    if let Ok(log) = plog::Log::open(&path) {
        if let Ok(id) = log.write(plog::Level::Info, "fuzz", b"after") {
            let mut found = false;
            let mut reader = log.reader_from(id);
            let mut n = 0u64;
            while let Ok(Some(record)) = reader.try_next_ref() {
                n += 1;
                assert!(n <= bound + 1, "more records than blocks");
                found |= record.id == id && record.payload == b"after";
            }
            assert!(found, "a record just written was not read back");
        }
    }
}
