//! Rings: the two views alias, wrap-around at every offset and random operations against a
//! `VecDeque` model (proptest), the full and empty edges, `InfiniteRing`'s overwriting, the
//! buffered reader and writer, one producer and one consumer thread with a checksum of the
//! stream, and ring files: their bytes, reopening, role claims, refused files, and a producer
//! in a second process (the test binary re-run as a child).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use pmap::{Error, InfiniteRing, Ring, RingBufReader, RingBufWriter, RingOptions};
use pounds_testkit::{Rng, child_command, child_role_path, reported, run_child, stress_rounds};
use proptest::prelude::*;

const ROLE: &str = "PMAP_TEST_RING_ROLE";
const FILE: &str = "PMAP_TEST_RING_FILE";
const SEED: u64 = 0x7269_6e67;
/// Bounds every wait on the other end, so that a lost publication fails the test rather than
/// hanging it.
const PATIENCE: Duration = Duration::from_secs(60);
/// The header's head and tail words (docs/pmap.md, "Rings").
const HEAD_OFF: u64 = 128;
const TAIL_OFF: u64 = 256;

fn page() -> usize {
    Ring::new(1).unwrap().capacity()
}

/// FNV-1a over a stream, fed in pieces.
#[derive(Clone, Copy)]
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The first `len` bytes of the seeded stream both ends of the concurrent tests agree on.
fn stream(len: usize) -> Vec<u8> {
    Rng::new(SEED).bytes(len)
}

/// Moves an empty ring's ends to `offset` (mod capacity) without writing a byte.
fn park_at(ring: &mut Ring, offset: usize) {
    ring.feed(offset);
    ring.consume(offset);
    assert!(ring.is_empty());
}

#[test]
fn a_write_through_the_second_view_reads_back_through_the_first() {
    let capacity = page();
    for start in [1, 7, 100, capacity / 2, capacity - 1] {
        let mut ring = Ring::new(capacity).unwrap();
        park_at(&mut ring, start);
        // One writable slice of the whole capacity from `start`: its bytes from
        // `capacity - start` on are at addresses `capacity..capacity + start` (the second view).
        let pattern: Vec<u8> = (0..capacity).map(|i| (i % 251) as u8 + 1).collect();
        let room = ring.writable();
        assert_eq!(room.len(), capacity);
        room.copy_from_slice(&pattern);
        ring.feed(capacity);
        // Leave the last `start` bytes unread: the tail is at offset 0 now, so they are read
        // at addresses `0..start`, the first view, where nothing was written directly.
        ring.consume(capacity - start);
        assert_eq!(
            ring.readable(),
            &pattern[capacity - start..],
            "start {start}"
        );
    }
}

#[test]
fn a_write_through_the_first_view_reads_back_through_the_second() {
    let capacity = page();
    let mut ring = Ring::new(capacity).unwrap();
    // Ten bytes at addresses 0..10 (the first view), read and given back.
    ring.write_all(&[0xab; 10]).unwrap();
    ring.consume(10);
    // The writable slice from offset 10 ends at `capacity + 10`: its last ten bytes are the
    // second view's first ten, which must hold what was written through the first.
    let room = ring.writable();
    assert_eq!(room.len(), capacity);
    assert_eq!(&room[capacity - 10..], &[0xab; 10]);
    assert!(room[..capacity - 10].iter().all(|&b| b == 0));
}

#[test]
fn wrap_around_at_every_offset_reads_back_one_slice() {
    let capacity = page();
    let mut ring = Ring::new(capacity).unwrap();
    let data: Vec<u8> = (0..capacity + 251)
        .map(|i| (i % 241) as u8 ^ 0x5a)
        .collect();
    // From every offset of the ring, a write of the whole capacity: it wraps at every point.
    for offset in 0..capacity {
        let round = &data[offset % 251..][..capacity];
        assert_eq!(ring.write(round).unwrap(), capacity);
        assert_eq!(ring.readable(), round, "offset {offset}");
        let mut back = vec![0; capacity];
        let split = offset % 97;
        ring.read_exact(&mut back[..split]).unwrap();
        ring.read_exact(&mut back[split..]).unwrap();
        assert_eq!(back, round, "offset {offset}");
        assert!(ring.is_empty());
        // The ring is empty at `offset` again: move to the next one.
        park_at(&mut ring, 1);
    }
}

#[test]
fn full_and_empty_edges() {
    let capacity = page();
    let mut ring = Ring::new(capacity).unwrap();
    assert_eq!(ring.capacity(), capacity);
    assert!(ring.is_empty() && !ring.is_full());
    assert_eq!(ring.read(&mut [0; 8]).unwrap(), 0, "empty now: Ok(0)");
    assert!(ring.fill_buf().unwrap().is_empty());
    ring.consume(5);
    assert_eq!(ring.len(), 0, "consume past the readable bytes is clamped");

    park_at(&mut ring, capacity - 1);
    let all: Vec<u8> = (0..capacity).map(|i| (i * 13) as u8).collect();
    assert_eq!(ring.write(&all).unwrap(), capacity);
    assert!(ring.is_full());
    assert_eq!(ring.len(), capacity);
    assert!(ring.writable().is_empty());
    assert_eq!(ring.write(b"x").unwrap(), 0, "a full ring takes nothing");
    assert_eq!(
        ring.write_all(b"x").unwrap_err().kind(),
        io::ErrorKind::WriteZero
    );
    ring.feed(10);
    assert_eq!(
        ring.len(),
        capacity,
        "feed past the writable bytes is clamped"
    );
    assert_eq!(ring.readable(), &all[..], "a full ring is still one slice");

    ring.consume(1);
    assert_eq!(ring.writable_len(), 1);
    assert_eq!(ring.write(b"yz").unwrap(), 1);
    ring.clear();
    assert!(ring.is_empty());
    assert_eq!(ring.writable_len(), capacity);
}

#[test]
fn capacities_are_rounded_up_and_zero_is_refused() {
    let unit = page();
    assert!(unit >= 4096 && unit.is_power_of_two());
    assert_eq!(Ring::new(unit + 1).unwrap().capacity(), 2 * unit);
    assert_eq!(InfiniteRing::new(3).unwrap().capacity(), unit);
    assert!(matches!(Ring::new(0), Err(Error::ZeroLength { .. })));
    assert!(matches!(
        RingOptions::new().ring(),
        Err(Error::ZeroLength { .. })
    ));
    assert!(matches!(
        Ring::new(usize::MAX / 2),
        Err(Error::TooLarge { .. })
    ));
}

#[derive(Debug, Clone)]
enum Op {
    /// `Write::write` of these bytes (takes what fits).
    Write(Vec<u8>),
    /// `writable()`, fill a prefix of this length (reduced to the room) with a byte, `feed`.
    Feed(usize, u8),
    /// `Read::read` into a buffer of this size.
    Read(usize),
    /// Check `readable()` against the model, then `consume` this many.
    Consume(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(Op::Write),
        (0..5000usize, any::<u8>()).prop_map(|(n, b)| Op::Feed(n, b)),
        (0..5000usize).prop_map(Op::Read),
        (0..5000usize).prop_map(Op::Consume),
    ]
}

fn check_against(ring: &Ring, model: &VecDeque<u8>) -> Result<(), TestCaseError> {
    let (a, b) = model.as_slices();
    let readable = ring.readable();
    prop_assert_eq!(readable.len(), model.len());
    prop_assert_eq!(&readable[..a.len()], a);
    prop_assert_eq!(&readable[a.len()..], b);
    prop_assert_eq!(ring.writable_len(), ring.capacity() - model.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(stress_rounds(64, 1)))]

    /// Random writes, feeds, reads and consumes from a random starting offset, against a
    /// `VecDeque` holding what the ring must hold.
    #[test]
    fn ring_matches_a_vecdeque_model(start in 0..8192usize, ops in prop::collection::vec(op(), 1..60)) {
        let mut ring = Ring::new(4096).unwrap();
        let capacity = ring.capacity();
        park_at(&mut ring, start % capacity);
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Write(data) => {
                    let taken = ring.write(&data).unwrap();
                    prop_assert_eq!(taken, data.len().min(capacity - model.len()));
                    model.extend(&data[..taken]);
                }
                Op::Feed(len, byte) => {
                    let room = ring.writable();
                    let len = len.min(room.len());
                    room[..len].fill(byte);
                    ring.feed(len);
                    model.extend(std::iter::repeat_n(byte, len));
                }
                Op::Read(len) => {
                    let mut buf = vec![0; len];
                    let got = ring.read(&mut buf).unwrap();
                    prop_assert_eq!(got, len.min(model.len()));
                    let expected: Vec<u8> = model.drain(..got).collect();
                    prop_assert_eq!(&buf[..got], &expected[..]);
                }
                Op::Consume(len) => {
                    check_against(&ring, &model)?;
                    let len = len.min(model.len());
                    ring.consume(len);
                    model.drain(..len);
                }
            }
            check_against(&ring, &model)?;
        }
    }

    /// The same for `InfiniteRing`, whose model keeps only the newest `capacity` bytes.
    #[test]
    fn infinite_ring_matches_a_vecdeque_model(start in 0..8192usize, ops in prop::collection::vec(op(), 1..60)) {
        let mut ring = InfiniteRing::new(4096).unwrap();
        let capacity = ring.capacity();
        ring.feed(start % capacity);
        ring.clear();
        let mut model: VecDeque<u8> = VecDeque::new();
        let keep_newest = |model: &mut VecDeque<u8>| {
            let excess = model.len().saturating_sub(capacity);
            model.drain(..excess);
        };
        for op in ops {
            match op {
                Op::Write(data) => {
                    prop_assert_eq!(ring.write(&data).unwrap(), data.len());
                    model.extend(&data);
                }
                Op::Feed(len, byte) => {
                    let room = ring.writable();
                    prop_assert_eq!(room.len(), capacity);
                    let len = len.min(capacity);
                    room[..len].fill(byte);
                    ring.feed(len);
                    model.extend(std::iter::repeat_n(byte, len));
                }
                Op::Read(len) => {
                    let mut buf = vec![0; len];
                    let got = ring.read(&mut buf).unwrap();
                    prop_assert_eq!(got, len.min(model.len()));
                    let expected: Vec<u8> = model.drain(..got).collect();
                    prop_assert_eq!(&buf[..got], &expected[..]);
                }
                Op::Consume(len) => {
                    let len = len.min(model.len());
                    ring.consume(len);
                    model.drain(..len);
                }
            }
            keep_newest(&mut model);
            let (a, b) = model.as_slices();
            prop_assert_eq!(ring.len(), model.len());
            prop_assert_eq!(&ring.readable()[..a.len()], a);
            prop_assert_eq!(&ring.readable()[a.len()..], b);
        }
    }
}

#[test]
fn infinite_ring_keeps_the_newest_bytes_of_a_write_longer_than_itself() {
    let mut ring = InfiniteRing::new(1).unwrap();
    let capacity = ring.capacity();
    ring.write_all(b"old").unwrap();
    let long: Vec<u8> = (0..3 * capacity + 5).map(|i| (i % 253) as u8).collect();
    assert_eq!(ring.write(&long).unwrap(), long.len());
    assert_eq!(ring.len(), capacity);
    assert_eq!(ring.readable(), &long[long.len() - capacity..]);
    assert_eq!(ring.written(), (3 + long.len()) as u64);
}

/// A reader that hands out at most `step` bytes per call, so that the buffered reader reads
/// many times and its ring wraps.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.step.min(buf.len()).min(self.data.len());
        buf[..len].copy_from_slice(&self.data[..len]);
        self.data = &self.data[len..];
        Ok(len)
    }
}

#[test]
fn buffered_reader_reads_lines_across_the_wrap_and_grows_its_look_ahead() {
    let text: String = (0..2000)
        .map(|i| format!("line {i} {}\n", "x".repeat(i % 50)))
        .collect();
    let mut reader = RingBufReader::new(
        Trickle {
            data: text.as_bytes(),
            step: 97,
        },
        4096,
    )
    .unwrap();
    let mut lines = 0;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        assert_eq!(line, format!("line {lines} {}\n", "x".repeat(lines % 50)));
        lines += 1;
        line.clear();
    }
    assert_eq!(lines, 2000);

    // Look-ahead: fill_more appends behind what is buffered, one slice, until full.
    let data = stream(3 * 4096);
    let mut reader = RingBufReader::new(
        Trickle {
            data: &data,
            step: 1000,
        },
        4096,
    )
    .unwrap();
    let capacity = reader.capacity();
    reader.consume(0);
    assert_eq!(reader.fill_buf().unwrap().len(), 1000);
    reader.consume(999);
    while reader.fill_more().unwrap() > 0 {}
    assert_eq!(reader.buffer().len(), capacity, "filled to the capacity");
    assert_eq!(reader.buffer(), &data[999..999 + capacity]);
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, &data[999..]);
}

/// A writer that records each write it is given.
#[derive(Default)]
struct Recorder {
    writes: Vec<Vec<u8>>,
    flushes: usize,
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn buffered_writer_gathers_writes_and_passes_large_ones_through() {
    let mut writer = RingBufWriter::new(Recorder::default(), 4096).unwrap();
    let capacity = writer.capacity();
    let data = stream(3 * capacity + 100);
    // Small writes gather until the ring is full, then leave as one write of the ring's slice
    // (which wraps after the first round: still one write).
    let mut sent = 0;
    for piece in data[..2 * capacity + 100].chunks(100) {
        writer.write_all(piece).unwrap();
        sent += piece.len();
        assert_eq!(
            writer.buffer().len() + writer.get_ref().writes.concat().len(),
            sent
        );
    }
    assert!(writer.get_ref().writes.iter().all(|w| w.len() > 100));
    // A write as large as the ring goes straight through after the buffered bytes.
    let large = &data[2 * capacity + 100..];
    assert_eq!(large.len(), capacity);
    writer.write_all(large).unwrap();
    assert!(writer.buffer().is_empty());
    assert_eq!(writer.get_ref().writes.last().unwrap(), large);
    writer.flush().unwrap();
    assert_eq!(writer.get_ref().flushes, 1);
    let out = writer.into_inner().unwrap();
    assert_eq!(out.writes.concat(), data);

    // Dropping writes out what is buffered.
    let mut sink = Vec::new();
    {
        let mut writer = RingBufWriter::new(&mut sink, 4096).unwrap();
        writer.write_all(b"kept on drop").unwrap();
    }
    assert_eq!(sink, b"kept on drop");
}

/// Waits for `ready` by spinning (the other end runs on another core or gets this one on the
/// yield), failing after `PATIENCE`.
fn spin_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::yield_now();
    }
}

/// Writes `total` bytes of the seeded stream into `producer` in pieces of random sizes, half
/// through `Write`, half through `writable`/`feed`, and returns the stream's checksum.
fn produce(producer: &mut impl RingEnd, total: usize) -> u64 {
    let data = stream(total);
    let mut rng = Rng::new(SEED ^ 1);
    let mut sum = Checksum::new();
    let mut at = 0;
    while at < total {
        let want = (1 + rng.below(3000) as usize).min(total - at);
        let mut room = 0;
        spin_until("room in the ring", || {
            room = producer.room();
            room > 0
        });
        let len = want.min(room);
        producer.put(&data[at..at + len], rng.below(2) == 0);
        sum.add(&data[at..at + len]);
        at += len;
    }
    sum.0
}

/// What `produce` needs of a producer.
trait RingEnd {
    fn room(&self) -> usize;
    fn put(&mut self, bytes: &[u8], by_slice: bool);
}

impl RingEnd for pmap::RingProducer {
    fn room(&self) -> usize {
        self.writable_len()
    }

    fn put(&mut self, bytes: &[u8], by_slice: bool) {
        if by_slice {
            self.writable()[..bytes.len()].copy_from_slice(bytes);
            self.feed(bytes.len());
        } else {
            assert_eq!(self.write(bytes).unwrap(), bytes.len());
        }
    }
}

/// Reads `total` bytes from `consumer`, checking each against the seeded stream, and returns
/// the checksum of what it read.
fn consume_stream(consumer: &mut pmap::RingConsumer, total: usize) -> u64 {
    let data = stream(total);
    let mut rng = Rng::new(SEED ^ 2);
    let mut sum = Checksum::new();
    let mut at = 0;
    let mut buf = vec![0; 5000];
    while at < total {
        spin_until("bytes in the ring", || !consumer.is_empty());
        let got = if rng.below(2) == 0 {
            let readable = consumer.readable();
            let len = readable.len().min(1 + rng.below(5000) as usize);
            assert_eq!(readable[..len], data[at..at + len], "at {at}");
            sum.add(&readable[..len]);
            consumer.consume(len);
            len
        } else {
            let want = 1 + rng.below(buf.len() as u64) as usize;
            let len = consumer.read(&mut buf[..want]).unwrap();
            assert_eq!(buf[..len], data[at..at + len], "at {at}");
            sum.add(&buf[..len]);
            len
        };
        at += got;
    }
    assert!(consumer.is_empty(), "nothing past the end of the stream");
    sum.0
}

#[test]
fn concurrent_producer_and_consumer_threads_pass_the_stream_intact() {
    let rounds = stress_rounds(2, 1);
    for _ in 0..rounds {
        let ring = Ring::new(4096).unwrap();
        // Many laps of a small ring, so that both ends wait on each other often.
        let total = 200 * ring.capacity() + 123;
        let (mut producer, mut consumer) = ring.split();
        let (sent, received) = std::thread::scope(|s| {
            let writer = s.spawn(move || produce(&mut producer, total));
            let received = consume_stream(&mut consumer, total);
            (writer.join().unwrap(), received)
        });
        assert_eq!(sent, received);
    }
}

#[test]
fn a_ring_file_holds_the_data_after_one_header_unit_and_aliases_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alias.ring");
    let mut ring = RingOptions::new().capacity(4096).open(&path).unwrap();
    let capacity = ring.capacity();
    let unit = page();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        (unit + capacity) as u64
    );
    assert_eq!(ring.path(), path);
    park_at(&mut ring, capacity - 4);
    ring.write_all(b"abcdefgh").unwrap();
    // The last four went through the second view: in the file they are at the data's start.
    let file = std::fs::read(&path).unwrap();
    assert_eq!(&file[unit + capacity - 4..], b"abcd");
    assert_eq!(&file[unit..unit + 4], b"efgh");
    assert_eq!(&file[..8], b"PMAPRING");
}

#[test]
fn a_ring_file_whose_creation_was_cut_short_is_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeros.ring");
    let unit = page();
    // What a creator that died after sizing the file and before writing the header leaves.
    std::fs::write(&path, vec![0; 3 * unit]).unwrap();
    let mut ring = RingOptions::new().must_exist().open(&path).unwrap();
    assert_eq!(ring.capacity(), 2 * unit, "the capacity the length gives");
    ring.write_all(b"usable").unwrap();
    drop(ring);
    assert_eq!(&std::fs::read(&path).unwrap()[..8], b"PMAPRING");
}

#[test]
fn a_reopened_ring_file_keeps_its_unread_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.ring");
    {
        let mut ring = RingOptions::new().capacity(4096).open(&path).unwrap();
        park_at(&mut ring, 100);
        ring.write_all(b"left for later").unwrap();
        let mut first = [0u8; 5];
        ring.read_exact(&mut first).unwrap();
    }
    let mut ring = RingOptions::new().must_exist().open(&path).unwrap();
    let mut rest = String::new();
    ring.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "for later");
}

#[test]
fn each_end_of_a_ring_file_has_one_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.ring");
    let options = RingOptions::new().capacity(4096);
    let producer = options.open_producer(&path).unwrap();
    let consumer = options.open_consumer(&path).unwrap();
    let me = std::process::id();
    for taken in [
        options.open_producer(&path).map(drop),
        options.open(&path).map(drop),
    ] {
        match taken {
            Err(Error::RingRoleTaken { role, pid, .. }) => {
                assert_eq!((role, pid), ("producer", me));
            }
            other => panic!("a second producer: {other:?}"),
        }
    }
    assert!(matches!(
        options.open_consumer(&path),
        Err(Error::RingRoleTaken {
            role: "consumer",
            ..
        })
    ));
    drop(producer);
    let producer = options.open_producer(&path).unwrap();
    drop((producer, consumer));
    options.open(&path).unwrap();
}

/// Writes `value` as the header word at `offset` of a ring file, as a peer (or corruption)
/// would.
fn poke(path: &Path, offset: u64, value: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    // tidy:host-endian: the ring header's words are host-order atomics (docs/pmap.md).
    file.write_all_at(&value.to_ne_bytes(), offset).unwrap();
}

#[test]
fn files_that_are_not_rings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let unit = page();
    let refused = |name: &str, bytes: &[u8], options: RingOptions| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let outcome = options.open(&path).map(drop);
        assert!(
            matches!(outcome, Err(Error::RingFile { .. })),
            "{name}: {outcome:?}"
        );
        // Refused files are left as they were.
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
    };
    let options = RingOptions::new();
    refused("short.ring", &vec![0; unit], options.clone());
    refused("ragged.ring", &vec![0; 2 * unit + 1], options.clone());
    let mut text = vec![b'x'; 2 * unit];
    text[..5].copy_from_slice(b"hello");
    refused("text.ring", &text, options.clone());

    let path = dir.path().join("good.ring");
    drop(RingOptions::new().capacity(2 * unit).open(&path).unwrap());
    let good = std::fs::read(&path).unwrap();
    refused(
        "other-capacity.ring",
        &good,
        RingOptions::new().capacity(unit),
    );
    let mut torn = good.clone();
    torn[0] ^= 1;
    refused("magic.ring", &torn, options.clone());

    // Counters further apart than the capacity: refused at open.
    let apart = dir.path().join("apart.ring");
    std::fs::write(&apart, &good).unwrap();
    poke(&apart, HEAD_OFF, (2 * unit + 1) as u64);
    assert!(matches!(
        RingOptions::new().open(&apart),
        Err(Error::RingFile { .. })
    ));
    assert!(matches!(
        RingOptions::new()
            .must_exist()
            .open(dir.path().join("absent.ring")),
        Err(Error::NotFound { .. })
    ));
    // A new ring without a capacity is refused before the file is made.
    let absent = dir.path().join("no-capacity.ring");
    assert!(matches!(
        RingOptions::new().open_producer(&absent),
        Err(Error::ZeroLength { .. })
    ));
    assert!(!absent.exists());
}

#[test]
fn a_peer_that_breaks_the_counters_gets_errors_not_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.ring");
    let mut consumer = RingOptions::new()
        .capacity(4096)
        .open_consumer(&path)
        .unwrap();
    let mut producer = RingOptions::new().open_producer(&path).unwrap();
    let capacity = producer.capacity() as u64;
    producer.write_all(b"fine").unwrap();
    // The "producer" publishes a head far past the tail, as a broken peer could.
    poke(&path, HEAD_OFF, 10 * capacity);
    assert_eq!(consumer.readable_len(), 0);
    assert!(consumer.readable().is_empty());
    assert_eq!(
        consumer.read(&mut [0; 4]).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    // And a tail past the head leaves the producer no room once it loads it (`writable` does).
    poke(&path, HEAD_OFF, 4);
    poke(&path, TAIL_OFF, 4 + 2 * capacity);
    assert_eq!(producer.writable_len(), 0);
    assert!(producer.writable().is_empty());
    assert_eq!(producer.write(b"x").unwrap(), 0);
}

/// The child's side of the process tests: does nothing unless started by a parent test.
#[test]
fn processes_ring_child() {
    let Some((role, path)) = child_role_path(ROLE, FILE) else {
        return;
    };
    match role.as_str() {
        "produce" => {
            let mut producer = RingOptions::new()
                .must_exist()
                .open_producer(&path)
                .unwrap();
            let total = 50 * producer.capacity() + 77;
            let sum = produce(&mut producer, total);
            println!("TOTAL={total} SUM={sum}");
        }
        "die-holding" => {
            let producer = RingOptions::new()
                .must_exist()
                .open_producer(&path)
                .unwrap();
            // Leaves without dropping it, as a killed process would: the claim stays.
            std::mem::forget(producer);
            std::process::exit(0);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn processes_a_ring_file_written_by_a_child_is_read_by_the_parent() {
    if child_role_path(ROLE, FILE).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("across.ring");
    let mut consumer = RingOptions::new()
        .capacity(4096)
        .open_consumer(&path)
        .unwrap();
    let capacity = consumer.capacity();
    let child = child_command("processes_ring_child")
        .env(ROLE, "produce")
        .env(FILE, &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Fifty laps: the child has to wait for this process to read, many times.
    let total = 50 * capacity + 77;
    let sum = consume_stream(&mut consumer, total);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the producer child failed: {:?}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(reported(&stdout, "TOTAL="), total as u64);
    assert_eq!(reported(&stdout, "SUM="), sum);
}

#[test]
fn processes_a_dead_processes_end_is_taken_over() {
    if child_role_path(ROLE, FILE).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orphan.ring");
    drop(RingOptions::new().capacity(4096).open(&path).unwrap());
    // `run_child` waits for (and so reaps) the child: its pid names no process any more.
    run_child(
        child_command("processes_ring_child")
            .env(ROLE, "die-holding")
            .env(FILE, &path),
        "claim holder",
    );
    let mut producer = RingOptions::new().open_producer(&path).unwrap();
    producer.write_all(b"after").unwrap();
}
