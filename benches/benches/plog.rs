//! `plog` writes beside their peers, in one run, plus latency and follow harnesses.
//!
//! Criterion groups:
//! - `plog_write_64B`: one 64-byte message per iteration, one thread, by
//!   `plog` (`Log::write` into the default 16384 x 128-byte ring, wrapping all the time),
//!   `file_write` (one `write(2)` of a 64-byte line per message on a `File`), and
//!   `bufwriter_flush` (`BufWriter<File>`, flushed after each message: also one `write(2)`);
//!   `system_time_now` is there for scale: the clock plog does *not* read per write;
//!   `plog_lanes` is `plog` on a log of two writer lanes (`LogOptions::lanes`), one thread;
//!   `with_follower` is `plog` while a live follower (`Log::follow`) in another thread reads
//!   the same log as fast as it can: the cost a fast reader puts on the writer.
//! - `plog_write_64B_2threads`: two threads writing together; one iteration is one message in
//!   each thread, so the throughput line is messages per second in total. `plog` writes a
//!   default log (one reservation counter), `plog_lanes` a default-sized log of as many writer
//!   lanes as the machine has processors (rounded up to a power of two, at least 2:
//!   `LogOptions::lanes`), each thread writing to the lane of its processor.
//! - `plog_read_64B`: reading a full default ring of 64-byte records (16384 per iteration):
//!   `reader` (`Log::reader()` as an iterator of owned records), `reader_next_ref` (the same
//!   reader, borrowing each record), `follower_batched` (a follower from the start, borrowing,
//!   which validates 32 records per counter load), and `dump_json` (`Log::dump`
//!   of the ring as JSON lines to `/dev/null`); the throughput line is records per second.
//!
//! - `record_parts`: what a write's parts cost alone, to choose among them: the checksum of a
//!   112-byte record image (`crc32c`, the crate's one serial chain; `crc32c_3way`, the same value
//!   in three interleaved streams, `pmap::crc32c_append`, as plog uses it; `xxh3_64`), and the clock
//!   (`quanta` raw counter, `quanta` scaled, `SystemTime::now`).
//!
//! - `facade_64B`: one `log::info!("{}", msg)` of a 64-byte message per iteration through the
//!   `log` facade's global logger, which dispatches to `plog` (`plog::Logger`, into a default
//!   log) or to `spdlog` (spdlog-rs's `log` crate proxy, a logger with its buffered `FileSink`);
//!   `format_only` is the message formatted into a reused `String` (what formatting costs), and
//!   `tracing_plog_layer` / `tracing_fmt_appender` are one `tracing::info!("{}", msg)` under a
//!   registry with `PlogLayer`, or with tracing-subscriber's fmt layer writing through
//!   tracing-appender's non-blocking writer (lossy off) to a file.
//!
//! Harnesses (printed, not criterion):
//! - `latency`: each of `N` writes timed alone with `Instant::now()` pairs, for p50/p99/p99.9,
//!   then again with raw TSC pairs (`quanta::Clock::raw`, cheaper); each pair's own cost is
//!   measured the same way and printed beside it.
//! - `crc_ab`: 112-byte record images checksummed by the crc32c crate and by
//!   `pmap::crc32c_append`, chained, alternately in one loop: medians.
//! - `read_vs_write`: a full default ring written, followed and dumped as JSON, alternately in
//!   one loop (so the machine's load falls on every side alike): medians and ratios; then the
//!   same on a log of two lanes, written in the lanes in turn, read merged.
//! - `keep_up`: one writer thread writing 64-byte records on the default ring for a second,
//!   flat out and then paced at 1, 5 and 10 M/s, with a follower thread reading them: written,
//!   read, lost, and each side's rate; then flat out on a log of two lanes.
//! - `first_lap`: each write of the first lap of a fresh 1M-block log timed alone, with the
//!   ring populated at open and without.
//! - `follow`: a follower in a child process (this binary re-executed) wakes on each of a
//!   series of records written 200 us apart; the latency is the system clock at wake minus the
//!   system clock the writer put in the payload. Beside it, `follow/poll_file_1ms`: the same
//!   records appended as lines to a plain file, found by a child polling the file's length
//!   every millisecond (the way to follow a file without a wake-up channel).
//!
//! `-- --test` (criterion's smoke mode) shrinks the harnesses so the pass is quick;
//! `PLOG_BENCH_HARNESSES=latency` (a comma-separated list, or `none`) runs only the harnesses
//! named, after the criterion benches the arguments select.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput};
use plog::{FollowOptions, Level, Log};
use pounds_benches::smoke;

const FOLLOWER_ENV: &str = "PLOG_BENCH_FOLLOWER";
/// A child role's one result line: the percentiles of its wake-up latencies, for the parent.
fn print_follow_line(samples: &mut [u64]) {
    if samples.is_empty() {
        println!("FOLLOW none");
        return;
    }
    let n = samples.len();
    let [p50, p99, p999, max] = percentiles(samples);
    println!("FOLLOW n={n} p50={p50}ns p99={p99}ns p99.9={p999}ns max={max}ns");
}

/// The child role of `follow/poll_file`: the path of the text file to poll.
const POLLER_ENV: &str = "PLOG_BENCH_POLLER";
/// How often the file poller looks at the file's length: `tail -f` looks once a second; a
/// millisecond is as eager as a poller usually gets without spinning.
const POLL_EVERY: Duration = Duration::from_millis(1);
const FOLLOW_COUNT_ENV: &str = "PLOG_BENCH_FOLLOW_COUNT";
const HARNESSES_ENV: &str = "PLOG_BENCH_HARNESSES";

fn message() -> [u8; 64] {
    let mut m = [b'x'; 64];
    m[..20].copy_from_slice(b"request 12345 served");
    m
}

fn bench_one_thread(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("plog_write_64B");
    group.throughput(Throughput::Elements(1));
    let msg = message();

    let log = Log::open(dir.join("one.plog")).unwrap();
    group.bench_function("plog", |b| {
        b.iter(|| log.write(Level::Info, "bench", black_box(&msg)).unwrap())
    });

    // One thread on a log of two lanes: what choosing a lane (the processor's number) adds.
    let laned = plog::LogOptions::new()
        .lanes(2)
        .open(dir.join("one_laned.plog"))
        .unwrap();
    group.bench_function("plog_lanes", |b| {
        b.iter(|| laned.write(Level::Info, "bench", black_box(&msg)).unwrap())
    });

    let log = Arc::new(Log::open(dir.join("followed.plog")).unwrap());
    group.bench_function("with_follower", |b| {
        b.iter_custom(|iters| with_follower(&log, iters, &msg))
    });

    let mut file = File::create(dir.join("write.log")).unwrap();
    group.bench_function("file_write", |b| {
        b.iter(|| file.write_all(black_box(&msg)).unwrap())
    });

    let mut buffered = BufWriter::new(File::create(dir.join("buf.log")).unwrap());
    group.bench_function("bufwriter_flush", |b| {
        b.iter(|| {
            buffered.write_all(black_box(&msg)).unwrap();
            buffered.flush().unwrap();
        })
    });

    group.bench_function("system_time_now", |b| {
        b.iter(|| black_box(SystemTime::now()))
    });
    group.finish();
}

/// Times `iters` writes by this thread while a follower thread reads the log live; the
/// follower is started (and running) before the clock starts and stopped after it stops.
fn with_follower(log: &Arc<Log>, iters: u64, msg: &[u8]) -> Duration {
    let mut follower = log.follow(FollowOptions::new()).unwrap();
    let stop = follower.stop_handle();
    let started = Arc::new(Barrier::new(2));
    let thread = {
        let started = Arc::clone(&started);
        std::thread::spawn(move || {
            started.wait();
            let mut read = 0u64;
            for record in follower.by_ref() {
                black_box(&record);
                read += 1;
            }
            (read, follower.lost())
        })
    };
    started.wait();
    let start = Instant::now();
    for _ in 0..iters {
        log.write(Level::Info, "bench", black_box(msg)).unwrap();
    }
    let elapsed = start.elapsed();
    stop.stop();
    let (read, lost) = thread.join().unwrap();
    black_box((read, lost));
    elapsed
}

fn bench_two_threads(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("plog_write_64B_2threads");
    group.throughput(Throughput::Elements(2));
    let one_lane = Arc::new(Log::open(dir.join("two.plog")).unwrap());
    let lanes = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .next_power_of_two()
        .clamp(2, 16) as u32;
    let laned = Arc::new(
        plog::LogOptions::new()
            .lanes(lanes)
            .open(dir.join("two_laned.plog"))
            .unwrap(),
    );
    for (name, log) in [("plog", one_lane), ("plog_lanes", laned)] {
        bench_two_writers(&mut group, name, log);
    }
    group.finish();
}

fn bench_two_writers(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    log: Arc<Log>,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(2));
            let run = move |log: Arc<Log>, barrier: Arc<Barrier>| {
                let msg = message();
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    log.write(Level::Info, "bench", black_box(&msg)).unwrap();
                }
                start.elapsed()
            };
            let other = {
                let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
                std::thread::spawn(move || run(log, barrier))
            };
            let mine = run(Arc::clone(&log), barrier);
            mine.max(other.join().unwrap())
        })
    });
}

/// A default log holding one full ring of 64-byte records.
fn full_ring(path: &Path) -> Log {
    let log = Log::open(path).unwrap();
    let msg = message();
    for _ in 0..16384 {
        log.write(Level::Info, "bench", msg).unwrap();
    }
    log
}

fn bench_record_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_parts");
    let image = [0x5au8; 112];
    group.bench_function("crc32c_112B", |b| {
        b.iter(|| crc32c::crc32c(black_box(&image)))
    });
    group.bench_function("crc32c_3way_112B", |b| {
        b.iter(|| pmap::crc32c_append(0, black_box(&image)))
    });
    // Latency: each crc starts from the one before, so the calls cannot overlap (in a write,
    // the crc is on the path to the copy and the publication).
    let mut chained = 0u32;
    group.bench_function("crc32c_112B_chained", |b| {
        b.iter(|| {
            chained = crc32c::crc32c_append(chained, black_box(&image));
            chained
        })
    });
    group.bench_function("crc32c_3way_112B_chained", |b| {
        b.iter(|| {
            chained = pmap::crc32c_append(chained, black_box(&image));
            chained
        })
    });
    group.bench_function("xxh3_64_112B", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_64(black_box(&image)))
    });
    let clock = quanta::Clock::new();
    group.bench_function("quanta_raw", |b| b.iter(|| black_box(clock.raw())));
    group.bench_function("quanta_now", |b| b.iter(|| black_box(clock.now())));
    group.bench_function("system_time_now", |b| b.iter(SystemTime::now));
    group.finish();
}

/// Which logger the global `log` logger hands records to (the facade allows one per process).
static FACADE: AtomicU8 = AtomicU8::new(0);
static PLOG_LOGGER: OnceLock<plog::Logger> = OnceLock::new();
static SPDLOG_PROXY: OnceLock<&'static spdlog::LogCrateProxy> = OnceLock::new();

/// The process's `log` logger: a switch between plog's and spdlog's, so that both are measured
/// through the same `log::info!` in one run (each pays this one dispatch).
struct Switch;

impl log::Log for Switch {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        match FACADE.load(Ordering::Relaxed) {
            1 => {
                if let Some(logger) = PLOG_LOGGER.get() {
                    logger.log(record);
                }
            }
            2 => {
                if let Some(proxy) = SPDLOG_PROXY.get() {
                    proxy.log(record);
                }
            }
            _ => {}
        }
    }
    fn flush(&self) {}
}

fn bench_facade(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("facade_64B");
    group.throughput(Throughput::Elements(1));
    let msg = String::from_utf8(message().to_vec()).unwrap();
    let _ = log::set_logger(&Switch);
    log::set_max_level(log::LevelFilter::Trace);
    let log = Arc::new(Log::open(dir.join("facade.plog")).unwrap());
    let _ = PLOG_LOGGER.set(plog::Logger::new(Arc::clone(&log)));
    let spdlog_sink = spdlog::sink::FileSink::builder()
        .path(dir.join("spdlog.log"))
        .truncate(true)
        .build()
        .unwrap();
    let spdlog_logger = spdlog::Logger::builder()
        .sink(Arc::new(spdlog_sink))
        .level_filter(spdlog::LevelFilter::All)
        .build()
        .unwrap();
    let proxy = spdlog::log_crate_proxy();
    proxy.set_logger(Some(Arc::new(spdlog_logger)));
    let _ = SPDLOG_PROXY.set(proxy);

    FACADE.store(1, Ordering::Relaxed);
    group.bench_function("log_plog", |b| b.iter(|| log::info!("{}", black_box(&msg))));
    FACADE.store(2, Ordering::Relaxed);
    group.bench_function("log_spdlog_file", |b| {
        b.iter(|| log::info!("{}", black_box(&msg)))
    });
    FACADE.store(0, Ordering::Relaxed);
    group.bench_function("log_dispatch_only", |b| {
        b.iter(|| log::info!("{}", black_box(&msg)))
    });
    let mut text = String::new();
    group.bench_function("format_only", |b| {
        b.iter(|| {
            use std::fmt::Write as _;
            text.clear();
            write!(text, "{}", black_box(&msg)).unwrap();
            black_box(&text);
        })
    });

    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(plog::PlogLayer::new(Arc::clone(&log)));
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("tracing_plog_layer", |b| {
            b.iter(|| tracing::info!("{}", black_box(&msg)))
        });
    });
    let file = File::create(dir.join("appender.log")).unwrap();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(file);
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false),
    );
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("tracing_fmt_appender", |b| {
            b.iter(|| tracing::info!("{}", black_box(&msg)))
        });
    });
    drop(guard);
    group.finish();
}

fn bench_read(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("plog_read_64B");
    group.throughput(Throughput::Elements(16384));
    let log = full_ring(&dir.join("read.plog"));
    group.bench_function("reader", |b| {
        b.iter(|| {
            let mut n = 0;
            for record in log.reader() {
                black_box(&record);
                n += 1;
            }
            assert_eq!(n, 16384);
        })
    });
    group.bench_function("reader_next_ref", |b| {
        b.iter(|| {
            let (mut reader, mut n) = (log.reader(), 0);
            while let Some(record) = reader.next_ref() {
                black_box(record.payload);
                n += 1;
            }
            assert_eq!(n, 16384);
        })
    });
    group.bench_function("follower_batched", |b| {
        b.iter(|| {
            let mut follower = log.follow(FollowOptions::new().from_start()).unwrap();
            for _ in 0..16384 {
                black_box(follower.next_ref().unwrap().payload);
            }
        })
    });
    let mut null = File::create("/dev/null").unwrap();
    group.bench_function("dump_json", |b| {
        b.iter(|| {
            let summary = log
                .dump(&mut null, &plog::Filter::all(), None, plog::Format::Json)
                .unwrap();
            assert_eq!(summary.written, 16384);
        })
    });
    group.finish();
}

/// Writing a full default ring and reading it back, alternately in the same loop, so that the
/// machine's load (other builds on the two cores) falls on both sides alike: per round, 16384
/// writes of 64 B timed together, then a follower from the start reading them (borrowed), then
/// a JSON dump of the ring to /dev/null; medians over the rounds, and their ratios. Run on a
/// log of one lane and on a default-sized log of two, whose writes go to the lanes in turn
/// (`plog::testing::write_in_lane`: one thread on one processor would fill one lane) so that
/// the readers merge two full lanes.
fn read_vs_write(dir: &Path) {
    for lanes in [1, 2] {
        read_vs_write_in(dir, lanes);
    }
}

fn read_vs_write_in(dir: &Path, lanes: u32) {
    let rounds = if smoke() { 3 } else { 300 };
    let log = plog::LogOptions::new()
        .lanes(lanes)
        .open(dir.join(format!("read_vs_write_{lanes}.plog")))
        .unwrap();
    let msg = message();
    let mut null = File::create("/dev/null").unwrap();
    let (mut write, mut follow, mut dump) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        if lanes == 1 {
            for _ in 0..16384 {
                log.write(Level::Info, "bench", black_box(&msg)).unwrap();
            }
        } else {
            for i in 0..16384 {
                let lane = i % lanes as usize;
                plog::testing::write_in_lane(&log, lane, Level::Info, "bench", black_box(&msg))
                    .unwrap();
            }
        }
        write.push(start.elapsed().as_nanos() as u64);
        let start = Instant::now();
        let mut follower = log.follow(FollowOptions::new().from_start()).unwrap();
        for _ in 0..16384 {
            black_box(follower.next_ref().unwrap().payload);
        }
        follow.push(start.elapsed().as_nanos() as u64);
        let start = Instant::now();
        let summary = log
            .dump(&mut null, &plog::Filter::all(), None, plog::Format::Json)
            .unwrap();
        dump.push(start.elapsed().as_nanos() as u64);
        assert_eq!(summary.written, 16384);
    }
    let rate = |samples: &mut Vec<u64>| 16384.0 / (percentiles(samples)[0] as f64 / 1e9) / 1e6;
    let (w, f, d) = (rate(&mut write), rate(&mut follow), rate(&mut dump));
    let name = if lanes == 1 {
        "read_vs_write".to_string()
    } else {
        format!("read_vs_write/{lanes}_lanes")
    };
    println!(
        "{name}: rounds={rounds} write={w:.1} M/s follower={f:.1} M/s ({:.2}x the writer) dump_json={d:.1} M/s ({:.2}x)",
        f / w,
        d / w
    );
}

/// The record checksum's two computations, alternately in one loop (as `read_vs_write`, so
/// that the load falls on both alike): per round, 20,000 chained crcs of a 112-byte image by
/// the crc32c crate (one serial chain) and by `pmap::crc32c_append` (three streams); medians.
fn crc_ab() {
    let rounds = if smoke() { 3 } else { 300 };
    let image = [0x5au8; 112];
    let (mut serial, mut three) = (Vec::new(), Vec::new());
    let mut crc = 0u32;
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..20_000 {
            crc = crc32c::crc32c_append(crc, black_box(&image));
        }
        serial.push(start.elapsed().as_nanos() as u64);
        let start = Instant::now();
        for _ in 0..20_000 {
            crc = pmap::crc32c_append(crc, black_box(&image));
        }
        three.push(start.elapsed().as_nanos() as u64);
    }
    black_box(crc);
    let ns = |samples: &mut Vec<u64>| percentiles(samples)[0] as f64 / 20_000.0;
    let (a, b) = (ns(&mut serial), ns(&mut three));
    println!(
        "crc_ab/112B_chained: rounds={rounds} crc32c={a:.2}ns 3way={b:.2}ns ({:.2}x)",
        a / b
    );
}

/// One writer flat out, one follower from the end: what the follower reads and loses; then
/// the same on a default-sized log of two lanes (the writer in its processor's lane).
fn keep_up(dir: &Path) {
    keep_up_at(dir, None, 1);
    for rate in [1.0e6, 5.0e6, 10.0e6] {
        keep_up_at(dir, Some(rate), 1);
    }
    keep_up_at(dir, None, 2);
}

/// [`keep_up`] with the writer flat out (`None`) or paced at `rate` messages a second (in bursts
/// of 1,000, each started when the run is behind its schedule).
fn keep_up_at(dir: &Path, rate: Option<f64>, lanes: u32) {
    let mut name = match rate {
        None => "keep_up/one_writer".to_string(),
        Some(rate) => format!("keep_up/paced_{}M", rate / 1e6),
    };
    if lanes > 1 {
        name.push_str(&format!("_{lanes}_lanes"));
    }
    let log = Arc::new(
        plog::LogOptions::new()
            .lanes(lanes)
            .open(dir.join(format!("keep_up_{}_{lanes}.plog", rate.unwrap_or(0.0))))
            .unwrap(),
    );
    let run_for = if smoke() {
        Duration::from_millis(20)
    } else {
        Duration::from_secs(1)
    };
    let mut follower = log.follow(FollowOptions::new()).unwrap();
    let stop = follower.stop_handle();
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let msg = message();
            let start = Instant::now();
            let mut written = 0u64;
            while start.elapsed() < run_for {
                if let Some(rate) = rate {
                    // Pacing the writer to a rate, not synchronising with the reader.
                    let due = Duration::from_secs_f64(written as f64 / rate);
                    while start.elapsed() < due {
                        std::hint::spin_loop();
                    }
                }
                for _ in 0..1000 {
                    log.write(Level::Info, "bench", black_box(&msg)).unwrap();
                }
                written += 1000;
            }
            (written, start.elapsed())
        })
    };
    let reader = std::thread::spawn(move || {
        let start = Instant::now();
        let mut read = 0u64;
        while follower.next_ref().is_some() {
            read += 1;
        }
        (read, follower.lost(), start.elapsed())
    });
    let (written, wrote_for) = writer.join().unwrap();
    stop.stop();
    let (read, lost, read_for) = reader.join().unwrap();
    let mps = |n: u64, t: Duration| n as f64 / t.as_secs_f64() / 1e6;
    println!(
        "{name}: written={written} ({:.1} M/s) read={read} ({:.1} M/s over the follower's run) lost={lost} read+lost={}",
        mps(written, wrote_for),
        mps(read, read_for),
        read + lost
    );
}

/// The first lap of a fresh 1M-block log (128 MiB), each write timed alone, with the ring
/// populated at open (the default for rings up to 256 MiB) and without.
fn first_lap(dir: &Path) {
    let blocks: u64 = if smoke() { 1 << 12 } else { 1 << 20 };
    let msg = message();
    for populate in [false, true] {
        let path = dir.join(format!("first_lap_{populate}.plog"));
        let opened = Instant::now();
        let log = plog::LogOptions::new()
            .blocks(blocks)
            .populate(if populate {
                plog::Populate::Always
            } else {
                plog::Populate::Never
            })
            .open(&path)
            .unwrap();
        let open_time = opened.elapsed();
        let mut samples = Vec::with_capacity(blocks as usize);
        let lap = Instant::now();
        for _ in 0..blocks {
            let start = Instant::now();
            log.write(Level::Info, "bench", black_box(&msg)).unwrap();
            samples.push(start.elapsed().as_nanos() as u64);
        }
        let mean = lap.elapsed().as_nanos() as u64 / blocks;
        let [p50, p99, p999, max] = percentiles(&mut samples);
        println!(
            "first_lap/populate={populate}: n={blocks} open={open_time:?} mean={mean}ns p50={p50}ns p99={p99}ns p99.9={p999}ns max={max}ns"
        );
        drop(log);
        let _ = std::fs::remove_file(&path);
    }
}

fn percentiles(samples: &mut [u64]) -> [u64; 4] {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    [at(0.5), at(0.99), at(0.999), samples[samples.len() - 1]]
}

fn latency(dir: &Path) {
    let n = if smoke() { 10_000 } else { 2_000_000 };
    let log = Log::open(dir.join("latency.plog")).unwrap();
    let msg = message();
    let mut samples = Vec::with_capacity(n);
    let mut timer = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        black_box(log.write(Level::Info, "bench", black_box(&msg)).unwrap());
        samples.push(start.elapsed().as_nanos() as u64);
        let start = Instant::now();
        timer.push(black_box(start).elapsed().as_nanos() as u64);
    }
    let [p50, p99, p999, max] = percentiles(&mut samples);
    let [t50, t99, t999, _] = percentiles(&mut timer);
    println!(
        "latency/plog_write_64B: n={n} p50={p50}ns p99={p99}ns p99.9={p999}ns max={max}ns \
         (timer pair alone: p50={t50}ns p99={t99}ns p99.9={t999}ns)"
    );
    // The same with a cheaper timing pair: the raw TSC through quanta (about half the cost of
    // an Instant pair here), converted to ns after the loop.
    let clock = quanta::Clock::new();
    let mut raw = Vec::with_capacity(n);
    let mut raw_timer = Vec::with_capacity(n);
    for _ in 0..n {
        let start = clock.raw();
        black_box(log.write(Level::Info, "bench", black_box(&msg)).unwrap());
        let end = clock.raw();
        raw.push(clock.delta_as_nanos(start, end));
        let start = clock.raw();
        let end = black_box(clock.raw());
        raw_timer.push(clock.delta_as_nanos(start, end));
    }
    let [p50, p99, p999, max] = percentiles(&mut raw);
    let [t50, t99, t999, _] = percentiles(&mut raw_timer);
    println!(
        "latency/plog_write_64B_tsc: n={n} p50={p50}ns p99={p99}ns p99.9={p999}ns max={max}ns \
         (tsc pair alone: p50={t50}ns p99={t99}ns p99.9={t999}ns)"
    );
    let m = if smoke() { 1_000 } else { 200_000 };
    let mut file = File::create(dir.join("latency.log")).unwrap();
    let mut samples = Vec::with_capacity(m);
    for _ in 0..m {
        let start = Instant::now();
        file.write_all(black_box(&msg)).unwrap();
        samples.push(start.elapsed().as_nanos() as u64);
    }
    let [p50, p99, p999, max] = percentiles(&mut samples);
    println!("latency/file_write_64B: n={m} p50={p50}ns p99={p99}ns p99.9={p999}ns max={max}ns");
}

fn system_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The child role: follow the log, and for each timed record print nothing until the end, then
/// one line of percentiles of (wake time - send time).
fn follower(path: &str, count: usize) {
    let log = Log::open(path).unwrap();
    let mut follower = log.follow(FollowOptions::new()).unwrap();
    log.write(Level::Info, "ready", "").unwrap();
    let mut samples = Vec::with_capacity(count);
    while samples.len() < count {
        let Some(record) = follower.next_timeout(Duration::from_secs(30)) else {
            break;
        };
        let now = system_ns();
        if record.tag == "timed" {
            let sent = u64::from_le_bytes(record.payload[..8].try_into().unwrap());
            samples.push(now.saturating_sub(sent));
        }
    }
    print_follow_line(&mut samples);
}

/// The child role of `follow/poll_file`: polls a text file's length every [`POLL_EVERY`], reads
/// what was appended, and for each line (a send time in ns) takes the wake-up latency; then
/// prints one line of percentiles, as [`follower`] does.
fn poller(path: &str, count: usize) {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = File::open(path).unwrap();
    println!("READY");
    let mut offset = 0u64;
    let mut pending = Vec::new();
    let mut samples = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(60);
    while samples.len() < count && Instant::now() < deadline {
        let len = file.metadata().unwrap().len();
        if len > offset {
            file.seek(SeekFrom::Start(offset)).unwrap();
            let mut chunk = Vec::new();
            std::io::Read::by_ref(&mut file)
                .take(len - offset)
                .read_to_end(&mut chunk)
                .unwrap();
            offset = len;
            let now = system_ns();
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(sent) = std::str::from_utf8(&line[..end])
                    .unwrap_or("")
                    .parse::<u64>()
                {
                    samples.push(now.saturating_sub(sent));
                }
            }
        } else {
            std::thread::sleep(POLL_EVERY);
        }
    }
    print_follow_line(&mut samples);
}

/// The peer of `follow/cross_process`: the same paced records appended as lines to a plain
/// file, and a child process that finds them by polling the file's length.
fn poll_file_latency(dir: &Path) {
    let count = if smoke() { 50 } else { 5_000 };
    let path = dir.join("poll.log");
    let mut file = File::create(&path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(POLLER_ENV, &path)
        .env(FOLLOW_COUNT_ENV, count.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "the poller did not start");
    for _ in 0..count {
        // Pacing, not synchronisation, as in `follow_latency`.
        std::thread::sleep(Duration::from_micros(200));
        writeln!(file, "{}", system_ns()).unwrap();
    }
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("FOLLOW ") {
            println!("follow/poll_file_1ms: {rest}");
        }
    }
    child.wait().unwrap();
}

fn follow_latency(dir: &Path) {
    let count = if smoke() { 50 } else { 5_000 };
    let path = dir.join("follow.plog");
    let log = Log::open(&path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(FOLLOWER_ENV, &path)
        .env(FOLLOW_COUNT_ENV, count.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the follower to announce itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reader = log.reader();
    'ready: while Instant::now() < deadline {
        for record in reader.by_ref() {
            if record.tag == "ready" {
                break 'ready;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..count {
        // Pacing, not synchronisation: the follower is asleep by the next record.
        std::thread::sleep(Duration::from_micros(200));
        log.write(Level::Info, "timed", system_ns().to_le_bytes())
            .unwrap();
    }
    let out = BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("FOLLOW ") {
            println!("follow/cross_process: {rest}");
        }
    }
    child.wait().unwrap();
}

fn main() {
    if let Ok(path) = std::env::var(POLLER_ENV) {
        let count = std::env::var(FOLLOW_COUNT_ENV).unwrap().parse().unwrap();
        poller(&path, count);
        return;
    }
    if let Ok(path) = std::env::var(FOLLOWER_ENV) {
        let count = std::env::var(FOLLOW_COUNT_ENV).unwrap().parse().unwrap();
        follower(&path, count);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = Criterion::default().configure_from_args();
    bench_one_thread(&mut c, dir.path());
    bench_two_threads(&mut c, dir.path());
    bench_read(&mut c, dir.path());
    bench_record_parts(&mut c);
    bench_facade(&mut c, dir.path());
    c.final_summary();
    let harnesses: [(&str, &dyn Fn()); 6] = [
        ("crc_ab", &crc_ab),
        ("read_vs_write", &|| read_vs_write(dir.path())),
        ("keep_up", &|| keep_up(dir.path())),
        ("first_lap", &|| first_lap(dir.path())),
        ("latency", &|| latency(dir.path())),
        ("follow", &|| {
            follow_latency(dir.path());
            poll_file_latency(dir.path());
        }),
    ];
    // `PLOG_BENCH_HARNESSES=latency,crc_ab` runs only those (`none` runs none), so that an A/B
    // of one criterion bench or one harness need not wait for the others.
    let only = std::env::var(HARNESSES_ENV).ok();
    for (name, run) in harnesses {
        if only
            .as_deref()
            .is_none_or(|list| list.split(',').any(|h| h.trim() == name))
        {
            run();
        }
    }
}
