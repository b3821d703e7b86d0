//! Writers stalled at any instruction (stopped with SIGSTOP, or parked by the stall hook between
//! their reservation and their last store) while other writers lap the ring: no record another
//! writer published is destroyed or altered.
// Stops writers with `kill -STOP`, and takes over dead holders by pid (probed on Unix only:
// elsewhere every holder counts as alive, so a killed holder's block stays held).
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::{check, payload};
use pounds_testkit::{Rng, child_command, signal, stress_rounds, stress_run};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use plog::{Level, Log, LogOptions};

const BLOCKS: u64 = 1024;
const BLOCK_SIZE: u32 = 128;
const CHILD_PATH: &str = "PLOG_STALL_CHILD_PATH";
const CHILD_ID: &str = "PLOG_STALL_CHILD_ID";
const CHILD_COUNT: &str = "PLOG_STALL_CHILD_COUNT";
const CHILD_OUT: &str = "PLOG_STALL_CHILD_OUT";

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stall.plog");
    (dir, path)
}

/// A log of `BLOCKS` blocks in `lanes` lanes (`BLOCKS / lanes` blocks each).
fn create(path: &Path, lanes: u32) -> Log {
    LogOptions::new()
        .blocks(BLOCKS)
        .block_size(BLOCK_SIZE)
        .lanes(lanes)
        .open(path)
        .unwrap()
}

/// Where id `id` lies: its lane and its position in that lane (ids are `position * lanes +
/// lane`, docs/plog-format.md, "Lanes").
fn lane_and_position(id: u64, lanes: u64) -> (usize, u64) {
    ((id % lanes) as usize, id / lanes)
}

/// Payload sizes of one or two blocks, so that records of one lap start at blocks another lap
/// used for the middle of a record.
fn extra(seq: u32) -> usize {
    (seq as usize * 37) % 150
}

/// The child role: writes `CHILD_COUNT` records and then lists, in `CHILD_OUT`, every id a
/// write returned `Ok` for, with its sequence number.
#[test]
fn stall_child_writer() {
    let Ok(path) = std::env::var(CHILD_PATH) else {
        return;
    };
    let id: u32 = std::env::var(CHILD_ID).unwrap().parse().unwrap();
    let count: u32 = std::env::var(CHILD_COUNT).unwrap().parse().unwrap();
    let out = std::env::var(CHILD_OUT).unwrap();
    let log = Log::open(&path).unwrap();
    let tag = format!("w{id}");
    let mut written = String::new();
    for seq in 0..count {
        match log.write(Level::Info, &tag, payload(id, seq, extra(seq))) {
            Ok(at) => written.push_str(&format!("{at} {seq}\n")),
            // A writer that keeps meeting blocks held by stopped writers may give up (its own
            // record is lost, nobody else's); any other error fails the test.
            Err(e) if e.to_string().contains("no free place") => {}
            Err(e) => panic!("write failed: {e}"),
        }
    }
    std::fs::write(out, written).unwrap();
}

fn spawn_writer(path: &Path, id: u32, count: u32, out: &Path) -> Child {
    child_command("stall_child_writer")
        .env(CHILD_PATH, path)
        .env(CHILD_ID, id.to_string())
        .env(CHILD_COUNT, count.to_string())
        .env(CHILD_OUT, out)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every id a writer was told was written and that lies in the final lap of its lane is
/// readable and holds exactly what that writer wrote.
fn check_final_lap(log: &Log, acknowledged: &HashMap<u64, (u32, u32)>) -> usize {
    let counters = plog::testing::lane_counters(log);
    let lanes = counters.len() as u64;
    let lane_blocks = BLOCKS / lanes;
    let mut held: HashMap<u64, (u32, u32)> = HashMap::new();
    for record in log.reader() {
        held.insert(record.id, check(&record));
    }
    let mut checked = 0;
    for (&id, &(writer, seq)) in acknowledged {
        let (lane, position) = lane_and_position(id, lanes);
        let next = counters[lane];
        let oldest = next.saturating_sub(lane_blocks);
        if position < oldest {
            continue;
        }
        assert_eq!(
            held.get(&id),
            Some(&(writer, seq)),
            "record {id} of writer {writer} (seq {seq}) in lane {lane}'s final lap {oldest}..{next} is gone or altered"
        );
        checked += 1;
    }
    checked
}

/// Random SIGSTOP and SIGCONT of writer processes while the others lap a 1024 x 128 B ring, of
/// one lane and of two (where the writers on each processor share a lane).
#[test]
fn stall_stopped_writers_never_destroy_published_records() {
    for lanes in [1, 2] {
        stopped_writers_never_destroy_published_records(lanes);
    }
}

fn stopped_writers_never_destroy_published_records(lanes: u32) {
    let rounds = stress_rounds(5, 10);
    // Under `cargo xtask stress` (release), each writer writes ten times more, so that a round
    // lasts long enough for many stops to land mid-write.
    let per_writer = if stress_run() { 200_000 } else { 20_000 };
    let mut rng = Rng::new(0x5eed_57a1);
    let (mut checked, mut stops) = (0, 0);
    for round in 0..rounds {
        let (dir, path) = tmp();
        drop(create(&path, lanes));
        let outs: Vec<PathBuf> = (0..3)
            .map(|w| dir.path().join(format!("w{w}.ids")))
            .collect();
        let mut children: Vec<Child> = (0..3u32)
            .map(|w| spawn_writer(&path, w, per_writer, &outs[w as usize]))
            .collect();
        loop {
            // Only children not yet reaped: an exited one stays a zombie, which can still be
            // signalled, until try_wait reaps it.
            let running: Vec<usize> = (0..children.len())
                .filter(|&i| children[i].try_wait().unwrap().is_none())
                .collect();
            if running.is_empty() {
                break;
            }
            let victim = &children[running[rng.below(running.len() as u64) as usize]];
            signal(victim.id(), "-STOP");
            stops += 1;
            // How long the writer stays stopped: the stall being tested, not a wait for anything.
            std::thread::sleep(Duration::from_micros(rng.below(2000)));
            signal(victim.id(), "-CONT");
            std::thread::sleep(Duration::from_micros(rng.below(500)));
        }
        let mut acknowledged = HashMap::new();
        for (w, child) in children.iter_mut().enumerate() {
            assert!(child.wait().unwrap().success(), "round {round}: writer {w}");
            for line in std::fs::read_to_string(&outs[w]).unwrap().lines() {
                let (id, seq) = line.split_once(' ').unwrap();
                acknowledged.insert(id.parse().unwrap(), (w as u32, seq.parse().unwrap()));
            }
        }
        let log = Log::open_read_only(&path).unwrap();
        checked += check_final_lap(&log, &acknowledged);
    }
    assert!(checked > 0);
    eprintln!(
        "stall ({lanes} lanes): {rounds} rounds, {stops} stops, {checked} final-lap records checked"
    );
}

/// The child role for the deterministic test: arms the stall hook at `CHILD_POINT`, writes one
/// record, parks at the hook (telling the parent its position on stdout), waits for a line on
/// stdin, then finishes the write and prints its result.
#[test]
fn stall_child_parked_writer() {
    let Ok(path) = std::env::var(CHILD_PATH) else {
        return;
    };
    let point = match std::env::var("PLOG_STALL_POINT").unwrap().as_str() {
        "reserved" => plog::testing::StallPoint::Reserved,
        _ => plog::testing::StallPoint::Claimed,
    };
    plog::testing::stall_once(point, |pos| {
        println!("parked {pos}");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
    });
    let log = Log::open(&path).unwrap();
    match log.write(Level::Info, "w9", payload(9, 0, 40)) {
        Ok(id) => println!("wrote {id}"),
        Err(e) => println!("failed {e}"),
    }
}

/// Starts `stall_child_parked_writer` parked at `point` and waits until it is: the child, the
/// rest of its stdout, and the position it parked at.
fn spawn_parked(path: &Path, point: &str) -> (Child, Lines<BufReader<ChildStdout>>, u64) {
    let mut child = child_command("stall_child_parked_writer")
        .env(CHILD_PATH, path)
        .env("PLOG_STALL_POINT", point)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let parked: u64 = loop {
        // The harness prints the test's name on the same line, before the child's words.
        let line = lines.next().unwrap().unwrap();
        if let Some((_, pos)) = line.split_once("parked ") {
            break pos.trim().parse().unwrap();
        }
    };
    (child, lines, parked)
}

/// Writes records of one or two blocks in every lane in turn, from sequence number `*seq` on,
/// until each lane's counter is at least `past`: what each write returned, as acknowledged.
fn lap_every_lane(
    log: &Log,
    past: u64,
    seq: &mut u32,
    blocks_of: fn(u32) -> usize,
) -> HashMap<u64, (u32, u32)> {
    let lanes = log.stats().lanes as usize;
    let mut acknowledged = HashMap::new();
    while plog::testing::lane_counters(log)
        .iter()
        .any(|&next| next < past)
    {
        let lane = *seq as usize % lanes;
        let id = plog::testing::write_in_lane(
            log,
            lane,
            Level::Info,
            "w0",
            &payload(0, *seq, blocks_of(*seq)),
        )
        .unwrap();
        acknowledged.insert(id, (0, *seq));
        *seq += 1;
    }
    acknowledged
}

/// A writer parked between its reservation and its claim (or between its claim and its
/// publication) while another writer laps the ring three times, then let go: every record the
/// other writer published in the final lap survives intact. On a log of one lane and of two
/// (the parked writer's lane is its processor's, so every lane is lapped).
#[test]
fn stall_parked_writer_never_destroys_newer_records() {
    for (lanes, point) in [
        (1, "reserved"),
        (1, "claimed"),
        (2, "reserved"),
        (2, "claimed"),
    ] {
        let (_dir, path) = tmp();
        let log = create(&path, lanes);
        let mut seq = 0;
        lap_every_lane(&log, 3, &mut seq, extra);
        // `parked` is a position in the parked writer's lane.
        let (mut child, mut lines, parked) = spawn_parked(&path, point);
        let lane_blocks = BLOCKS / u64::from(lanes);
        // Lap every lane three times past the parked writer's position.
        let mut acknowledged = lap_every_lane(&log, parked + 3 * lane_blocks, &mut seq, extra);
        writeln!(child.stdin.take().unwrap()).unwrap();
        let result = loop {
            let line = lines.next().unwrap().unwrap();
            if line.contains("wrote ") || line.contains("failed ") {
                break line;
            }
        };
        assert!(child.wait().unwrap().success());
        // The parked writer's own record: written again at a fresh position if it had not
        // claimed yet; if it had, published at its old, lapped position and lost.
        if let Some((_, id)) = result.split_once("wrote ") {
            let id: u64 = id.trim().parse().unwrap();
            if point == "reserved" {
                let (_, position) = lane_and_position(id, u64::from(lanes));
                assert!(
                    position >= parked + 3 * lane_blocks,
                    "{lanes} lanes, {point}: rewritten at {id}, not at {parked} of its lane"
                );
                acknowledged.insert(id, (9, 0));
            }
        }
        let checked = check_final_lap(&log, &acknowledged);
        assert!(
            checked as u64 > BLOCKS / 2,
            "{lanes} lanes, {point}: {checked} records checked"
        );
    }
}

/// A writer killed while it holds a block (parked after its claim, then SIGKILLed): the next
/// writer to reach the block sees its holder's process dead and takes it over, so the dead
/// writer costs its own record and nothing after: the final lap of every lane is whole, the
/// dead block's slot included. On a log of one lane and of two.
#[test]
fn stall_killed_holder_costs_only_its_own_record() {
    for lanes in [1u32, 2] {
        let (_dir, path) = tmp();
        let log = create(&path, lanes);
        let (mut child, _lines, parked) = spawn_parked(&path, "claimed");
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
        let lane_blocks = BLOCKS / u64::from(lanes);
        lap_every_lane(&log, parked + 3 * lane_blocks, &mut 0, |_| 0);
        let mut reader = log.reader();
        let mut positions: Vec<Vec<u64>> = vec![Vec::new(); lanes as usize];
        for record in reader.by_ref() {
            let (lane, position) = lane_and_position(record.id, u64::from(lanes));
            positions[lane].push(position);
        }
        for (lane, (mut held, next)) in positions
            .into_iter()
            .zip(plog::testing::lane_counters(&log))
            .enumerate()
        {
            held.sort_unstable();
            assert_eq!(
                held,
                (next - lane_blocks..next).collect::<Vec<_>>(),
                "{lanes} lanes: the final lap of lane {lane} holds a record at every block"
            );
        }
        assert_eq!((reader.lost(), reader.padding()), (0, 0), "{lanes} lanes");
    }
}
