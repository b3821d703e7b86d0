//! pmap-stream's `LineSink` beside `BufWriter<File>` and tracing-appender's non-blocking writer
//! (over a `File`, not lossy), one thread writing 64 B lines, in one run.
//!
//! Each iteration writes `LINES` lines into a fresh file in a temporary directory and closes it:
//! - `line_sink`: `LineSink::open` (10 MiB pre-sized), `write_all` per line, `close` (trim);
//! - `bufwriter_file`: `BufWriter<File>` (8 KiB), `write_all` per line, `flush`;
//! - `tracing_appender_nonblocking`: `tracing_appender::non_blocking` with `lossy(false)`,
//!   `write_all` per line, then the guard dropped (its worker writes what is queued).
//!
//! None of them syncs to the disk. `-- --test` (criterion's smoke mode) shrinks `LINES`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use pounds_benches::smoke;

fn line() -> [u8; 64] {
    let mut line = [b'x'; 64];
    line[..20].copy_from_slice(b"2026-01-01T00:00:00 ");
    line[63] = b'\n';
    line
}

fn bench_sink(c: &mut Criterion) {
    let lines: u64 = if smoke() { 1_000 } else { 100_000 };
    let line = line();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sink.log");
    let mut group = c.benchmark_group("sink_64B_lines");
    group.throughput(Throughput::Elements(lines));
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));

    group.bench_function("line_sink", |b| {
        b.iter(|| {
            let _ = std::fs::remove_file(&path);
            let sink = pmap_stream::LineSink::open(&path).unwrap();
            for _ in 0..lines {
                (&sink).write_all(&line).unwrap();
            }
            assert_eq!(sink.close().unwrap(), lines * 64);
        });
    });
    group.bench_function("bufwriter_file", |b| {
        b.iter(|| {
            let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
            for _ in 0..lines {
                out.write_all(&line).unwrap();
            }
            out.flush().unwrap();
        });
    });
    group.bench_function("tracing_appender_nonblocking", |b| {
        b.iter(|| {
            let file = std::fs::File::create(&path).unwrap();
            let (mut out, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(file);
            for _ in 0..lines {
                out.write_all(&line).unwrap();
            }
            drop(guard);
        });
    });
    group.finish();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), lines * 64);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_sink(&mut c);
    c.final_summary();
}
