//! Log writers side by side, in one run (issue 16): the same 64-byte message through each, timed
//! per call, in one thread and in two, and what each keeps when the process aborts right after
//! writing.
//!
//! Writers: `plog_raw` (`Log::write`), `plog_log` (`log::info!` into `plog::Logger`),
//! `plog_tracing` (`tracing::info!` under `PlogLayer`), `spdlog_file` (spdlog-rs's own macro into
//! its buffered `FileSink`), `spdlog_async` (the same sink behind its `AsyncPoolSink`, blocking
//! when full), `appender_blocking` / `appender_lossy` (`tracing::info!` under
//! tracing-subscriber's fmt layer writing through tracing-appender's non-blocking writer, lossy
//! off / on), `ftlog` (`log::info!` into ftlog, the `log` backend built for speed),
//! `file_write` (one `write(2)` of the line per message) and `bufwriter` (`BufWriter<File>`,
//! never flushed by the caller). Then `lttng_ust`: a C program (`benches/lttng/`) firing one
//! LTTng-UST tracepoint per message under a snapshot-mode session, where the machine has
//! LTTng (Debian: `lttng-tools`, `liblttng-ust-dev`); the table says when it was not measured.
//!
//! Each writer runs in a child process of its own (this binary re-executed with
//! `LOGGERS_ROLE`), because the `log` and `tracing` facades take one global backend per
//! process. A `measure` child times `N` calls one by one with raw TSC pairs
//! (`quanta::Clock::raw`) into an HDR histogram, measures the pair alone the same way, then
//! times `M` calls untimed for throughput in one thread and in two; it prints one JSON line.
//! An `abort` child writes `K` numbered messages and calls `std::process::abort()` at once;
//! the parent counts the numbered messages the file kept.
//!
//! The parent prints a table and writes every result to `target/bench-results/loggers.json`,
//! which `cargo xtask bench` turns into `docs/benchmarks.md` and the chart. `POUNDS_BENCH_QUICK=1`
//! shortens every count; `-- --test` (criterion's smoke convention) shortens them more.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use plog::{Level, Log, LogOptions};
use pounds_benches::{quick, smoke};

const ROLE_ENV: &str = "LOGGERS_ROLE";

/// Every writer measured, in table order (plog's first: the others' ratios are to `plog_raw`).
const WRITERS: &[&str] = &[
    "plog_raw",
    "plog_log",
    "plog_tracing",
    "spdlog_file",
    "spdlog_async",
    "appender_blocking",
    "appender_lossy",
    "ftlog",
    "file_write",
    "bufwriter",
];

/// Calls timed one by one, calls timed for throughput, and messages written before an abort.
struct Counts {
    timed: usize,
    throughput: usize,
    abort: usize,
}

fn counts() -> Counts {
    if smoke() {
        Counts {
            timed: 2_000,
            throughput: 2_000,
            abort: 2_000,
        }
    } else if quick() {
        Counts {
            timed: 100_000,
            throughput: 200_000,
            abort: 200_000,
        }
    } else {
        Counts {
            timed: 1_000_000,
            throughput: 2_000_000,
            abort: 200_000,
        }
    }
}

fn message() -> String {
    let mut m = String::from("request 12345 served");
    while m.len() < 64 {
        m.push('x');
    }
    m
}

/// One writer set up in this process: `call` writes one message (`text`), from any thread.
struct Setup {
    call: Box<dyn Fn(&str) + Send + Sync>,
    /// Flushes and stops whatever the writer runs behind the caller (before the process ends).
    finish: Box<dyn FnOnce()>,
}

fn set_up(name: &str, dir: &Path, blocks: u64) -> Setup {
    let nothing = || Box::new(|| {}) as Box<dyn FnOnce()>;
    match name {
        "plog_raw" => {
            let log = LogOptions::new()
                .blocks(blocks)
                .open(dir.join("raw.plog"))
                .unwrap();
            Setup {
                call: Box::new(move |m: &str| {
                    black_box(log.write(Level::Info, "bench", m.as_bytes()).unwrap());
                }),
                finish: nothing(),
            }
        }
        "plog_log" => {
            let log = Arc::new(
                LogOptions::new()
                    .blocks(blocks)
                    .open(dir.join("log.plog"))
                    .unwrap(),
            );
            log::set_boxed_logger(Box::new(plog::Logger::new(log))).unwrap();
            log::set_max_level(log::LevelFilter::Info);
            Setup {
                call: Box::new(|m: &str| log::info!("{}", m)),
                finish: nothing(),
            }
        }
        "plog_tracing" => {
            use tracing_subscriber::layer::SubscriberExt as _;
            let log = Arc::new(
                LogOptions::new()
                    .blocks(blocks)
                    .open(dir.join("tracing.plog"))
                    .unwrap(),
            );
            let subscriber = tracing_subscriber::registry().with(plog::PlogLayer::new(log));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            Setup {
                call: Box::new(|m: &str| tracing::info!("{}", m)),
                finish: nothing(),
            }
        }
        "spdlog_file" | "spdlog_async" => {
            let file: Arc<dyn spdlog::sink::Sink> = Arc::new(
                spdlog::sink::FileSink::builder()
                    .path(dir.join(format!("{name}.log")))
                    .truncate(true)
                    .build()
                    .unwrap(),
            );
            let sink = if name == "spdlog_async" {
                Arc::new(
                    spdlog::sink::AsyncPoolSink::builder()
                        .sink(file)
                        .overflow_policy(spdlog::sink::OverflowPolicy::Block)
                        .build()
                        .unwrap(),
                )
            } else {
                file
            };
            let logger = Arc::new(
                spdlog::Logger::builder()
                    .sink(sink)
                    .level_filter(spdlog::LevelFilter::All)
                    .build()
                    .unwrap(),
            );
            let flushed = Arc::clone(&logger);
            Setup {
                call: Box::new(move |m: &str| spdlog::info!(logger: logger, "{}", m)),
                finish: Box::new(move || flushed.flush()),
            }
        }
        "appender_blocking" | "appender_lossy" => {
            use tracing_subscriber::layer::SubscriberExt as _;
            let file = File::create(dir.join(format!("{name}.log"))).unwrap();
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(name == "appender_lossy")
                .finish(file);
            let subscriber = tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false),
            );
            tracing::subscriber::set_global_default(subscriber).unwrap();
            Setup {
                call: Box::new(|m: &str| tracing::info!("{}", m)),
                finish: Box::new(move || drop(guard)),
            }
        }
        "ftlog" => {
            let logger = ftlog::builder()
                .root(ftlog::appender::FileAppender::new(dir.join("ftlog.log")))
                .max_log_level(log::LevelFilter::Info)
                .try_init()
                .unwrap();
            let logger = Arc::new(Mutex::new(Some(logger)));
            Setup {
                call: Box::new(|m: &str| log::info!("{}", m)),
                finish: Box::new(move || {
                    if let Some(logger) = logger.lock().unwrap().take() {
                        log::logger().flush();
                        drop(logger);
                    }
                }),
            }
        }
        "file_write" => {
            let file = File::create(dir.join("file_write.log")).unwrap();
            Setup {
                call: Box::new(move |m: &str| {
                    let mut line = [0u8; 128];
                    let len = m.len().min(127);
                    line[..len].copy_from_slice(&m.as_bytes()[..len]);
                    line[len] = b'\n';
                    (&file).write_all(&line[..=len]).unwrap();
                }),
                finish: nothing(),
            }
        }
        "bufwriter" => {
            let file = Arc::new(Mutex::new(BufWriter::new(
                File::create(dir.join("bufwriter.log")).unwrap(),
            )));
            let flushed = Arc::clone(&file);
            Setup {
                call: Box::new(move |m: &str| {
                    let mut out = file.lock().unwrap();
                    out.write_all(m.as_bytes()).unwrap();
                    out.write_all(b"\n").unwrap();
                }),
                finish: Box::new(move || flushed.lock().unwrap().flush().unwrap()),
            }
        }
        other => panic!("unknown writer {other}"),
    }
}

/// The child that measures writer `name` and prints its JSON line.
fn measure(name: &str, dir: &Path) {
    let n = counts();
    let setup = set_up(name, dir, 16_384);
    let msg = message();
    for _ in 0..n.timed.min(10_000) {
        (setup.call)(&msg);
    }
    let clock = quanta::Clock::new();
    let mut calls = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut pair = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for _ in 0..n.timed {
        let start = clock.raw();
        (setup.call)(black_box(&msg));
        let end = clock.raw();
        calls.saturating_record(clock.delta_as_nanos(start, end).max(1));
        let start = clock.raw();
        let end = black_box(clock.raw());
        pair.saturating_record(clock.delta_as_nanos(start, end).max(1));
    }
    let start = Instant::now();
    for _ in 0..n.throughput {
        (setup.call)(black_box(&msg));
    }
    let one_thread = n.throughput as f64 / start.elapsed().as_secs_f64();
    let call = &setup.call;
    let barrier = Barrier::new(2);
    let per_thread = n.throughput / 2;
    let two_threads = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..per_thread {
                        call(black_box(&msg));
                    }
                    start.elapsed()
                })
            })
            .collect();
        let slowest = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap();
        (2 * per_thread) as f64 / slowest.as_secs_f64()
    });
    (setup.finish)();
    println!(
        "RESULT {{\"writer\":\"{name}\",\"n\":{},\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{},\
         \"pair_p50\":{},\"pair_p99\":{},\"one_thread_per_s\":{one_thread:.0},\
         \"two_threads_per_s\":{two_threads:.0}}}",
        n.timed,
        calls.value_at_quantile(0.5),
        calls.value_at_quantile(0.99),
        calls.value_at_quantile(0.999),
        calls.max(),
        pair.value_at_quantile(0.5),
        pair.value_at_quantile(0.99),
    );
}

/// The child that writes numbered messages and aborts without flushing anything.
fn write_then_abort(name: &str, dir: &Path) {
    let n = counts();
    // A ring that holds every message: what is measured is what survives the abort, not what
    // the ring overwrote.
    let blocks = (n.abort as u64 * 2).next_power_of_two();
    let setup = set_up(name, dir, blocks);
    for i in 0..n.abort {
        (setup.call)(&format!("seq {i:09} {}", &message()[..40]));
    }
    std::process::abort();
}

/// Numbered messages kept in `dir` after an abort child of writer `name`.
fn kept(dir: &Path) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut scan = |text: &str| {
        let mut rest = text;
        while let Some(at) = rest.find("seq ") {
            let digits = rest.get(at + 4..at + 13).unwrap_or("");
            if let Ok(i) = digits.parse::<u64>() {
                seen.insert(i);
            }
            rest = &rest[at + 4..];
        }
    };
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "plog") {
            let Ok(log) = Log::open_read_only(&path) else {
                continue;
            };
            let mut reader = log.reader();
            while let Some(record) = reader.next_ref() {
                scan(&String::from_utf8_lossy(record.payload));
            }
        } else {
            scan(&String::from_utf8_lossy(
                &std::fs::read(&path).unwrap_or_default(),
            ));
        }
    }
    seen.len()
}

/// LTTng-UST, the multi-process flight recorder to beat: `benches/lttng/bench.c` (the same
/// message, the same timing) built against liblttng-ust, run under a snapshot-mode session
/// (overwrite, in memory: LTTng's flight-recorder mode) that this function creates, starts,
/// stops and destroys. `Err` says why it could not be measured (no `lttng`, no compiler or
/// headers, no session daemon). What an abort leaves is not counted: the events stay in the
/// consumer daemon's buffers until a `lttng snapshot record` and a trace reader count them.
fn lttng(n: &Counts) -> Result<String, String> {
    let run = |program: &str, args: &[&str]| -> Result<String, String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("`{program}` could not run ({e})"))?;
        if !out.status.success() {
            return Err(format!(
                "`{program} {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run("lttng", &["--version"])?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("lttng");
    let dir = results_path();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let binary = dir.join("lttng_bench");
    let include = format!("-I{}", source.display());
    let bench_c = source.join("bench.c").display().to_string();
    let tp_c = source.join("tp.c").display().to_string();
    let output = binary.display().to_string();
    run(
        "cc",
        &[
            "-O2",
            &include,
            "-o",
            &output,
            &bench_c,
            &tp_c,
            "-llttng-ust",
            "-ldl",
            "-lpthread",
        ],
    )?;
    let session = format!("pounds-bench-{}", std::process::id());
    let traces = tempfile::tempdir().map_err(|e| e.to_string())?;
    let traces = traces.path().display().to_string();
    run("lttng", &["create", &session, "--snapshot", "-o", &traces])?;
    let measured = (|| {
        run(
            "lttng",
            &["enable-event", "-u", "-s", &session, "pounds_bench:msg"],
        )?;
        run("lttng", &["start", &session])?;
        let out = run(&output, &[&n.timed.to_string(), &n.throughput.to_string()]);
        run("lttng", &["stop", &session])?;
        out
    })();
    let destroyed = run("lttng", &["destroy", &session]);
    let out = measured?;
    destroyed?;
    let result = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or("the C program printed no result")?;
    Ok(format!(
        "{},\"abort_written\":null,\"abort_kept\":null}}",
        result.trim_end_matches('}')
    ))
}

fn run_child(role: &str, name: &str, dir: &Path) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE_ENV, format!("{role}:{name}:{}", dir.display()))
        .args(std::env::args().skip(1))
        .output()
        .unwrap()
}

fn results_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench-results")
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let mut parts = role.splitn(3, ':');
        let (role, name, dir) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            PathBuf::from(parts.next().unwrap()),
        );
        match role {
            "measure" => measure(name, &dir),
            "abort" => write_then_abort(name, &dir),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument picks writers by substring.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n = counts();
    let mut lines = Vec::new();
    println!(
        "{:<18} {:>8} {:>8} {:>8} {:>10} {:>12} {:>12} {:>12}",
        "writer", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "1 thread/s", "2 threads/s", "kept"
    );
    for &name in WRITERS {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = run_child("measure", name, dir.path());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(result) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
            panic!(
                "{name}: no result (status {}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let result = result.to_string();
        let dir = tempfile::tempdir().unwrap();
        let aborted = run_child("abort", name, dir.path());
        assert!(
            !aborted.status.success(),
            "{name}: the abort child exited normally"
        );
        let kept = kept(dir.path());
        let line = format!(
            "{},\"abort_written\":{},\"abort_kept\":{kept}}}",
            result.trim_end_matches('}'),
            n.abort
        );
        let field = |key: &str| -> String {
            let at = line.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
            line[at..]
                .split([',', '}'])
                .next()
                .unwrap_or("")
                .to_string()
        };
        println!(
            "{:<18} {:>8} {:>8} {:>8} {:>10} {:>12} {:>12} {:>12}",
            name,
            field("p50"),
            field("p99"),
            field("p999"),
            field("max"),
            field("one_thread_per_s"),
            field("two_threads_per_s"),
            format!("{kept}/{}", n.abort),
        );
        lines.push(line);
    }
    if filter.is_empty() || filter.iter().any(|f| "lttng_ust".contains(f.as_str())) {
        let line = match lttng(&n) {
            Ok(result) => result,
            Err(why) => {
                println!("{:<18} not measured: {why}", "lttng_ust");
                format!("{{\"writer\":\"lttng_ust\",\"not_measured\":\"{why}\"}}")
            }
        };
        if !line.contains("not_measured") {
            println!("{:<18} {line}", "lttng_ust");
        }
        lines.push(line);
    }
    if smoke() {
        // The smoke pass (`cargo xtask ci`) proves the harness runs; its tiny counts must not
        // replace a real run's results, which `bench_report` reads.
        return;
    }
    let dir = results_path();
    std::fs::create_dir_all(&dir).unwrap();
    let json = format!("[\n{}\n]\n", lines.join(",\n"));
    std::fs::write(dir.join("loggers.json"), json).unwrap();
}
