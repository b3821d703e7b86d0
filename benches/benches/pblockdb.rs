//! `pblockdb` beside LMDB (through `heed`, no fsync), redb (`Durability::None`) and
//! `std::collections::HashMap` (the in-memory limit), in one run: 16-byte keys, 64-byte values, at 100,000 and 1,000,000
//! entries.
//!
//! Criterion groups `pblockdb_<N>` hold, per operation, one function per contender:
//! - `get_hit/*`, `get_miss/*`: random keys. `pblockdb` uses `get_with` (no allocation, no
//!   lock, sees every committed write); `pblockdb_txn` reads through one reused read
//!   transaction (a snapshot, as `heed_shared_txn`); `heed_txn` opens a read transaction per
//!   get, which is what gives LMDB the same freshness; `heed_shared_txn` reuses one read
//!   transaction (the LMDB floor); `hashmap` is `HashMap::get`.
//! - `put_replace/*`: overwrite a random existing key. `pblockdb` commits one write
//!   transaction per put (mutex plus the writer word, history entry, slot, commit word);
//!   `pblockdb_txn1000` commits transactions of 1,000 such puts (the median is a whole
//!   transaction); `heed` commits one write transaction per put (NO_SYNC, NO_META_SYNC);
//!   `heed_txn1000` as `pblockdb_txn1000`; `heed_writemap` as `heed` on an environment opened
//!   with `WRITE_MAP` (LMDB writing through a writable map, as pblockdb does), and
//!   `get_*/heed_writemap_shared_txn` reads it.
//! - `put_new/*`, `delete/*`: `iters` fresh keys inserted (or deleted) in the timed part, and
//!   removed (or inserted) again untimed, so the table size stays put. Rebuilds that insertion
//!   triggers are paid in the timing.
//! - `iterate_after_put/*`: one put replacing a value in its own transaction, then every
//!   entry (a scan after each commit), after `iterate`.
//! - `iterate/*`: every entry, throughput in entries, on the stores as loaded and overwritten
//!   by `put_replace` (run before `put_new` and `delete`, whose leftovers, tombstones and
//!   rebuilds, vary with criterion's iteration counts; `pblockdb`'s `examples/iter_n.rs` takes
//!   a churn count for a table after them).
//! - `redb_*` contenders mirror the heed ones: `redb_shared_txn` reuses one read transaction,
//!   `redb` commits one write transaction per put, `redb_txn1000` 1,000 puts per transaction.
//! - `commit_synced/*`: one put per transaction, synced to disk (`Durability::Synced`, heed
//!   without NO_SYNC, redb `Durability::Immediate`); `heed_writemap` with `WRITE_MAP`.
//! - `*/pblockdb_write`: the same operation through a handle of `Storage::Write` (commits by
//!   positioned writes beside a read-only data mapping) on the same file.
//! - `*/pblockdb_unmapped`: the same operation through a handle of `Storage::Unmapped` (no
//!   mapping: reads from a memory copy, every write and word store by a positioned write), on a
//!   second file holding the same entries (such a handle is alone with its file).
//!
//! `-- --test` (criterion's smoke mode) uses 2,000 entries so the pass is quick.
// SAFETY (for the `allow`): heed marks `EnvOpenOptions::flags` (NO_SYNC, NO_META_SYNC) and
// `open` unsafe because LMDB's memory map is undefined behaviour if the files are modified
// behind its back, and because NO_SYNC gives up durability. This bench is the only opener of
// its environment, which lives in a private temporary directory deleted at the end, so nothing
// else modifies the files; durability is not wanted here (we compare without fsync).
#![allow(unsafe_code)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};
use pblockdb::{Db, DbOptions, Storage};
use pounds_benches::{quick, smoke};
use pounds_testkit::Rng;
use redb::ReadableTable;

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    k[8..].copy_from_slice(&i.to_le_bytes());
    k
}

fn value(i: u64) -> [u8; 64] {
    let mut v = [b'v'; 64];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

const TABLE: redb::TableDefinition<'static, &[u8], &[u8]> = redb::TableDefinition::new("bench");

struct Contenders {
    db: Db,
    /// A second handle on the same file whose commits go by positioned writes beside a
    /// read-only data mapping (`Storage::Write`).
    db_write: Db,
    /// A handle of `Storage::Unmapped` on a file of its own with the same entries.
    db_unmapped: Db,
    env: Env,
    lmdb: Database<Bytes, Bytes>,
    /// The same, opened with `WRITE_MAP` (LMDB writes through a writable map, as pblockdb).
    env_writemap: Env,
    lmdb_writemap: Database<Bytes, Bytes>,
    redb: redb::Database,
    map: HashMap<[u8; 16], [u8; 64]>,
}

/// An LMDB environment in `dir/name` with `extra` flags beside NO_SYNC and NO_META_SYNC, holding
/// the bench's `n` entries.
fn lmdb_env(dir: &Path, name: &str, extra: EnvFlags, n: u64) -> (Env, Database<Bytes, Bytes>) {
    let env_dir = dir.join(name);
    std::fs::create_dir_all(&env_dir).unwrap();
    let mut options = EnvOpenOptions::new();
    options.map_size(8 << 30).max_dbs(1);
    // SAFETY: see the crate-level SAFETY note: sole opener, private directory, no durability
    // wanted.
    let env = unsafe {
        options.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC | extra);
        options.open(&env_dir).unwrap()
    };
    let mut wtxn = env.write_txn().unwrap();
    let lmdb: Database<Bytes, Bytes> = env.create_database(&mut wtxn, None).unwrap();
    for i in 0..n {
        lmdb.put(&mut wtxn, &key(i), &value(i)).unwrap();
    }
    wtxn.commit().unwrap();
    (env, lmdb)
}

/// A pblockdb of `storage` at `path` holding the bench's `n` entries.
fn filled_db(path: &Path, storage: Storage, n: u64) -> Db {
    let db = DbOptions::new(16, 64)
        .capacity(n)
        .storage(storage)
        .open(path)
        .unwrap();
    db.write(|txn| {
        for i in 0..n {
            txn.put(&key(i), &value(i))?;
        }
        Ok(())
    })
    .unwrap();
    db
}

fn setup(dir: &Path, n: u64) -> Contenders {
    let path = dir.join(format!("bench{n}.pdb"));
    let db = filled_db(&path, Storage::Mapped, n);
    let db_unmapped = filled_db(
        &dir.join(format!("bench{n}_unmapped.pdb")),
        Storage::Unmapped,
        n,
    );
    let (env, lmdb) = lmdb_env(dir, &format!("lmdb{n}"), EnvFlags::empty(), n);
    let (env_writemap, lmdb_writemap) =
        lmdb_env(dir, &format!("lmdb_writemap{n}"), EnvFlags::WRITE_MAP, n);
    let redb = redb::Database::create(dir.join(format!("redb{n}"))).unwrap();
    let write = redb.begin_write().unwrap();
    {
        let mut table = write.open_table(TABLE).unwrap();
        for i in 0..n {
            table.insert(&key(i)[..], &value(i)[..]).unwrap();
        }
    }
    write.commit().unwrap();
    let map = (0..n).map(|i| (key(i), value(i))).collect();
    let db_write = DbOptions::new(16, 64)
        .storage(Storage::Write)
        .open(&path)
        .unwrap();
    Contenders {
        db,
        db_write,
        db_unmapped,
        env,
        lmdb,
        env_writemap,
        lmdb_writemap,
        redb,
        map,
    }
}

fn gets(group: &mut BenchmarkGroup<'_, WallTime>, c: &Contenders, n: u64, hit: bool) {
    let name = if hit { "get_hit" } else { "get_miss" };
    let pick = move |rng: &mut Rng| {
        if hit {
            key(rng.below(n))
        } else {
            key(n + 1 + rng.below(n))
        }
    };
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    group.bench_function(format!("{name}/pblockdb"), |b| {
        b.iter(|| c.db.get_with(black_box(&pick(&mut rng)), |v| v[0]).unwrap())
    });
    group.bench_function(format!("{name}/pblockdb_txn"), |b| {
        let txn = c.db.begin_read().unwrap();
        b.iter(|| txn.get_with(black_box(&pick(&mut rng)), |v| v[0]).unwrap())
    });
    group.bench_function(format!("{name}/pblockdb_write"), |b| {
        b.iter(|| {
            c.db_write
                .get_with(black_box(&pick(&mut rng)), |v| v[0])
                .unwrap()
        })
    });
    group.bench_function(format!("{name}/pblockdb_unmapped"), |b| {
        b.iter(|| {
            c.db_unmapped
                .get_with(black_box(&pick(&mut rng)), |v| v[0])
                .unwrap()
        })
    });
    group.bench_function(format!("{name}/heed_txn"), |b| {
        b.iter(|| {
            let rtxn = c.env.read_txn().unwrap();
            let found = c
                .lmdb
                .get(&rtxn, black_box(&pick(&mut rng)))
                .unwrap()
                .map(<[u8]>::len);
            black_box(found)
        })
    });
    group.bench_function(format!("{name}/heed_shared_txn"), |b| {
        let rtxn = c.env.read_txn().unwrap();
        b.iter(|| {
            c.lmdb
                .get(&rtxn, black_box(&pick(&mut rng)))
                .unwrap()
                .map(<[u8]>::len)
        })
    });
    group.bench_function(format!("{name}/heed_writemap_shared_txn"), |b| {
        let rtxn = c.env_writemap.read_txn().unwrap();
        b.iter(|| {
            c.lmdb_writemap
                .get(&rtxn, black_box(&pick(&mut rng)))
                .unwrap()
                .map(<[u8]>::len)
        })
    });
    group.bench_function(format!("{name}/redb_shared_txn"), |b| {
        let read = c.redb.begin_read().unwrap();
        let table = read.open_table(TABLE).unwrap();
        b.iter(|| {
            table
                .get(&black_box(pick(&mut rng))[..])
                .unwrap()
                .map(|v| v.value()[0])
        })
    });
    group.bench_function(format!("{name}/hashmap"), |b| {
        b.iter(|| c.map.get(black_box(&pick(&mut rng))).map(|v| v[0]))
    });
}

/// Puts in each `*_txn1000` transaction (issue 10: "1,000 puts in one transaction"); the
/// median is for the whole transaction.
const TXN_PUTS: u64 = 1000;

fn put_replace(group: &mut BenchmarkGroup<'_, WallTime>, c: &mut Contenders, n: u64) {
    let mut rng = Rng::new(0x0fed_cba9_8765_4321);
    group.bench_function("put_replace/pblockdb", |b| {
        b.iter(|| {
            let i = rng.below(n);
            c.db.put(black_box(&key(i)), &value(i)).unwrap()
        })
    });
    group.bench_function("put_replace/pblockdb_txn1000", |b| {
        b.iter(|| {
            let mut txn = c.db.begin_write().unwrap();
            for _ in 0..TXN_PUTS {
                let i = rng.below(n);
                txn.put(black_box(&key(i)), &value(i)).unwrap();
            }
            txn.commit().unwrap();
        })
    });
    group.bench_function("put_replace/pblockdb_write", |b| {
        b.iter(|| {
            let i = rng.below(n);
            c.db_write.put(black_box(&key(i)), &value(i)).unwrap()
        })
    });
    group.bench_function("put_replace/pblockdb_write_txn1000", |b| {
        b.iter(|| {
            let mut txn = c.db_write.begin_write().unwrap();
            for _ in 0..TXN_PUTS {
                let i = rng.below(n);
                txn.put(black_box(&key(i)), &value(i)).unwrap();
            }
            txn.commit().unwrap();
        })
    });
    group.bench_function("put_replace/pblockdb_unmapped", |b| {
        b.iter(|| {
            let i = rng.below(n);
            c.db_unmapped.put(black_box(&key(i)), &value(i)).unwrap()
        })
    });
    group.bench_function("put_replace/pblockdb_unmapped_txn1000", |b| {
        b.iter(|| {
            let mut txn = c.db_unmapped.begin_write().unwrap();
            for _ in 0..TXN_PUTS {
                let i = rng.below(n);
                txn.put(black_box(&key(i)), &value(i)).unwrap();
            }
            txn.commit().unwrap();
        })
    });
    group.bench_function("put_replace/heed", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut wtxn = c.env.write_txn().unwrap();
            c.lmdb
                .put(&mut wtxn, black_box(&key(i)), &value(i))
                .unwrap();
            wtxn.commit().unwrap();
        })
    });
    group.bench_function("put_replace/heed_writemap", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut wtxn = c.env_writemap.write_txn().unwrap();
            c.lmdb_writemap
                .put(&mut wtxn, black_box(&key(i)), &value(i))
                .unwrap();
            wtxn.commit().unwrap();
        })
    });
    group.bench_function("put_replace/heed_txn1000", |b| {
        b.iter(|| {
            let mut wtxn = c.env.write_txn().unwrap();
            for _ in 0..TXN_PUTS {
                let i = rng.below(n);
                c.lmdb
                    .put(&mut wtxn, black_box(&key(i)), &value(i))
                    .unwrap();
            }
            wtxn.commit().unwrap();
        })
    });
    group.bench_function("put_replace/redb", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut write = c.redb.begin_write().unwrap();
            write.set_durability(redb::Durability::None);
            {
                let mut table = write.open_table(TABLE).unwrap();
                table.insert(&black_box(key(i))[..], &value(i)[..]).unwrap();
            }
            write.commit().unwrap();
        })
    });
    group.bench_function("put_replace/redb_txn1000", |b| {
        b.iter(|| {
            let mut write = c.redb.begin_write().unwrap();
            write.set_durability(redb::Durability::None);
            {
                let mut table = write.open_table(TABLE).unwrap();
                for _ in 0..TXN_PUTS {
                    let i = rng.below(n);
                    table.insert(&black_box(key(i))[..], &value(i)[..]).unwrap();
                }
            }
            write.commit().unwrap();
        })
    });
    group.bench_function("put_replace/hashmap", |b| {
        b.iter(|| {
            let i = rng.below(n);
            c.map.insert(black_box(key(i)), value(i))
        })
    });
}

/// Times inserting (or, `insert == false`, deleting) `iters` keys beyond `n`; the opposite
/// operation runs untimed so the table keeps its size.
fn churn(group: &mut BenchmarkGroup<'_, WallTime>, c: &mut Contenders, n: u64, insert: bool) {
    let name = if insert { "put_new" } else { "delete" };
    let fresh = |i: u64| key(n * 4 + i);
    group.bench_function(format!("{name}/pblockdb"), |b| {
        b.iter_custom(|iters| {
            time_churn(iters, insert, |i, put| {
                if put {
                    c.db.put(&fresh(i), &value(i)).unwrap();
                } else {
                    c.db.delete(&fresh(i)).unwrap();
                }
            })
        })
    });
    group.bench_function(format!("{name}/heed"), |b| {
        b.iter_custom(|iters| {
            time_churn(iters, insert, |i, put| {
                let mut wtxn = c.env.write_txn().unwrap();
                if put {
                    c.lmdb.put(&mut wtxn, &fresh(i), &value(i)).unwrap();
                } else {
                    c.lmdb.delete(&mut wtxn, &fresh(i)).unwrap();
                }
                wtxn.commit().unwrap();
            })
        })
    });
    group.bench_function(format!("{name}/hashmap"), |b| {
        b.iter_custom(|iters| {
            time_churn(iters, insert, |i, put| {
                if put {
                    black_box(c.map.insert(fresh(i), value(i)));
                } else {
                    black_box(c.map.remove(&fresh(i)));
                }
            })
        })
    });
}

/// The churn measurement every contender shares: with `insert`, times `iters` puts of fresh
/// keys and deletes them untimed; without, puts them untimed and times their deletes.
/// `write(i, true)` puts key `i`, `write(i, false)` deletes it.
fn time_churn(iters: u64, insert: bool, mut write: impl FnMut(u64, bool)) -> Duration {
    if !insert {
        (0..iters).for_each(|i| write(i, true));
    }
    let start = Instant::now();
    (0..iters).for_each(|i| write(i, insert));
    let took = start.elapsed();
    if insert {
        (0..iters).for_each(|i| write(i, false));
    }
    took
}

fn iterate(group: &mut BenchmarkGroup<'_, WallTime>, c: &Contenders, n: u64) {
    group.throughput(Throughput::Elements(n));
    group.bench_function("iterate/pblockdb", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            c.db.for_each(|_, v| sum += u64::from(v[0])).unwrap();
            sum
        })
    });
    group.bench_function("iterate/heed", |b| {
        b.iter(|| {
            let rtxn = c.env.read_txn().unwrap();
            let mut sum = 0u64;
            for entry in c.lmdb.iter(&rtxn).unwrap() {
                sum += u64::from(entry.unwrap().1[0]);
            }
            sum
        })
    });
    group.bench_function("iterate/redb", |b| {
        b.iter(|| {
            let read = c.redb.begin_read().unwrap();
            let table = read.open_table(TABLE).unwrap();
            let mut sum = 0u64;
            for entry in table.iter().unwrap() {
                sum += u64::from(entry.unwrap().1.value()[0]);
            }
            sum
        })
    });
    group.bench_function("iterate/hashmap", |b| {
        b.iter(|| c.map.values().map(|v| u64::from(v[0])).sum::<u64>())
    });
}

/// One put replacing a value in its own transaction, then every entry: a scan after each
/// commit, which for pblockdb checks again the chunk the commit changed (the other chunks'
/// checks stand, `checked.rs`).
fn iterate_after_put(group: &mut BenchmarkGroup<'_, WallTime>, c: &Contenders, n: u64) {
    group.throughput(Throughput::Elements(n));
    let mut rng = Rng::new(0x17e7_1e7e);
    group.bench_function("iterate_after_put/pblockdb", |b| {
        b.iter(|| {
            let i = rng.below(n);
            c.db.put(&key(i), &value(i)).unwrap();
            let mut sum = 0u64;
            c.db.for_each(|_, v| sum += u64::from(v[0])).unwrap();
            sum
        })
    });
    group.bench_function("iterate_after_put/heed", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut wtxn = c.env.write_txn().unwrap();
            c.lmdb.put(&mut wtxn, &key(i), &value(i)).unwrap();
            wtxn.commit().unwrap();
            let rtxn = c.env.read_txn().unwrap();
            let mut sum = 0u64;
            for entry in c.lmdb.iter(&rtxn).unwrap() {
                sum += u64::from(entry.unwrap().1[0]);
            }
            sum
        })
    });
}

/// One put per transaction, synced to disk, for each store that can.
fn commit_synced(group: &mut BenchmarkGroup<'_, WallTime>, c: &mut Contenders, n: u64) {
    let mut rng = Rng::new(0x5151_5151);
    group.bench_function("commit_synced/pblockdb", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut txn = c.db.begin_write().unwrap();
            txn.set_durability(pblockdb::Durability::Synced);
            txn.put(&key(i), &value(i)).unwrap();
            txn.commit().unwrap();
        })
    });
    group.bench_function("commit_synced/pblockdb_write", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut txn = c.db_write.begin_write().unwrap();
            txn.set_durability(pblockdb::Durability::Synced);
            txn.put(&key(i), &value(i)).unwrap();
            txn.commit().unwrap();
        })
    });
    group.bench_function("commit_synced/pblockdb_unmapped", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut txn = c.db_unmapped.begin_write().unwrap();
            txn.set_durability(pblockdb::Durability::Synced);
            txn.put(&key(i), &value(i)).unwrap();
            txn.commit().unwrap();
        })
    });
    group.bench_function("commit_synced/redb", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let write = c.redb.begin_write().unwrap();
            {
                let mut table = write.open_table(TABLE).unwrap();
                table.insert(&key(i)[..], &value(i)[..]).unwrap();
            }
            write.commit().unwrap();
        })
    });
    group.bench_function("commit_synced/heed", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut wtxn = c.env.write_txn().unwrap();
            c.lmdb.put(&mut wtxn, &key(i), &value(i)).unwrap();
            wtxn.commit().unwrap();
            // NO_SYNC is set on the environment: force the sync the commit skipped.
            c.env.force_sync().unwrap();
        })
    });
    group.bench_function("commit_synced/heed_writemap", |b| {
        b.iter(|| {
            let i = rng.below(n);
            let mut wtxn = c.env_writemap.write_txn().unwrap();
            c.lmdb_writemap.put(&mut wtxn, &key(i), &value(i)).unwrap();
            wtxn.commit().unwrap();
            c.env_writemap.force_sync().unwrap();
        })
    });
}

fn main() {
    let sizes: &[u64] = if smoke() {
        &[2_000]
    } else if quick() {
        &[100_000]
    } else {
        &[100_000, 1_000_000]
    };
    let dir = tempfile::tempdir().unwrap();
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for &n in sizes {
        let mut c = setup(dir.path(), n);
        let mut group = criterion.benchmark_group(format!("pblockdb_{n}"));
        group.throughput(Throughput::Elements(1));
        gets(&mut group, &c, n, true);
        gets(&mut group, &c, n, false);
        put_replace(&mut group, &mut c, n);
        // Before the churn groups: what they leave (tombstones, a rebuild or not) depends on
        // how many iterations criterion ran, so an iteration after them measured a table that
        // changed from run to run.
        iterate(&mut group, &c, n);
        iterate_after_put(&mut group, &c, n);
        churn(&mut group, &mut c, n, true);
        churn(&mut group, &mut c, n, false);
        group.finish();
        let mut synced = criterion.benchmark_group(format!("pblockdb_synced_{n}"));
        synced.sample_size(10);
        commit_synced(&mut synced, &mut c, n);
        synced.finish();
        drop(c);
    }
    criterion.final_summary();
}
