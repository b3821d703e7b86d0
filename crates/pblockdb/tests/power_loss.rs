//! Power loss, simulated: a workload of multi-key transactions runs through a handle whose
//! storage records every write and sync (`DbOptions::record_to`), and for cut points across the
//! record the simulator (`common/crash.rs`) builds the files a power loss there could leave:
//! the synced bytes plus subsets of the pages written since. Each is opened, recovered,
//! verified and compared with the committed states. With `Durability::Synced` the database is
//! exactly a prefix of the committed transactions and never lacks one whose commit returned;
//! with `Durability::Buffered` the process-death case (every write kept, in order) gives the
//! same, and the power-loss case promises nothing, which the last test shows the simulator
//! finds (docs/pblockdb-format.md, "Durability").
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/crash.rs"]
mod crash;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crash::{Kept, image};
use pblockdb::testing::{Op, Recorder};
use pblockdb::{Db, DbOptions, Durability, Storage};
use pounds_testkit::{Rng, stress_rounds};

const KEY: usize = 12;
const VALUE: usize = 40;
/// Every storage runs each workload: their writes and syncs must come in an order that holds.
const STORAGES: [Storage; 3] = [Storage::Mapped, Storage::Write, Storage::Unmapped];
/// Keys the transactions choose from: few enough that the table (128 slots) never rebuilds
/// (the simulator does not model the file growing).
const KEYS: u64 = 40;
const TRANSACTIONS: u64 = 30;
/// Cut points a round tries, spread over the record, and page subsets at each.
const CUTS: usize = 300;
const RANDOM_SUBSETS: usize = 3;

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn key(i: u64) -> Vec<u8> {
    format!("k{i:02}").into_bytes()
}

/// A value naming its transaction and key, of a length that varies with both.
fn value(txn: u64, k: u64) -> Vec<u8> {
    let mut v = format!("t{txn}k{k}").into_bytes();
    v.resize(((txn * 7 + k) % VALUE as u64) as usize, b'.');
    v
}

/// What a workload left: the file on disk before it, every write and sync it made, and the
/// committed states (`states[0]`, the base, then one after each transaction) with the length of
/// the record when each commit returned (`ends[t]`).
struct Run {
    base: Vec<u8>,
    ops: Vec<Op>,
    states: Vec<State>,
    ends: Vec<usize>,
    /// Transactions that committed something (one that only deleted absent keys commits
    /// nothing).
    commits: u64,
}

fn workload(dir: &Path, storage: Storage, durability: Durability, seed: u64) -> Run {
    let path = dir.join(format!("live-{storage:?}-{seed:x}.db"));
    let mut model = State::new();
    {
        let db = DbOptions::new(KEY, VALUE)
            .capacity(64)
            .history(128)
            .open(&path)
            .unwrap();
        db.write(|txn| {
            for k in 0..KEYS / 2 {
                txn.put(&key(k), &value(0, k))?;
                model.insert(key(k), value(0, k));
            }
            Ok(())
        })
        .unwrap();
        db.flush().unwrap();
    }
    let base = std::fs::read(&path).unwrap();
    let recorder = Arc::new(Recorder::new());
    let db = DbOptions::new(KEY, VALUE)
        .history(128)
        .storage(storage)
        .durability(durability)
        .record_to(Arc::clone(&recorder))
        .open(&path)
        .unwrap();
    let before = db.commit_count();
    let mut rng = Rng::new(seed);
    let mut states = vec![model.clone()];
    let mut ends = vec![recorder.len()];
    for t in 1..=TRANSACTIONS {
        let changes = 1 + rng.below(6);
        db.write(|txn| {
            for _ in 0..changes {
                let k = rng.below(KEYS);
                if rng.below(4) == 0 {
                    txn.delete(&key(k))?;
                    model.remove(&key(k));
                } else {
                    txn.put(&key(k), &value(t, k))?;
                    model.insert(key(k), value(t, k));
                }
            }
            Ok(())
        })
        .unwrap();
        states.push(model.clone());
        ends.push(recorder.len());
    }
    assert_eq!(db.table_generation().unwrap(), 0, "the table was rebuilt");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        base.len() as u64,
        "the file grew"
    );
    assert_eq!(
        db.iter().unwrap().collect::<Result<State, _>>().unwrap(),
        model
    );
    // The simulator builds its files from the record; the record must be what the storage put
    // into the file (a storage that noted a write but made none would pass every cut).
    let ops = recorder.ops();
    let replayed = image(&base, &ops, ops.len(), Kept::All, &mut Rng::new(seed));
    assert!(
        std::fs::read(&path).unwrap() == replayed,
        "{storage:?}: the file is not the replayed record"
    );
    Run {
        base,
        ops,
        states,
        ends,
        commits: db.commit_count() - before,
    }
}

/// Opens `bytes` as a database at `path`: recovers it (a writable handle's `verify` takes the
/// writer lock, which rolls back an unfinished commit), verifies it, reads every record, and
/// checks it still takes a commit. `Err` with what failed.
fn reopen(path: &Path, bytes: &[u8]) -> Result<State, String> {
    std::fs::write(path, bytes).unwrap();
    let db = Db::open(path).map_err(|e| format!("open: {e}"))?;
    db.verify().map_err(|e| format!("verify: {e}"))?;
    let state: State = db
        .iter()
        .and_then(|records| records.collect())
        .map_err(|e| format!("iter: {e}"))?;
    if db.len() != state.len() {
        return Err(format!("len {} but {} records", db.len(), state.len()));
    }
    db.put(b"after", b"crash")
        .map_err(|e| format!("put: {e}"))?;
    if db.get(b"after").map_err(|e| format!("get: {e}"))? != Some(b"crash".to_vec()) {
        return Err("a put after the crash was not read back".into());
    }
    Ok(state)
}

/// Opens `bytes` read-only at `path`, before any writable handle recovered it: the state a
/// reader sees without writing the file. `Err` with what failed.
fn read_only_state(path: &Path, bytes: &[u8]) -> Result<State, String> {
    std::fs::write(path, bytes).unwrap();
    let db = Db::open_read_only(path).map_err(|e| format!("open read-only: {e}"))?;
    let state: State = db
        .iter()
        .and_then(|records| records.collect())
        .map_err(|e| format!("read-only iter: {e}"))?;
    if db.len() != state.len() {
        return Err(format!(
            "read-only len {} but {} records",
            db.len(),
            state.len()
        ));
    }
    for (key, value) in &state {
        if db
            .get(key)
            .map_err(|e| format!("read-only get: {e}"))?
            .as_ref()
            != Some(value)
        {
            return Err("a read-only get disagrees with its iteration".into());
        }
    }
    Ok(state)
}

/// The cut points of a round: every one if there are at most `CUTS`, else `CUTS` spread over
/// the record with a random start.
fn cuts(ops: usize, rng: &mut Rng) -> Vec<usize> {
    if ops < CUTS {
        return (0..=ops).collect();
    }
    let step = ops / CUTS;
    let start = rng.below(step as u64) as usize;
    (0..CUTS).map(|i| start + i * step).chain([ops]).collect()
}

/// How many transactions' commits had returned once `cut` operations were made.
fn returned(run: &Run, cut: usize) -> usize {
    run.ends[1..].iter().filter(|&&end| end <= cut).count()
}

/// Checks the files of every cut point of `run` with the subsets `kept`: each must hold a
/// committed state `m` or `m + 1`, where `m` transactions had returned at the cut. Returns the
/// number of files checked.
fn check_prefixes(dir: &Path, run: &Run, kept: &[Kept], rng: &mut Rng) -> usize {
    let path = dir.join("crashed.db");
    let mut checked = 0;
    for cut in cuts(run.ops.len(), rng) {
        let m = returned(run, cut);
        for &kept in kept {
            let bytes = image(&run.base, &run.ops, cut, kept, rng);
            let seen = read_only_state(&path, &bytes)
                .unwrap_or_else(|e| panic!("cut {cut} of {}, {kept:?}: {e}", run.ops.len()));
            let state = reopen(&path, &bytes)
                .unwrap_or_else(|e| panic!("cut {cut} of {}, {kept:?}: {e}", run.ops.len()));
            // A reader that writes nothing sees what recovery then makes of the file.
            assert!(
                seen == state,
                "cut {cut} of {}, {kept:?}: a read-only handle saw another state than the \
                 recovered file holds",
                run.ops.len()
            );
            let allowed = &run.states[m..run.states.len().min(m + 2)];
            assert!(
                allowed.contains(&state),
                "cut {cut} of {} ({m} commits returned), {kept:?}: the database is no prefix \
                 of the committed transactions, or lost a synced one",
                run.ops.len()
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn crash_power_loss_after_synced_commits_leaves_a_prefix_with_every_synced_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut kept = vec![Kept::None, Kept::All];
    kept.extend([Kept::Random; RANDOM_SUBSETS]);
    let rounds = stress_rounds(1, 25);
    let mut checked = 0;
    for (round, storage) in
        (0..u64::from(rounds)).flat_map(|round| STORAGES.map(|storage| (round, storage)))
    {
        let run = workload(dir.path(), storage, Durability::Synced, 0x5eed_0001 + round);
        let syncs = run
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Sync { .. }))
            .count();
        assert!(run.commits >= TRANSACTIONS / 2, "{} commits", run.commits);
        assert!(
            syncs as u64 >= 2 * run.commits,
            "{syncs} syncs for {} synced commits",
            run.commits
        );
        let mut rng = Rng::new(0xc0ff_ee00 + round);
        checked += check_prefixes(dir.path(), &run, &kept, &mut rng);
    }
    assert!(
        checked >= STORAGES.len() * CUTS * kept.len(),
        "{checked} files checked"
    );
    println!("{rounds} rounds, {checked} files checked");
}

#[test]
fn crash_process_death_after_buffered_commits_leaves_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let rounds = stress_rounds(1, 25);
    for (round, storage) in
        (0..u64::from(rounds)).flat_map(|round| STORAGES.map(|storage| (round, storage)))
    {
        let run = workload(
            dir.path(),
            storage,
            Durability::Buffered,
            0x5eed_1001 + round,
        );
        assert!(!run.ops.iter().any(|op| matches!(op, Op::Sync { .. })));
        let mut rng = Rng::new(0xbeef_0000 + round);
        // Every write reached the file in order (the page cache outlives the process): the
        // transactions whose commits returned, and the one in flight whole or not at all.
        check_prefixes(dir.path(), &run, &[Kept::All], &mut rng);
        // Nothing reached the disk: the base.
        let path = dir.path().join("crashed.db");
        let bytes = image(&run.base, &run.ops, run.ops.len(), Kept::None, &mut rng);
        assert_eq!(reopen(&path, &bytes).unwrap(), run.states[0]);
    }
}

/// `Durability::Buffered` does not survive a power loss (its documented contract): without
/// syncs the pages reach the disk in any order. The simulator must find files that hold no
/// committed state, or this suite could not tell a missing sync from a present one.
#[test]
fn crash_power_loss_after_buffered_commits_can_leave_a_mix_the_simulator_finds() {
    let dir = tempfile::tempdir().unwrap();
    let run = workload(
        dir.path(),
        Storage::Mapped,
        Durability::Buffered,
        0x5eed_2001,
    );
    let mut rng = Rng::new(0xbad_5eed);
    let path = dir.path().join("crashed.db");
    let mut mixed = 0;
    for cut in cuts(run.ops.len(), &mut rng) {
        let m = returned(&run, cut);
        let bytes = image(&run.base, &run.ops, cut, Kept::Random, &mut rng);
        match reopen(&path, &bytes) {
            Ok(state) if run.states[..run.states.len().min(m + 2)].contains(&state) => {}
            _ => mixed += 1,
        }
    }
    println!("{mixed} of {} files mixed or damaged", CUTS + 1);
    assert!(mixed > 0, "no cut gave a mixed or damaged file");
}
