//! pmap-stream's `LineSink` beside `BufWriter<File>` and tracing-appender's writers, 64 B
//! lines, in one run.
//!
//! Each iteration writes `LINES` lines into a fresh file in a temporary directory and closes it.
//! Group `sink_64B_lines`, one thread:
//! - `line_sink`: `LineSink::open` (10 MiB pre-sized), `write_all` per line, `close` (trim);
//! - `line_sink_rolling_1MiB`: the same rolling every 1 MiB (six rolls of 100,000 lines, each
//!   trimming, renaming and pre-sizing a new 1 MiB file), newest four kept;
//! - `bufwriter_file`: `BufWriter<File>` (8 KiB), `write_all` per line, `flush`;
//! - `tracing_appender_nonblocking`: `tracing_appender::non_blocking` with `lossy(false)`,
//!   `write_all` per line, then the guard dropped (its worker writes what is queued);
//! - `tracing_appender_rolling_hourly`: `tracing_appender::rolling::hourly`, its rolling file
//!   writer (it rolls by time only, so no roll in the run: a clock read and a `write(2)` per
//!   line).
//!
//! Group `sink_64B_lines_1000`: `line_sink` and `bufwriter_file` as above with 1,000 lines.
//!
//! Group `sink_64B_lines_two_threads`: two threads write `LINES / 2` lines each into one
//! shared writer: `LineSink` (clones), `Mutex<BufWriter<File>>`, and tracing-appender's
//! `NonBlocking` (clones, one worker).
//!
//! None of them syncs to the disk. `-- --test` (criterion's smoke mode) shrinks `LINES` and
//! the roll size.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput};
use pmap_stream::{LineSinkOptions, Roll};
use pounds_benches::smoke;

fn line() -> [u8; 64] {
    let mut line = [b'x'; 64];
    line[..20].copy_from_slice(b"2026-01-01T00:00:00 ");
    line[63] = b'\n';
    line
}

/// `line_sink`: `lines` copies of `line` through a `LineSink` on a fresh file at `path`, closed
/// (trimmed) at the end.
fn bench_line_sink(group: &mut BenchmarkGroup<'_, WallTime>, path: &Path, lines: u64, line: &[u8]) {
    group.bench_function("line_sink", |b| {
        b.iter(|| {
            let _ = std::fs::remove_file(path);
            let sink = pmap_stream::LineSink::open(path).unwrap();
            for _ in 0..lines {
                (&sink).write_all(line).unwrap();
            }
            assert_eq!(sink.close().unwrap(), lines * line.len() as u64);
        });
    });
}

/// `bufwriter_file`: the same through a `BufWriter<File>`, flushed at the end.
fn bench_bufwriter(group: &mut BenchmarkGroup<'_, WallTime>, path: &Path, lines: u64, line: &[u8]) {
    group.bench_function("bufwriter_file", |b| {
        b.iter(|| {
            let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
            for _ in 0..lines {
                out.write_all(line).unwrap();
            }
            out.flush().unwrap();
        });
    });
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

    bench_line_sink(&mut group, &path, lines, &line);
    let roll_size: u64 = if smoke() { 16 << 10 } else { 1 << 20 };
    group.bench_function("line_sink_rolling_1MiB", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let sink = LineSinkOptions::new()
                    .capacity(roll_size as usize)
                    .roll(Roll::Size(roll_size))
                    .keep(4)
                    .open(dir.path().join("sink.log"))
                    .unwrap();
                for _ in 0..lines {
                    (&sink).write_all(&line).unwrap();
                }
                sink.close().unwrap();
                dir
            },
            BatchSize::PerIteration,
        );
    });
    bench_bufwriter(&mut group, &path, lines, &line);
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
    group.bench_function("tracing_appender_rolling_hourly", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut out = tracing_appender::rolling::hourly(dir.path(), "sink.log");
                for _ in 0..lines {
                    out.write_all(&line).unwrap();
                }
                out.flush().unwrap();
                drop(out);
                dir
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
    // The last writer run left every line (none left a file when a filter skipped them all).
    if let Ok(metadata) = std::fs::metadata(&path) {
        assert_eq!(metadata.len(), lines * 64);
    }
}

/// Two threads, `per_thread` lines each, each through the writer it owns (a clone of one
/// shared writer).
fn two_threads<W: Write + Send>(writers: [W; 2], per_thread: u64, line: &[u8; 64]) {
    std::thread::scope(|scope| {
        for mut writer in writers {
            scope.spawn(move || {
                for _ in 0..per_thread {
                    writer.write_all(line).unwrap();
                }
            });
        }
    });
}

/// A shared `Mutex<BufWriter<File>>` as a writer: one lock per line.
struct Locked<'a>(&'a Mutex<BufWriter<std::fs::File>>);

impl Write for Locked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap().flush()
    }
}

fn bench_two_threads(c: &mut Criterion) {
    let lines: u64 = if smoke() { 1_000 } else { 100_000 };
    let per_thread = lines / 2;
    let line = line();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sink.log");
    let mut group = c.benchmark_group("sink_64B_lines_two_threads");
    group.throughput(Throughput::Elements(lines));
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));

    group.bench_function("line_sink", |b| {
        b.iter(|| {
            let _ = std::fs::remove_file(&path);
            let sink = pmap_stream::LineSink::open(&path).unwrap();
            two_threads([sink.clone(), sink.clone()], per_thread, &line);
            assert_eq!(sink.close().unwrap(), lines * 64);
        });
    });
    group.bench_function("mutex_bufwriter_file", |b| {
        b.iter(|| {
            let out = Mutex::new(BufWriter::new(std::fs::File::create(&path).unwrap()));
            two_threads([Locked(&out), Locked(&out)], per_thread, &line);
            out.into_inner().unwrap().flush().unwrap();
        });
    });
    group.bench_function("tracing_appender_nonblocking", |b| {
        b.iter(|| {
            let file = std::fs::File::create(&path).unwrap();
            let (out, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(file);
            two_threads([out.clone(), out], per_thread, &line);
            drop(guard);
        });
    });
    group.finish();
    // The last writer run left every line (none left a file when a filter skipped them all).
    if let Ok(metadata) = std::fs::metadata(&path) {
        assert_eq!(metadata.len(), lines * 64);
    }
}

/// A small log: 1,000 lines (64 KB, 16 pages) into a fresh file, then closed: what a sink
/// costs when it writes little, or rolls often.
fn bench_small(c: &mut Criterion) {
    let lines: u64 = 1_000;
    let line = line();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sink.log");
    let mut group = c.benchmark_group("sink_64B_lines_1000");
    group.throughput(Throughput::Elements(lines));
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    bench_line_sink(&mut group, &path, lines, &line);
    bench_bufwriter(&mut group, &path, lines, &line);
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_sink(&mut c);
    bench_small(&mut c);
    bench_two_threads(&mut c);
    c.final_summary();
}
