//! A growable `MapStream` against `std::io::Cursor<Vec<u8>>` as the model: random sequences of
//! writes, seeks, reads and `BufRead` calls give the same results, positions and bytes.
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
        let mut stream = MapStream::open(&path, &StreamOptions::new().growable(capacity)).unwrap();
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
