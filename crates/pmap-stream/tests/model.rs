//! `MapStream` against `std::io::Cursor<Vec<u8>>` as the model: random sequences of writes,
//! seeks, reads and `BufRead` calls give the same results, positions and bytes, for a growable
//! stream, a fixed one (writes whole or nothing) and a read-only one (every write refused).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, BufRead, Cursor, Read, Seek, SeekFrom, Write};

use pmap_stream::{MapStream, StreamOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<u8>),
    WriteAll(Vec<u8>),
    Seek(SeekFrom),
    Read(usize),
    ReadExact(usize),
    FillAndConsume(usize),
    ReadUntil(u8),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Op::Write),
        1 => prop::collection::vec(any::<u8>(), 0..5000).prop_map(Op::WriteAll),
        1 => (0u64..3000).prop_map(|n| Op::Seek(SeekFrom::Start(n))),
        1 => (-2000i64..2000).prop_map(|n| Op::Seek(SeekFrom::Current(n))),
        1 => (-2000i64..2000).prop_map(|n| Op::Seek(SeekFrom::End(n))),
        2 => (0usize..400).prop_map(Op::Read),
        1 => (0usize..400).prop_map(Op::ReadExact),
        1 => (0usize..400).prop_map(Op::FillAndConsume),
        1 => any::<u8>().prop_map(Op::ReadUntil),
        1 => Just(Op::Flush),
    ]
}

/// What one operation returned, comparable across the two streams.
#[derive(Debug, PartialEq)]
enum Outcome {
    Count(usize),
    Position(u64),
    Bytes(Vec<u8>),
    Unit,
    Failed(io::ErrorKind),
}

fn apply<S: Read + Write + Seek + BufRead>(stream: &mut S, op: &Op) -> Outcome {
    let result = match op {
        Op::Write(bytes) => stream.write(bytes).map(Outcome::Count),
        Op::WriteAll(bytes) => stream.write_all(bytes).map(|()| Outcome::Unit),
        Op::Seek(from) => stream.seek(*from).map(Outcome::Position),
        Op::Read(len) => {
            let mut buf = vec![0xAA; *len];
            stream.read(&mut buf).map(|n| {
                buf.truncate(n);
                Outcome::Bytes(buf)
            })
        }
        Op::ReadExact(len) => {
            let mut buf = vec![0xAA; *len];
            stream.read_exact(&mut buf).map(|()| Outcome::Bytes(buf))
        }
        Op::FillAndConsume(amt) => stream.fill_buf().map(<[u8]>::to_vec).map(|seen| {
            let amt = (*amt).min(seen.len());
            stream.consume(amt);
            Outcome::Bytes(seen)
        }),
        Op::ReadUntil(byte) => {
            let mut buf = Vec::new();
            stream
                .read_until(*byte, &mut buf)
                .map(|_| Outcome::Bytes(buf))
        }
        Op::Flush => stream.flush().map(|()| Outcome::Unit),
    };
    result.unwrap_or_else(|e| Outcome::Failed(e.kind()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn growable_stream_matches_a_vec_cursor(
        initial in prop::collection::vec(any::<u8>(), 0..2000),
        capacity in 1usize..5000,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, &initial).unwrap();
        let mut stream = StreamOptions::new().growable(capacity).open(&path).unwrap();
        let mut model = Cursor::new(initial);

        for op in &ops {
            let got = apply(&mut stream, op);
            let want = apply(&mut model, op);
            prop_assert_eq!(got, want, "after {:?}", op);
            prop_assert_eq!(stream.stream_position().unwrap(), model.position());
            prop_assert_eq!(stream.len(), model.get_ref().len() as u64);
        }
        prop_assert_eq!(stream.as_slice(), &model.get_ref()[..]);
        prop_assert_eq!(stream.finish().unwrap(), model.get_ref().len() as u64);
        prop_assert_eq!(std::fs::read(&path).unwrap(), model.into_inner());
    }
}

/// The fixed stream's model: a `Cursor` over the initial bytes whose writes are whole or
/// nothing (a write that does not fit is refused with `StorageFull`, and an empty one is always
/// `Ok(0)`), where `Cursor<&mut [u8]>` would write what fits.
struct FixedModel(Cursor<Vec<u8>>);

impl FixedModel {
    fn fits(&self, len: usize) -> bool {
        len == 0 || self.0.position().saturating_add(len as u64) <= self.0.get_ref().len() as u64
    }
}

impl Write for FixedModel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.fits(buf.len()) {
            return Err(io::ErrorKind::StorageFull.into());
        }
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for FixedModel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact(buf)
    }
}

impl BufRead for FixedModel {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.0.consume(amt);
    }
}

impl Seek for FixedModel {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        self.0.seek(from)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn fixed_stream_matches_a_whole_or_nothing_cursor(
        initial in prop::collection::vec(any::<u8>(), 1..3000),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fixed.bin");
        std::fs::write(&path, &initial).unwrap();
        let mut stream = StreamOptions::new().fixed(0).open(&path).unwrap();
        let mut model = FixedModel(Cursor::new(initial.clone()));

        for op in &ops {
            let got = apply(&mut stream, op);
            let want = apply(&mut model, op);
            prop_assert_eq!(got, want, "after {:?}", op);
            prop_assert_eq!(stream.stream_position().unwrap(), model.0.position());
            prop_assert_eq!(stream.len(), initial.len() as u64);
        }
        prop_assert_eq!(stream.as_slice(), &model.0.get_ref()[..]);
        prop_assert_eq!(stream.finish().unwrap(), initial.len() as u64);
        prop_assert_eq!(std::fs::read(&path).unwrap(), model.0.into_inner());
    }

    #[test]
    fn read_only_stream_reads_like_a_cursor_and_refuses_every_write(
        initial in prop::collection::vec(any::<u8>(), 1..3000),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read_only.bin");
        std::fs::write(&path, &initial).unwrap();
        let mut stream = MapStream::open_read_only(&path).unwrap();
        let mut model = Cursor::new(initial.clone());

        for op in &ops {
            let got = apply(&mut stream, op);
            let want = match op {
                Op::Write(_) | Op::WriteAll(_) => Outcome::Failed(io::ErrorKind::PermissionDenied),
                _ => apply(&mut model, op),
            };
            prop_assert_eq!(got, want, "after {:?}", op);
            prop_assert_eq!(stream.stream_position().unwrap(), model.position());
        }
        prop_assert_eq!(stream.finish().unwrap(), initial.len() as u64);
        prop_assert_eq!(std::fs::read(&path).unwrap(), initial);
    }
}
