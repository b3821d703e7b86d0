//! pmap's double-mapped `Ring` beside `VecDeque<u8>` and the `vmap` crate's `Ring`, in one run.
//!
//! For 64 B and 4 KiB chunks, `TOTAL` bytes pass through a 64 KiB buffer per iteration: write
//! one chunk, read one chunk back into a scratch buffer, again and again, with the buffer kept
//! half full (filled to 32 KiB before the clock starts), so that the writes and reads cross the
//! wrap regularly. Every peer is driven through `std::io::Write::write_all` and
//! `Read::read_exact`:
//! - `pmap_ring`: `pmap::Ring` (the `io` traits);
//! - `pmap_ring_slices`: the same ring through `writable`/`feed` and `readable`/`consume`
//!   (one `copy_from_slice` each way, the API a zero-copy user has);
//! - `vecdeque`: `VecDeque<u8>` with a capacity of 64 KiB (its `Write` and `Read`: two
//!   copies at the wrap);
//! - `vmap_ring`: `vmap::io::Ring` of 64 KiB (also double-mapped).
//!
//! `-- --test` (criterion's smoke mode) shrinks `TOTAL` so the pass is quick.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use pounds_benches::smoke;

const CAPACITY: usize = 64 << 10;
const CHUNKS: [(usize, &str); 2] = [(64, "64B"), (4 << 10, "4KiB")];

/// Passes `total` bytes through `buffer` in `chunk`-sized writes, each followed by a read of
/// one chunk; `buffer` holds half its capacity throughout.
fn pump<B: Read + Write>(buffer: &mut B, total: usize, src: &[u8], dst: &mut [u8]) {
    let chunk = src.len();
    let mut moved = 0;
    while moved < total {
        buffer.write_all(src).unwrap();
        buffer.read_exact(dst).unwrap();
        moved += chunk;
    }
}

fn half_full<B: Write>(mut buffer: B) -> B {
    buffer.write_all(&vec![7u8; CAPACITY / 2]).unwrap();
    buffer
}

fn bench_ring(c: &mut Criterion) {
    let total: usize = if smoke() { 256 << 10 } else { 16 << 20 };
    for (chunk, name) in CHUNKS {
        let src: Vec<u8> = (0..chunk).map(|i| (i * 31) as u8).collect();
        let mut dst = vec![0u8; chunk];
        let mut group = c.benchmark_group(format!("ring_write_read/{name}"));
        group.throughput(Throughput::Bytes(total as u64));
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));

        let mut ring = half_full(pmap::Ring::new(CAPACITY).unwrap());
        assert_eq!(ring.capacity(), CAPACITY);
        group.bench_function("pmap_ring", |b| {
            b.iter(|| pump(&mut ring, total, &src, &mut dst));
        });
        group.bench_function("pmap_ring_slices", |b| {
            b.iter(|| {
                let mut moved = 0;
                while moved < total {
                    ring.writable()[..chunk].copy_from_slice(&src);
                    ring.feed(chunk);
                    dst.copy_from_slice(&ring.readable()[..chunk]);
                    ring.consume(chunk);
                    moved += chunk;
                }
                black_box(&dst);
            });
        });
        assert_eq!(ring.len(), CAPACITY / 2);

        let mut deque = half_full(VecDeque::<u8>::with_capacity(CAPACITY));
        group.bench_function("vecdeque", |b| {
            b.iter(|| pump(&mut deque, total, &src, &mut dst));
        });
        assert!(deque.capacity() < 2 * CAPACITY, "the deque never grew");

        let mut vmap_ring = half_full(vmap::io::Ring::new(CAPACITY).unwrap());
        group.bench_function("vmap_ring", |b| {
            b.iter(|| pump(&mut vmap_ring, total, &src, &mut dst));
        });
        group.finish();
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_ring(&mut criterion);
    criterion.final_summary();
}
