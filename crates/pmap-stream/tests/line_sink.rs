//! `LineSink`: whole lines from racing threads, trimming on close, whole lines after a kill.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use pmap_stream::{LineSink, LineSinkOptions};
use pounds_testkit::{child_command, child_role};

/// `t<thread> n<seq> <filler>` with a filler length from both and a checksum-like last char,
/// so that a torn or interleaved line does not parse.
fn line(thread: u64, seq: u64) -> String {
    let filler = (thread * 7 + seq * 13) % 97;
    let mark = (b'a' + ((thread + seq) % 26) as u8) as char;
    format!("t{thread} n{seq} {}{mark}\n", "-".repeat(filler as usize))
}

fn parse(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.split(' ');
    let thread = parts.next()?.strip_prefix('t')?.parse().ok()?;
    let seq = parts.next()?.strip_prefix('n')?.parse().ok()?;
    (line(thread, seq) == format!("{text}\n")).then_some((thread, seq))
}

/// Every line of `text` whole, in order per thread from 0; returns how many each had.
fn check_lines(text: &str, threads: u64) -> Vec<u64> {
    let mut next = vec![0u64; threads as usize];
    for (i, text) in text.lines().enumerate() {
        let (thread, seq) = parse(text).unwrap_or_else(|| panic!("line {i} torn: {text:?}"));
        assert_eq!(
            seq, next[thread as usize],
            "line {i}: thread {thread} out of order"
        );
        next[thread as usize] += 1;
    }
    assert!(text.is_empty() || text.ends_with('\n'));
    next
}

#[test]
fn threads_append_whole_lines_while_the_file_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    // 4 KiB of room: the file doubles about ten times under the writers.
    let sink = LineSinkOptions::new().capacity(4096).open(&path).unwrap();
    let (threads, lines) = (6u64, 5_000u64);
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for n in 0..lines {
                    // Half as one write, half as a writeln! of several parts.
                    if n % 2 == 0 {
                        (&sink).write_all(line(t, n).as_bytes()).unwrap();
                    } else {
                        let text = line(t, n);
                        let (head, tail) = text.split_at(text.len() / 2);
                        write!(&sink, "{head}{}", tail).unwrap();
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let expected: u64 = (0..threads)
        .flat_map(|t| (0..lines).map(move |n| line(t, n).len() as u64))
        .sum();
    assert_eq!(sink.close().unwrap(), expected);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.len() as u64, expected, "trimmed to the content");
    assert_eq!(check_lines(&text, threads), vec![lines; threads as usize]);
}

#[test]
fn dropping_the_last_handle_trims_and_reopening_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    {
        let sink = LineSink::open(&path).unwrap();
        let other = sink.clone();
        (&sink).write_all(b"one\n").unwrap();
        drop(sink);
        assert!(std::fs::metadata(&path).unwrap().len() >= LineSink::DEFAULT_CAPACITY as u64);
        (&other).write_all(b"two\n").unwrap();
        other.flush().unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
    let sink = LineSink::open(&path).unwrap();
    (&sink).write_all(b"three\n").unwrap();
    assert_eq!(sink.close().unwrap(), 14);
    assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\nthree\n");
}

#[test]
fn a_flush_timer_runs_and_stops_with_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    // Many rounds, each dropped or closed while the 1 ms timer is likely inside a flush: the
    // trim must still happen in the last handle's drop (or close), before it returns, never
    // later on the flush thread (seen failing: a file read right after the drop still held
    // its zero tail).
    for round in 0..40 {
        let path = dir.path().join(format!("app{round}.log"));
        let sink = LineSinkOptions::new()
            .flush_every(std::time::Duration::from_millis(1))
            .open(&path)
            .unwrap();
        let other = sink.clone();
        for n in 0..2000 {
            (&sink).write_all(line(0, n).as_bytes()).unwrap();
        }
        drop(other);
        // The last handle's drop stops the thread and trims (a hang here is the failure).
        if round % 2 == 0 {
            drop(sink);
        } else {
            let expected: u64 = (0..2000).map(|n| line(0, n).len() as u64).sum();
            assert_eq!(sink.close().unwrap(), expected, "round {round}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(check_lines(&text, 1), [2000], "round {round}");
    }
}

const ROLE: &str = "LINE_SINK_CHILD";

/// The child: four threads write lines until killed; it says `ready` after many.
#[test]
fn line_sink_child_writer() {
    let Some(path) = child_role(ROLE) else {
        return;
    };
    let sink = LineSinkOptions::new()
        .capacity(64 << 10)
        .open(&path)
        .unwrap();
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for n in 0.. {
                    (&sink).write_all(line(t, n).as_bytes()).unwrap();
                    if t == 0 && n == 20_000 {
                        println!("ready");
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        let _ = writer.join();
    }
}

#[cfg(unix)]
#[test]
fn a_killed_writer_leaves_whole_lines_and_the_next_open_follows_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut child = child_command("line_sink_child_writer")
        .env(ROLE, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut said = String::new();
    while !said.contains("ready") {
        said.clear();
        assert!(stdout.read_line(&mut said).unwrap() > 0, "the child ended");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(raw.last(), Some(&0), "killed untrimmed: a zero tail");

    let sink = LineSink::open(&path).unwrap();
    (&sink).write_all(b"after the crash\n").unwrap();
    sink.close().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains('\0'), "no zero run left");
    let (before, last) = text.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(last, "after the crash");
    let counts = check_lines(&format!("{before}\n"), 4);
    assert!(counts[0] > 20_000, "{counts:?}");
}

#[cfg(feature = "tracing")]
#[test]
fn fmt_writes_one_line_per_event_through_make_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let sink = LineSink::open(&path).unwrap();
    let subscriber = tracing_subscriber::fmt()
        .without_time()
        .with_ansi(false)
        .with_writer(sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(user = "bob", "login failed");
    });
    assert_eq!(
        sink.close().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, " INFO line_sink: login failed user=\"bob\"\n");
}
