//! Sequential writes through `pmap-stream`, beside their peers, in one run.
//!
//! For 64 B, 4 KiB and 1 MiB chunks, `TOTAL` bytes are written per iteration by:
//! - `memcpy_vec`: `copy_from_slice` into a pre-sized, already touched `Vec` (the limit);
//! - `map_stream`: a growable `MapStream` over a file mapping already that size and touched,
//!   rewound each iteration (the same work as `memcpy_vec`, through the stream);
//! - `memcpy_fresh_pages`: `copy_from_slice` into a new anonymous mapping each iteration, so
//!   every page is faulted in (the limit for writers that touch new memory; a new `Vec` would
//!   not do, the allocator hands back the pages it just freed);
//! - `append_writer`: a new `AppendWriter` on a new file each iteration with 1 MiB of room, so
//!   it grows by doubling over fresh file pages, then `finish` (trim);
//! - `file_fresh_write_all`: `File::write_all` into a new file each iteration (its peer);
//! - `file_write_all`: `std::fs::File::write_all`, rewound each iteration;
//! - `bufwriter_file`: `BufWriter<File>` (8 KiB buffer), rewound, flushed at the end.
//!
//! `-- --test` (criterion's smoke mode) shrinks `TOTAL` so the pass is quick.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use pmap_stream::{AppendOptions, StreamOptions};
use pounds_benches::smoke;

const CHUNKS: [(usize, &str); 3] = [(64, "64B"), (4 << 10, "4KiB"), (1 << 20, "1MiB")];

fn source() -> Vec<u8> {
    (0..1usize << 20)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect()
}

/// Writes `total` bytes to `sink` in `chunk`-sized pieces of `src`.
fn pump(total: usize, chunk: usize, src: &[u8], mut sink: impl FnMut(usize, &[u8])) {
    let mut offset = 0;
    while offset < total {
        let len = chunk.min(total - offset);
        sink(offset, &src[..len]);
        offset += len;
    }
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap()
}

fn bench_stream(c: &mut Criterion) {
    let total: usize = if smoke() { 1 << 20 } else { 8 << 20 };
    let src = source();
    let dir = tempfile::tempdir().unwrap();

    let mut target = vec![0u8; total];
    let mut stream = {
        let path = dir.path().join("stream.bin");
        let mut stream = StreamOptions::new().growable(total).open(&path).unwrap();
        // Touch every page once so that the loop measures copies, as for `target`.
        stream.write_all(&vec![1u8; total]).unwrap();
        stream
    };
    let file = open_rw(&dir.path().join("file.bin"));
    let append_path = dir.path().join("append.bin");
    let fresh_path = dir.path().join("fresh.bin");

    for (chunk, name) in CHUNKS {
        let mut group = c.benchmark_group(format!("stream_write/{name}"));
        group.throughput(Throughput::Bytes(total as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));

        group.bench_function("memcpy_vec", |b| {
            b.iter(|| {
                pump(total, chunk, &src, |at, bytes| {
                    target[at..at + bytes.len()].copy_from_slice(bytes);
                });
                black_box(&target);
            });
        });
        group.bench_function("map_stream", |b| {
            b.iter(|| {
                stream.set_position(0);
                pump(total, chunk, &src, |_, bytes| {
                    stream.write_all(bytes).unwrap()
                });
                black_box(&stream);
            });
        });
        group.bench_function("memcpy_fresh_pages", |b| {
            b.iter(|| {
                let mut fresh = pmap::Map::anonymous(total).unwrap();
                let bytes = fresh.as_mut_slice().unwrap();
                pump(total, chunk, &src, |at, piece| {
                    bytes[at..at + piece.len()].copy_from_slice(piece);
                });
                black_box(fresh)
            });
        });
        group.bench_function("append_writer", |b| {
            b.iter_batched(
                || {
                    let _ = fs::remove_file(&append_path);
                },
                |()| {
                    let mut out = AppendOptions::new()
                        .capacity(1 << 20)
                        .open(&append_path)
                        .unwrap();
                    pump(total, chunk, &src, |_, bytes| out.write_all(bytes).unwrap());
                    out.finish().unwrap()
                },
                BatchSize::PerIteration,
            );
        });
        group.bench_function("file_fresh_write_all", |b| {
            b.iter_batched(
                || {
                    let _ = fs::remove_file(&fresh_path);
                },
                |()| {
                    let mut out = File::create(&fresh_path).unwrap();
                    pump(total, chunk, &src, |_, bytes| out.write_all(bytes).unwrap());
                },
                BatchSize::PerIteration,
            );
        });
        group.bench_function("file_write_all", |b| {
            b.iter(|| {
                (&file).seek(SeekFrom::Start(0)).unwrap();
                pump(total, chunk, &src, |_, bytes| {
                    (&file).write_all(bytes).unwrap()
                });
            });
        });
        group.bench_function("bufwriter_file", |b| {
            b.iter(|| {
                (&file).seek(SeekFrom::Start(0)).unwrap();
                let mut out = BufWriter::new(&file);
                pump(total, chunk, &src, |_, bytes| out.write_all(bytes).unwrap());
                out.flush().unwrap();
            });
        });
        group.finish();
    }
    assert_eq!(stream.len(), total as u64);
    stream.finish().unwrap();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_stream(&mut criterion);
    criterion.final_summary();
}
