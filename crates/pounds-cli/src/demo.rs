//! `pounds demo`: the main job in one run.
//!
//! Writer processes (this binary again, as `demo-writer`), each with several threads, fill one
//! log as fast as they can while a follower in this process reads it live and checks every
//! record it sees. Then a ping-pong over the log measures follow latency across processes.
//! Printed: throughput, write latency percentiles, follow latency percentiles, and the count of
//! records checked and lost, which must add up to the count written.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pounds::log::{FollowOptions, Level, Log};

use crate::args::{DemoArgs, DemoWriterArgs};
use crate::error::{CliError, Result};
use crate::histogram::{Histogram, nanos};

const TAG: &str = "demo";
const PING: &str = "ping";
const PONG: &str = "pong";
const PAYLOAD: usize = 64;
const PINGS: u64 = 2_000;

fn demo_error(message: impl Into<String>) -> CliError {
    CliError::Demo(message.into())
}

fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The demo's own temporary directory and log in it, removed when the demo ends (unless it
/// is killed: its writers still exit, see [`ParentWatch`]).
struct TempLog(Option<PathBuf>);

impl TempLog {
    /// A new directory in the temporary directory, made by this call (`mkdir` fails on
    /// anything already there, a symlink included) and private to this user, and in it a log
    /// file created with `create_new`: no name another user could have prepared redirects it.
    fn create() -> Result<(TempLog, PathBuf)> {
        let base = std::env::temp_dir();
        let seed = wall_nanos() ^ u64::from(std::process::id()).rotate_left(32);
        for attempt in 0..64u64 {
            let name = format!(
                "pounds-demo-{:016x}",
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(attempt.wrapping_mul(0xbf58_476d_1ce4_e5b9))
            );
            let dir = base.join(name);
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(&dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error.into()),
            }
            let cleanup = TempLog(Some(dir.clone()));
            let path = dir.join("demo.plog");
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            return Ok((cleanup, path));
        }
        Err(demo_error(format!(
            "cannot make a new directory in {}",
            base.display()
        )))
    }
}

impl Drop for TempLog {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    let (path, _cleanup) = match &args.file {
        Some(path) => (path.clone(), TempLog(None)),
        None => {
            let (cleanup, path) = TempLog::create()?;
            (path, cleanup)
        }
    };
    let log = Log::open(&path)?;
    let stats = log.stats();
    // The load's ids start here (0 but for a `--file --force` that held records).
    let first_id = stats.next_id;
    if first_id > 0 && !args.force {
        return Err(demo_error(format!(
            "{} already holds records (ids up to {}): the demo would write into them; pass \
             --force to do it anyway, or give a new file",
            path.display(),
            first_id - 1
        )));
    }
    let total = u64::from(args.processes) * u64::from(args.threads) * args.messages;
    println!(
        "pounds demo: {} processes x {} threads x {} messages of {PAYLOAD} bytes into {} \
         ({} blocks x {} B)",
        args.processes,
        args.threads,
        args.messages,
        path.display(),
        stats.blocks,
        stats.block_size
    );

    let load_end = AtomicU64::new(u64::MAX);
    let outcome = std::thread::scope(|scope| -> Result<(WriterTotals, FollowReport, u64)> {
        let follower = log.follow(FollowOptions::new().from_id(first_id))?;
        let stop = follower.stop_handle();
        let follow = scope.spawn(|| follow_and_check(&log, follower, &load_end));
        let writers = run_writers(&path, args);
        let writers = match writers {
            Ok(writers) => writers,
            Err(error) => {
                stop.stop();
                let _ = follow.join();
                return Err(error);
            }
        };
        let ids_in_load = log.stats().next_id;
        load_end.store(ids_in_load, Ordering::Release);
        let pings = run_child(&path, &["--ping", &PINGS.to_string()]);
        stop.stop();
        let report = follow
            .join()
            .map_err(|_| demo_error("the follower thread failed"))?;
        let pings = pings?;
        Ok((writers.with_pings(pings), report, ids_in_load))
    });
    let (writers, report, ids_in_load) = outcome?;
    // Every record takes one block (one id); a writer that met a block still held by another
    // (preempted mid-write) gave its reservation back as padding and wrote again, so the load
    // used `ids_in_load - total` ids of padding. Lost counts ids: the records lost, plus any of
    // that padding the follower was lapped over.
    let padding = ids_in_load.saturating_sub(first_id).saturating_sub(total);
    let writer_threads = u64::from(args.processes) * u64::from(args.threads);
    print_report(
        total,
        padding,
        (writer_threads, stats.blocks),
        &writers,
        &report,
    )?;
    let accounted = report.checked + report.lost_in_load;
    if accounted < total || accounted > total + padding || report.invalid > 0 {
        return Err(demo_error(format!(
            "records do not add up: {} checked + {} lost is not {total} written (plus at most {padding} ids of padding); {} invalid",
            report.checked, report.lost_in_load, report.invalid
        )));
    }
    Ok(())
}

/// What the writer processes reported, merged.
#[derive(Default)]
struct WriterTotals {
    writes: u64,
    first_start: u64,
    last_end: u64,
    latency: Histogram,
    clock_cost: u64,
    ping_latency: Histogram,
}

impl WriterTotals {
    fn with_pings(mut self, pings: WriterTotals) -> Self {
        self.ping_latency = pings.ping_latency;
        self
    }
}

fn run_writers(path: &Path, args: &DemoArgs) -> Result<WriterTotals> {
    let children: Vec<Result<Child>> = (0..args.processes)
        .map(|process| {
            spawn_child(
                path,
                &[
                    "--process",
                    &process.to_string(),
                    "--threads",
                    &args.threads.to_string(),
                    "--messages",
                    &args.messages.to_string(),
                ],
            )
        })
        .collect();
    let mut totals = WriterTotals {
        first_start: u64::MAX,
        ..WriterTotals::default()
    };
    for child in children {
        let report = collect(child?)?;
        totals.writes += report.writes;
        totals.first_start = totals.first_start.min(report.first_start);
        totals.last_end = totals.last_end.max(report.last_end);
        totals.latency.merge(&report.latency);
        totals.clock_cost = totals.clock_cost.max(report.clock_cost);
    }
    Ok(totals)
}

fn run_child(path: &Path, extra: &[&str]) -> Result<WriterTotals> {
    collect(spawn_child(path, extra)?)
}

fn spawn_child(path: &Path, extra: &[&str]) -> Result<Child> {
    let exe = std::env::current_exe()?;
    Ok(Command::new(exe)
        .arg("demo-writer")
        .arg(path)
        .args(["--parent", &std::process::id().to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

/// Reads a child's one-line report: `key value` pairs, histograms last.
fn collect(mut child: Child) -> Result<WriterTotals> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| demo_error("no pipe from a writer"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let status = child.wait()?;
    if !status.success() {
        return Err(demo_error(format!("a writer process failed ({status})")));
    }
    parse_report(&line).ok_or_else(|| demo_error(format!("unreadable writer report: {line:?}")))
}

fn parse_report(line: &str) -> Option<WriterTotals> {
    let mut totals = WriterTotals::default();
    for field in line.trim().split(';') {
        let (key, value) = field.split_once('=')?;
        match key {
            "writes" => totals.writes = value.parse().ok()?,
            "start" => totals.first_start = value.parse().ok()?,
            "end" => totals.last_end = value.parse().ok()?,
            "clock" => totals.clock_cost = value.parse().ok()?,
            "latency" => totals.latency = Histogram::decode(value)?,
            "ping" => totals.ping_latency = Histogram::decode(value)?,
            _ => return None,
        }
    }
    Some(totals)
}

fn write_report(totals: &WriterTotals) -> String {
    format!(
        "writes={};start={};end={};clock={};latency={};ping={}",
        totals.writes,
        totals.first_start,
        totals.last_end,
        totals.clock_cost,
        totals.latency.encode(),
        totals.ping_latency.encode()
    )
}

/// What the follower saw.
#[derive(Default)]
struct FollowReport {
    checked: u64,
    invalid: u64,
    out_of_order: u64,
    lost_in_load: u64,
    lag: Histogram,
}

/// Follows the log, checks every demo record (well-formed, each writer's sequence rising) and
/// answers pings; stops when stopped after the load and the pings.
fn follow_and_check(
    log: &Log,
    mut follower: pounds::log::Follower,
    load_end: &AtomicU64,
) -> FollowReport {
    let mut report = FollowReport::default();
    // A few writers: a short list scanned beats hashing at every record.
    let mut last_seen: Vec<((u32, u32), u64)> = Vec::new();
    let mut sampled = 0u32;
    let mut load_done = false;
    // Borrowed records (no copy, no allocation per record): what is needed of one is taken
    // before the follower is asked anything else.
    loop {
        let (id, seen, pong) = {
            let Some(record) = follower.next_ref() else {
                break;
            };
            let mut pong = None;
            let seen = match record.tag {
                t if t == TAG.as_bytes() => {
                    // The clock costs about as much as reading a record: sample the lag.
                    sampled = sampled.wrapping_add(1);
                    if sampled % 16 == 0 {
                        report.lag.record(wall_nanos().saturating_sub(record.time));
                    }
                    Some(parse_payload(record.level, record.payload))
                }
                t if t == PING.as_bytes() => {
                    pong = Some(record.payload.to_vec());
                    None
                }
                _ => None,
            };
            (record.id, seen, pong)
        };
        if !load_done && id >= load_end.load(Ordering::Acquire) {
            report.lost_in_load = follower.lost();
            load_done = true;
        }
        match seen {
            Some(Some((writer, seq))) => {
                match last_seen.iter_mut().find(|(w, _)| *w == writer) {
                    Some((_, last)) => {
                        if *last >= seq {
                            report.out_of_order += 1;
                        }
                        *last = seq;
                    }
                    None => last_seen.push((writer, seq)),
                }
                report.checked += 1;
            }
            Some(None) => report.invalid += 1,
            None => {}
        }
        if let Some(payload) = pong {
            let _ = log.write(Level::Info, PONG, &payload);
        }
    }
    if !load_done {
        report.lost_in_load = follower.lost();
    }
    report
}

/// `p{process} t{thread} n{sequence}` followed by dots to the payload size.
fn format_payload(buf: &mut [u8; PAYLOAD], process: u32, thread: u32, seq: u64) {
    buf.fill(b'.');
    let mut cursor = &mut buf[..];
    let _ = write!(cursor, "p{process} t{thread} n{seq} ");
}

fn parse_payload(level: Level, payload: &[u8]) -> Option<((u32, u32), u64)> {
    if payload.len() != PAYLOAD || level != Level::Info {
        return None;
    }
    // `p{process} t{thread} n{seq} ` then dots, parsed by hand: the follower does this for
    // every record, as fast as the writers write.
    let (process, rest) = number_after(payload, b'p')?;
    let (thread, rest) = number_after(rest.strip_prefix(b" ")?, b't')?;
    let (seq, rest) = number_after(rest.strip_prefix(b" ")?, b'n')?;
    let dots = rest.strip_prefix(b" ")?;
    if !dots.iter().all(|&b| b == b'.') {
        return None;
    }
    Some((
        (u32::try_from(process).ok()?, u32::try_from(thread).ok()?),
        seq,
    ))
}

/// The decimal number after the letter `prefix` at the start of `bytes`, and what follows it.
fn number_after(bytes: &[u8], prefix: u8) -> Option<(u64, &[u8])> {
    let digits = bytes.strip_prefix(&[prefix])?;
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    let value = digits[..len]
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some((value, &digits[len..]))
}

/// The cost of one `Instant::now()` pair, which every latency sample includes.
fn clock_cost() -> u64 {
    let mut samples: Vec<u64> = (0..1001)
        .map(|_| {
            let start = Instant::now();
            start.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// A writer's check that the demo that started it still runs: its parent process is no
/// longer the demo once the demo died (Ctrl-C, SIGTERM, even SIGKILL), and the writer then
/// exits at once. Polled (every [`Self::EVERY`] writes) rather than a signal handler: no
/// `unsafe`, no new dependency, and it covers a SIGKILL of the demo, which no handler in the
/// demo could.
#[derive(Clone, Copy)]
struct ParentWatch(Option<u32>);

impl ParentWatch {
    /// Writes between checks (a check is one `getppid`, cheaper than a write).
    const EVERY: u64 = 1024;

    /// Exits the process if the parent is no longer the demo.
    fn check(self) {
        #[cfg(unix)]
        if let Some(parent) = self.0 {
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(1);
            }
        }
    }
}

pub(crate) fn run_writer(args: &DemoWriterArgs) -> Result<()> {
    let watch = ParentWatch(args.parent);
    watch.check();
    let log = Log::open(&args.file)?;
    let totals = match args.ping {
        Some(pings) => ping_pong(&log, pings, watch)?,
        None => write_load(&log, args, watch)?,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", write_report(&totals))?;
    Ok(())
}

fn write_load(log: &Log, args: &DemoWriterArgs, watch: ParentWatch) -> Result<WriterTotals> {
    let clock = clock_cost();
    let start = wall_nanos();
    let per_thread = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..args.threads)
            .map(|thread| {
                scope.spawn(move || -> Result<Histogram> {
                    let mut latency = Histogram::default();
                    let mut payload = [0u8; PAYLOAD];
                    for seq in 0..args.messages {
                        if seq % ParentWatch::EVERY == 0 {
                            watch.check();
                        }
                        format_payload(&mut payload, args.process, thread, seq);
                        let began = Instant::now();
                        log.write(Level::Info, TAG, payload)?;
                        latency.record(began.elapsed().as_nanos() as u64);
                    }
                    Ok(latency)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().map_err(|_| demo_error("a writer thread failed"))?)
            .collect::<Result<Vec<_>>>()
    })?;
    let end = wall_nanos();
    let mut latency = Histogram::default();
    per_thread.iter().for_each(|h| latency.merge(h));
    Ok(WriterTotals {
        writes: latency.count(),
        first_start: start,
        last_end: end,
        latency,
        clock_cost: clock,
        ping_latency: Histogram::default(),
    })
}

/// Writes a ping, waits for the demo's follower to answer with a pong, `pings` times; half
/// of each round trip is one publish-to-follower-wake latency across processes.
fn ping_pong(log: &Log, pings: u64, watch: ParentWatch) -> Result<WriterTotals> {
    let mut follower = log.follow(FollowOptions::new())?;
    let mut ping_latency = Histogram::default();
    for round in 0..pings {
        watch.check();
        let token = round.to_le_bytes();
        let began = Instant::now();
        log.write(Level::Info, PING, token)?;
        let deadline = began + Duration::from_secs(10);
        loop {
            // Waits of 100 ms: a demo that died is noticed while no pong comes.
            let Some(record) = follower.next_timeout(Duration::from_millis(100)) else {
                watch.check();
                if Instant::now() > deadline {
                    return Err(demo_error(format!("no pong for ping {round} within 10 s")));
                }
                continue;
            };
            if record.tag == PONG && record.payload == token {
                break;
            }
        }
        ping_latency.record(began.elapsed().as_nanos() as u64 / 2);
    }
    Ok(WriterTotals {
        ping_latency,
        ..WriterTotals::default()
    })
}

fn print_report(
    total: u64,
    padding: u64,
    (writer_threads, ring_blocks): (u64, u64),
    writers: &WriterTotals,
    report: &FollowReport,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let seconds = writers.last_end.saturating_sub(writers.first_start) as f64 / 1e9;
    let rate = if seconds > 0.0 {
        writers.writes as f64 / seconds / 1e6
    } else {
        0.0
    };
    let w = &writers.latency;
    writeln!(out, "\nwriters")?;
    writeln!(
        out,
        "  {} messages in {seconds:.3} s: {rate:.1} M messages/s",
        writers.writes
    )?;
    writeln!(
        out,
        "  write latency: p50 {}  p99 {}  p99.9 {}  max {}  (each sample includes ~{} of clock reads)",
        nanos(w.quantile(0.5)),
        nanos(w.quantile(0.99)),
        nanos(w.quantile(0.999)),
        nanos(w.max()),
        nanos(writers.clock_cost)
    )?;
    let lag = &report.lag;
    writeln!(
        out,
        "follower (live, in this process, while the writers ran)"
    )?;
    writeln!(
        out,
        "  checked {} records, lost {} to wrap-around (lapped by the writers), {} invalid, {} out of order",
        report.checked, report.lost_in_load, report.invalid, report.out_of_order
    )?;
    let lost_records = total.saturating_sub(report.checked);
    writeln!(
        out,
        "  {} of {total} written are accounted for ({lost_records} records lost; the log used {padding} more ids as padding, given back by writers that met a block another writer still held)",
        report.checked + lost_records
    )?;
    if lost_records > 0 {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        writeln!(
            out,
            "  why: {} writer threads and the follower share {cores} cores; the follower reads only while the scheduler runs it, and a ring of {ring_blocks} blocks holds {:.1} ms of writes at this rate, so it is lapped whenever it waits longer than that",
            writer_threads,
            ring_blocks as f64
                / (writers.writes as f64
                    / (writers.last_end.saturating_sub(writers.first_start).max(1) as f64 / 1e9))
                * 1e3
        )?;
    }
    writeln!(
        out,
        "  lag from write to read under load: p50 {}  p99 {}  max {}",
        nanos(lag.quantile(0.5)),
        nanos(lag.quantile(0.99)),
        nanos(lag.max())
    )?;
    let p = &writers.ping_latency;
    writeln!(
        out,
        "follow latency across processes ({} ping-pongs over the log, half round trip)",
        p.count()
    )?;
    writeln!(
        out,
        "  p50 {}  p99 {}  p99.9 {}  max {}",
        nanos(p.quantile(0.5)),
        nanos(p.quantile(0.99)),
        nanos(p.quantile(0.999)),
        nanos(p.max())
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_damage_is_caught() {
        let mut buf = [0u8; PAYLOAD];
        format_payload(&mut buf, 3, 7, 123_456);
        assert_eq!(parse_payload(Level::Info, &buf), Some(((3, 7), 123_456)));
        assert_eq!(parse_payload(Level::Warn, &buf), None);
        let mut damaged = buf;
        damaged[40] = b'x';
        assert_eq!(parse_payload(Level::Info, &damaged), None);
        assert_eq!(parse_payload(Level::Info, &buf[..63]), None);
    }

    #[test]
    fn reports_round_trip() {
        let mut totals = WriterTotals {
            writes: 5,
            first_start: 10,
            last_end: 20,
            clock_cost: 3,
            ..Default::default()
        };
        totals.latency.record(42);
        let back = parse_report(&write_report(&totals)).unwrap();
        assert_eq!(
            (
                back.writes,
                back.first_start,
                back.last_end,
                back.clock_cost
            ),
            (5, 10, 20, 3)
        );
        assert_eq!(back.latency.count(), 1);
        assert!(parse_report("writes=x").is_none());
    }
}
