//! `stream_model`: `MapStream` operations against `std::io::Cursor<Vec<u8>>`, the model it
//! promises to behave like.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use crate::bytes::Bytes;

/// Positions stay under this, so the model's vector stays small.
const MAX_POS: u64 = 1 << 16;

/// Interprets `data` as writes, reads, seeks and flushes on a growable `MapStream` and on a
/// `Cursor<Vec<u8>>` side by side; every result must agree, and at the end (after the stream
/// is finished and the file trimmed) the file must hold the model's bytes.
pub fn stream_model(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.stream");
    let map = pmap::Map::create(&path, 4096).unwrap();
    let mut stream = pmap_stream::MapStream::growable_with_len(map, 0).unwrap();
    let mut model = Cursor::new(Vec::new());
    let mut bytes = Bytes::new(data);
    let mut ops = 0;
    while !bytes.is_empty() && ops < 512 {
        ops += 1;
        match bytes.byte() % 5 {
            0 => {
                let chunk = bytes.slice(300);
                let got = stream.write_all(chunk).map(|()| chunk.len());
                let want = model.write_all(chunk).map(|()| chunk.len());
                assert_eq!(got.ok(), want.ok(), "write of {} bytes", chunk.len());
            }
            1 => {
                let len = usize::from(bytes.u16() % 512);
                let (mut got, mut want) = (vec![0u8; len], vec![0u8; len]);
                let n = stream.read(&mut got).unwrap();
                let m = model.read(&mut want).unwrap();
                assert_eq!(n, m, "read length");
                assert_eq!(got[..n], want[..m], "read bytes");
            }
            2 => {
                let len = usize::from(bytes.u16() % 512);
                let (mut got, mut want) = (vec![0u8; len], vec![0u8; len]);
                let a = stream.read_exact(&mut got).map_err(|e| e.kind());
                let b = model.read_exact(&mut want).map_err(|e| e.kind());
                assert_eq!(a, b, "read_exact");
                if a.is_ok() {
                    assert_eq!(got, want);
                }
            }
            3 => {
                let offset = u64::from(bytes.u16()) % MAX_POS;
                let to = match bytes.byte() % 3 {
                    0 => SeekFrom::Start(offset),
                    1 => SeekFrom::Current(offset as i64 - (MAX_POS / 2) as i64),
                    _ => SeekFrom::End(offset as i64 - (MAX_POS / 2) as i64),
                };
                let a = stream.seek(to).ok();
                let b = model.seek(to).ok();
                assert_eq!(a, b, "seek {to:?}");
                if a.is_none() {
                    // Both refused: the positions must still agree.
                    assert_eq!(stream.stream_position().ok(), model.stream_position().ok());
                }
                if model.position() > MAX_POS {
                    model.set_position(0);
                    stream.seek(SeekFrom::Start(0)).unwrap();
                }
            }
            _ => stream.flush().unwrap(),
        }
    }
    stream.finish().unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        model.into_inner(),
        "file after finish"
    );
}
