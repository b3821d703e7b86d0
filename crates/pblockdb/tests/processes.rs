//! Several processes at once: writers on disjoint key ranges while readers check every value
//! they see; and writers killed with SIGKILL at random moments, hundreds of times under
//! `cargo xtask stress`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pblockdb::{Db, DbOptions};

const ROLE: &str = "PBLOCKDB_TEST_ROLE";
const DB_PATH: &str = "PBLOCKDB_TEST_PATH";
const ARG: &str = "PBLOCKDB_TEST_ARG";

use pounds_testkit::{Rng, child_command, child_role, stress_rounds};

fn key(id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.to_le_bytes());
    k[8..].copy_from_slice(&(!id).to_le_bytes());
    k
}

/// A value that checks itself: key id, counter, filler from both, and a CRC of the rest.
fn value(id: u64, counter: u64) -> [u8; 64] {
    let mut v = [0u8; 64];
    v[..8].copy_from_slice(&id.to_le_bytes());
    v[8..16].copy_from_slice(&counter.to_le_bytes());
    for (i, b) in v[16..60].iter_mut().enumerate() {
        *b = (id
            .wrapping_mul(31)
            .wrapping_add(counter)
            .wrapping_add(i as u64)
            % 251) as u8;
    }
    let crc = crc32c::crc32c(&v[..60]);
    v[60..].copy_from_slice(&crc.to_le_bytes());
    v
}

/// The counter in `v`, after checking it is a whole value written for key `id`.
fn check(id: u64, v: &[u8]) -> u64 {
    assert_eq!(v.len(), 64);
    let counter = u64::from_le_bytes(v[8..16].try_into().unwrap());
    assert_eq!(v, value(id, counter), "torn or foreign value for key {id}");
    counter
}

fn spawn(test: &str, role: &str, path: &Path, arg: &str) -> Child {
    child_command(test)
        .env(ROLE, role)
        .env(DB_PATH, path)
        .env(ARG, arg)
        // Children report through files and exit codes; their panics still reach stderr.
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn role() -> Option<(String, PathBuf, String)> {
    let role = child_role(ROLE)?;
    Some((
        role,
        std::env::var(DB_PATH).unwrap().into(),
        std::env::var(ARG).unwrap_or_default(),
    ))
}

const WRITERS: u64 = 3;
const READERS: u64 = 2;
const KEYS_PER_WRITER: u64 = 300;
const OPS_PER_WRITER: u64 = 4000;

/// Child role: random puts and deletes on this writer's key range; at the end, writes the final
/// state it expects (`id counter` or `id -`) to `<path>.writer<N>`.
#[test]
fn concurrent_processes_child_writer() {
    let Some((role, path, arg)) = role() else {
        return;
    };
    if role != "writer" {
        return;
    }
    let w: u64 = arg.parse().unwrap();
    let db = Db::open_existing(&path).unwrap();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
    let mut state: HashMap<u64, Option<u64>> = HashMap::new();
    for counter in 1..=OPS_PER_WRITER {
        let id = w * 1_000_000 + rng.below(KEYS_PER_WRITER);
        if rng.below(4) == 0 {
            let existed = db.delete(&key(id)).unwrap();
            assert_eq!(existed, state.get(&id).copied().flatten().is_some());
            state.insert(id, None);
        } else if rng.below(8) == 0 {
            let mut batch = db.lock_writes().unwrap();
            for j in 0..4 {
                let id = w * 1_000_000 + (id + j) % KEYS_PER_WRITER;
                batch.put(&key(id), &value(id, counter)).unwrap();
                state.insert(id, Some(counter));
            }
        } else {
            db.put(&key(id), &value(id, counter)).unwrap();
            state.insert(id, Some(counter));
        }
    }
    let report: String = state
        .iter()
        .map(|(id, c)| match c {
            Some(c) => format!("{id} {c}\n"),
            None => format!("{id} -\n"),
        })
        .collect();
    std::fs::write(format!("{}.writer{w}", path.display()), report).unwrap();
}

/// Child role: reads random keys of every writer until `<path>.done` appears; every value must
/// be whole, belong to its key, and never go back to an older counter.
#[test]
fn concurrent_processes_child_reader() {
    let Some((role, path, arg)) = role() else {
        return;
    };
    if role != "reader" {
        return;
    }
    let r: u64 = arg.parse().unwrap();
    let db = Db::open_read_only(&path).unwrap();
    let done = PathBuf::from(format!("{}.done", path.display()));
    let mut rng = Rng::new(0x1234_5678 ^ (r + 7));
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut buf = [0u8; 64];
    let (mut reads, mut hits) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done.exists() {
        assert!(
            Instant::now() < deadline,
            "reader gave up waiting for the writers"
        );
        for _ in 0..200 {
            let id = rng.below(WRITERS) * 1_000_000 + rng.below(KEYS_PER_WRITER);
            reads += 1;
            if db.get_into(&key(id), &mut buf).unwrap() {
                hits += 1;
                let counter = check(id, &buf);
                let seen = last.entry(id).or_insert(0);
                assert!(
                    counter >= *seen,
                    "key {id} went back from {seen} to {counter}"
                );
                *seen = counter;
            }
        }
        if rng.below(10) == 0 {
            for (k, v) in db.iter().unwrap() {
                let id = u64::from_le_bytes(k[..8].try_into().unwrap());
                assert_eq!(k, key(id));
                check(id, &v);
            }
        }
    }
    std::fs::write(
        format!("{}.reader{r}", path.display()),
        format!("{reads} {hits}"),
    )
    .unwrap();
}

#[test]
fn concurrent_processes_readers_never_see_torn_values() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    // A small table, so the writers grow it (and readers remap) while everyone runs.
    DbOptions::new(16, 64).capacity(8).open(&path).unwrap();
    let readers: Vec<Child> = (0..READERS)
        .map(|r| {
            spawn(
                "concurrent_processes_child_reader",
                "reader",
                &path,
                &r.to_string(),
            )
        })
        .collect();
    let writers: Vec<Child> = (0..WRITERS)
        .map(|w| {
            spawn(
                "concurrent_processes_child_writer",
                "writer",
                &path,
                &w.to_string(),
            )
        })
        .collect();
    for mut child in writers {
        assert!(child.wait().unwrap().success(), "a writer failed");
    }
    std::fs::write(format!("{}.done", path.display()), b"").unwrap();
    for mut child in readers {
        assert!(child.wait().unwrap().success(), "a reader failed");
    }
    let db = Db::open_existing(&path).unwrap();
    let stats = db.verify().unwrap();
    let mut expected = 0;
    for w in 0..WRITERS {
        let report = std::fs::read_to_string(format!("{}.writer{w}", path.display())).unwrap();
        for line in report.lines() {
            let (id, c) = line.split_once(' ').unwrap();
            let id: u64 = id.parse().unwrap();
            match c {
                "-" => assert_eq!(
                    db.get(&key(id)).unwrap(),
                    None,
                    "key {id} should be deleted"
                ),
                c => {
                    expected += 1;
                    let got = db.get(&key(id)).unwrap().expect("key missing");
                    assert_eq!(check(id, &got), c.parse::<u64>().unwrap(), "key {id}");
                }
            }
        }
    }
    assert_eq!(stats.live, expected);
    assert_eq!(db.len() as u64, expected);
    for r in 0..READERS {
        let report = std::fs::read_to_string(format!("{}.reader{r}", path.display())).unwrap();
        let hits: u64 = report.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(hits > 0, "reader {r} never saw a record");
    }
}

const CRASH_KEYS: u64 = 1500;

/// Records in the crash test's intent log (16 bytes each after an 8-byte count).
const LOG_RECORDS: usize = 1 << 20;
const DELETED: u64 = u64::MAX;

/// Child role for the crash test: writes until killed, in batches of random length (the file
/// lock held across each), recording each intent (`id`, `counter` or `DELETED`) in a shared
/// mapped log before performing it, so the log survives the kill and costs no system call.
#[test]
fn crash_child_writer() {
    let Some((role, path, arg)) = role() else {
        return;
    };
    if role != "crash" {
        return;
    }
    let seed: u64 = arg.parse().unwrap();
    let db = Db::open_existing(&path).unwrap();
    let log = pmap::open(
        format!("{}.log", path.display()),
        (8 + 16 * LOG_RECORDS) as u64,
    )
    .unwrap()
    .into_shared();
    let logged = log.atomic_u64(0).unwrap();
    let mut rng = Rng::new(seed | 1);
    let mut counter = seed * 1_000_000;
    let mut n = 0usize;
    while n < LOG_RECORDS {
        let mut batch = db.lock_writes().unwrap();
        for _ in 0..1 + rng.below(if seed % 2 == 0 { 1 } else { 64 }) {
            if n == LOG_RECORDS {
                break;
            }
            counter += 1;
            let id = rng.below(CRASH_KEYS);
            let delete = rng.below(3) == 0;
            log.write(8 + 16 * n, &[id, if delete { DELETED } else { counter }])
                .unwrap();
            n += 1;
            logged.store(n as u64, std::sync::atomic::Ordering::Release);
            if delete {
                batch.delete(&key(id)).unwrap();
            } else {
                batch.put(&key(id), &value(id, counter)).unwrap();
            }
        }
    }
    // Out of log: wait to be killed.
    loop {
        std::thread::park();
    }
}

#[cfg(unix)]
#[test]
fn crash_writers_killed_mid_write_leave_old_or_new() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let log_path = PathBuf::from(format!("{}.log", path.display()));
    DbOptions::new(16, 64).capacity(8).open(&path).unwrap();
    // What every key held when the last round ended (absent = deleted / never written).
    let mut known: HashMap<u64, u64> = HashMap::new();
    let mut rng = Rng::new(0xdead_beef);
    let rounds = u64::from(stress_rounds(50, 1));
    let mut armed = 0u64;
    for round in 1..=rounds {
        let _ = std::fs::remove_file(&log_path);
        let mut child = spawn("crash_child_writer", "crash", &path, &round.to_string());
        // Kill after a random number of logged intents.
        let target = 1 + rng.below(20_000);
        let deadline = Instant::now() + Duration::from_secs(60);
        let logged = || -> u64 {
            std::fs::read(&log_path)
                .ok()
                .filter(|b| b.len() >= 8)
                .map_or(0, |b| u64::from_le_bytes(b[..8].try_into().unwrap()))
        };
        loop {
            let n = pmap::Map::open_read_only(&log_path).map_or(0, |m| m.read::<u64>(0).unwrap());
            if n >= target {
                break;
            }
            assert!(Instant::now() < deadline, "crash child made no progress");
            assert!(
                child.try_wait().unwrap().is_none(),
                "crash child exited early"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        // `Child::kill` is SIGKILL on Unix: no chance to clean up, as in a real crash.
        child.kill().unwrap();
        child.wait().unwrap();

        // Per key: the last logged intent may or may not have happened; the one before it did.
        let n = logged() as usize;
        let bytes = std::fs::read(&log_path).unwrap();
        let mut last: HashMap<u64, Option<u64>> = HashMap::new();
        let mut before: HashMap<u64, Option<u64>> = HashMap::new();
        for record in bytes[8..].chunks_exact(16).take(n) {
            let id = u64::from_le_bytes(record[..8].try_into().unwrap());
            let c = u64::from_le_bytes(record[8..].try_into().unwrap());
            let c = (c != DELETED).then_some(c);
            let prev = last
                .insert(id, c)
                .unwrap_or_else(|| known.get(&id).copied());
            before.insert(id, prev);
        }
        if std::fs::read(&path).unwrap()[192..200] != [0; 8] {
            armed += 1;
        }

        let db = Db::open_existing(&path).unwrap();
        let stats = db
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: index rejected: {e}"));
        let mut now: HashMap<u64, u64> = HashMap::new();
        for (k, v) in db.iter().unwrap() {
            let id = u64::from_le_bytes(k[..8].try_into().unwrap());
            assert_eq!(k, key(id));
            now.insert(id, check(id, &v));
        }
        assert_eq!(stats.live as usize, now.len());
        for id in 0..CRASH_KEYS {
            let got = now.get(&id).copied();
            match last.get(&id) {
                None => assert_eq!(
                    got,
                    known.get(&id).copied(),
                    "round {round}: untouched key {id} changed"
                ),
                Some(&new) => {
                    let old = before.get(&id).copied().flatten();
                    assert!(
                        got == new || got == old,
                        "round {round}: key {id} holds {got:?}, neither old {old:?} nor new {new:?}"
                    );
                }
            }
        }
        // Writes work after the crash.
        let probe = CRASH_KEYS + round;
        db.put(&key(probe), &value(probe, round)).unwrap();
        assert_eq!(check(probe, &db.get(&key(probe)).unwrap().unwrap()), round);
        assert!(db.delete(&key(probe)).unwrap());
        known = now;
    }
    eprintln!("crash: {rounds} rounds, {armed} killed with the journal armed (replayed on open)");
}

/// Child role: with the file-size limit just above the database, fills it until the table must
/// grow and cannot.
#[cfg(unix)]
#[test]
fn full_child() {
    let Some((role, path, _)) = role() else {
        return;
    };
    if role != "full" {
        return;
    }
    let db = Db::open_existing(&path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    pmap::testing::limit_file_size(len + 4096).unwrap();
    let mut stored = 0u64;
    let err = loop {
        match db.put(&key(stored), &value(stored, 1)) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 100_000, "the file-size limit did not bite");
    };
    assert!(matches!(err, pblockdb::Error::Full { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot grow"), "{err}");
    assert_eq!(db.len() as u64, stored);
    for i in 0..stored {
        assert_eq!(check(i, &db.get(&key(i)).unwrap().unwrap()), 1);
    }
    db.verify().unwrap();
    // A replace needs no growth and still works.
    assert!(db.put(&key(0), &value(0, 2)).unwrap());
    std::fs::write(format!("{}.full", path.display()), stored.to_string()).unwrap();
}

#[cfg(unix)]
#[test]
fn full_disk_is_a_typed_error_and_loses_nothing() {
    if role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    DbOptions::new(16, 64).capacity(8).open(&path).unwrap();
    let mut child = spawn("full_child", "full", &path, "");
    assert!(child.wait().unwrap().success(), "the full child failed");
    let stored: u64 = std::fs::read_to_string(format!("{}.full", path.display()))
        .unwrap()
        .parse()
        .unwrap();
    assert!(stored >= 8);
    let db = Db::open_existing(&path).unwrap();
    assert_eq!(db.len() as u64, stored);
    assert_eq!(check(0, &db.get(&key(0)).unwrap().unwrap()), 2);
    db.verify().unwrap();
    // Without the limit, it grows again.
    db.put(&key(stored), &value(stored, 3)).unwrap();
    assert_eq!(db.len() as u64, stored + 1);
}
