//! `pblockdb`: a record database in a memory-mapped file, shared between threads and
//! processes, with transactions, snapshots that register nowhere, and its hash index in the
//! file.
//!
//! The Lisp `pounds.db` kept records in fixed-size blocks and found them by scanning every
//! block under one lock; LMDB gave the world ACID transactions whose readers never block, at
//! the price of a reader table (a fixed number of slots, stale slots after a crash, a file
//! that grows under long readers). pblockdb keeps LMDB's contract without the table:
//!
//! - **The blocks form an open-addressing hash table** (linear probing, tombstones, rebuilt
//!   and doubled at 7/8 load) with a dense array of 4-byte hints in front, so a lookup is O(1)
//!   expected, probes in cache, and reads one record's memory.
//! - **Versions, not locks, isolate readers.** Every commit first saves the versions it
//!   replaces in a history ring in the file, then rewrites the slots, then publishes a new
//!   commit clock with one store. A read transaction is just a clock: it reads each slot as
//!   it was at that clock, following the slot's chain of saved versions when a later commit
//!   changed it. It takes no lock and writes nothing, so it never blocks the writer, the
//!   writer never blocks it (a slot a writer is inside is read past through the version saved
//!   first), and a reader that dies leaves nothing behind. A reader older than the history
//!   gets [`Error::SnapshotTooOld`], never a mixed view; the file never grows for a reader.
//! - **Writers serialise** on a mutex plus a lock word in the file (a compare-and-swap; a dead
//!   holder is told from a live one by a lock the kernel drops when it dies) or, where the
//!   platform has no such lock, an advisory file lock; a write transaction keeps its
//!   changes in memory (nested transactions as layers) until commit. A writer killed at any
//!   instruction leaves a commit whose saved versions the next writer puts back: all of a
//!   transaction or none of it.
//!
//! Keys and values are stored exactly (with their lengths), up to maxima chosen at creation.
//! [`TypedDb`] encodes them with a [`codec::Codec`]. The file format, the snapshot protocol
//! and the crash argument are in `docs/pblockdb-format.md`.
//!
//! ```
//! # fn main() -> Result<(), pblockdb::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("mounts.db");
//! use pblockdb::{Db, DbOptions};
//!
//! let db = DbOptions::new(16, 32).capacity(1000).open(&path)?;
//! assert!(!db.put(b"/mnt/a", b"nfs")?);
//! assert!(db.put(b"/mnt/a", b"cifs")?); // replaced
//! assert_eq!(db.get(b"/mnt/a")?, Some(b"cifs".to_vec()));
//!
//! // Several changes, atomically: other handles see all of them or none.
//! db.write(|txn| {
//!     txn.put(b"/mnt/b", b"tmpfs")?;
//!     txn.delete(b"/mnt/a")?;
//!     Ok(())
//! })?;
//!
//! // Another handle (or process) sees the same records.
//! let other = Db::open(&path)?;
//! let snapshot = other.begin_read()?;
//! assert_eq!(snapshot.len()?, 1);
//! assert!(!snapshot.contains(b"/mnt/a")?);
//!
//! // Too long is an error, not a truncation.
//! assert!(matches!(db.put(&[0; 17], b"x"), Err(pblockdb::Error::KeySize { given: 17, expected: 16 })));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backup;
mod buf;
mod checked;
pub mod codec;
mod commit;
mod db;
mod error;
mod format;
mod history;
mod lock;
mod open;
mod owners;
mod seqlock;
mod snapshot;
mod staged;
mod storage;
#[doc(hidden)]
pub mod testing;
mod txn;
mod typed;
mod verify;
mod view;

// The protocol models of `cargo xtask loom` (`RUSTFLAGS="--cfg loom"`).
#[cfg(all(test, loom))]
mod loom_models;

#[doc(hidden)]
pub use crate::commit::slots_examined;
pub use crate::db::{Db, Info, Iter, Stats};
pub use crate::error::{Error, Result};
pub use crate::format::{
    FORMAT_VERSION, MAGIC, MAX_CAPACITY, MAX_HISTORY, MAX_KEY_SIZE, MAX_VALUE_SIZE, MIN_CAPACITY,
    MIN_HISTORY, USER_AREA_SIZE,
};
pub use crate::open::{DEFAULT_CAPACITY, DEFAULT_HISTORY_BYTES, DbOptions, Durability};
pub use crate::storage::Storage;
pub use crate::txn::{Nested, ReadTxn, WriteIter, WriteTxn};
pub use crate::typed::TypedDb;
