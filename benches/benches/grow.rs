//! Growing a file mapping inside reserved address space (in place) beside today's remap, in
//! one run.
//!
//! Each iteration opens a new 64 KiB file mapping and grows it in 64 KiB steps to `TOTAL`,
//! writing one byte into each new page after each step (so each step's new pages are
//! faulted in, as an append writer's are), then re-reads one byte of every page so far every
//! eighth step (a reader of the whole view, which a remap sends through the page faults
//! again):
//! - `in_place`: `MapOptions::reserve_address_space(TOTAL)`: each growth extends the file
//!   and maps the new pages behind the old ones;
//! - `remap`: no reservation: each growth unmaps, extends the file and maps it all again.
//!
//! `-- --test` (criterion's smoke mode) shrinks `TOTAL` so the pass is quick.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use pmap::MapOptions;
use pounds_benches::smoke;

const STEP: usize = 64 << 10;
const PAGE: usize = 4096;

fn grow_and_touch(options: &MapOptions, path: &std::path::Path, total: usize) -> u64 {
    let mut map = options.open(path).unwrap();
    let mut sum = 0u64;
    let mut step = 0;
    while map.len() < total {
        let old = map.len();
        map.grow(old + STEP).unwrap();
        let bytes = map.as_mut_slice().unwrap();
        for at in (old..old + STEP).step_by(PAGE) {
            bytes[at] = 1;
        }
        step += 1;
        if step % 8 == 0 {
            sum += (0..map.len())
                .step_by(PAGE)
                .map(|at| u64::from(map.as_slice()[at]))
                .sum::<u64>();
        }
    }
    black_box(sum)
}

fn bench_grow(c: &mut Criterion) {
    let total: usize = if smoke() { 1 << 20 } else { 16 << 20 };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.bin");
    let mut group = c.benchmark_group("map_grow_64KiB_steps");
    group.throughput(Throughput::Bytes(total as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    let plain = MapOptions::new().size(STEP as u64);
    let reserved = plain.clone().reserve_address_space(total);
    for (name, options) in [("in_place", &reserved), ("remap", &plain)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_file(&path);
                },
                |()| grow_and_touch(options, &path, total),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_grow(&mut criterion);
    criterion.final_summary();
}
