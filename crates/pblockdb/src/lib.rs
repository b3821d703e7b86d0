//! `pblockdb`: a fixed-block record database in a memory-mapped file, shared between threads
//! and processes, with its hash index in the file.
//!
//! The Lisp `pounds.db` kept records in fixed-size blocks and found them by scanning every
//! block under one lock. Here the blocks themselves form an open-addressing hash table
//! (linear probing, tombstones, rebuilt and doubled at 3/4 load) with a dense array of 4-byte
//! hints in front of it, so a lookup is O(1) expected, probes in cache, and reads one record's
//! memory (a miss usually none); and the locking is split:
//!
//! - **Readers take no lock.** Each slot carries a version word (a seqlock): a reader copies
//!   the slot out and accepts it only if the version was even and unchanged, so it never sees a
//!   torn record. A generation word in the header tells it when another process rebuilt the
//!   table, and it remaps.
//! - **Writers serialise** on an in-process mutex plus an exclusive advisory file lock. Every
//!   slot write goes through a redo journal in the header, so a writer killed at any
//!   instruction leaves each key with its old or its new value and an index the next open
//!   accepts; a table rebuild builds the new table beside the old and switches with one store.
//!   A single `put` pays one `flock` lock/unlock pair; [`Db::lock_writes`] holds the lock
//!   across a batch.
//!
//! Keys and values have fixed sizes chosen at creation; shorter ones are padded with zeros,
//! longer ones are an error. [`TypedDb`] stores `bytemuck::Pod` types instead of bytes. The
//! file format and the crash-consistency argument are in `docs/pblockdb-format.md`.
//!
//! ```
//! # fn main() -> Result<(), pblockdb::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("mounts.db");
//! use pblockdb::{Action, Db, DbOptions};
//!
//! let db = DbOptions::new(16, 32).capacity(1000).open(&path)?;
//! assert!(!db.put(b"/mnt/a", b"nfs")?);
//! assert!(db.put(b"/mnt/a", b"cifs")?); // replaced
//! db.put(b"/mnt/b", b"tmpfs")?;
//!
//! // Values come back padded to the value size.
//! let value = db.get(b"/mnt/a")?.unwrap();
//! assert_eq!(&value[..4], b"cifs");
//! assert!(value[4..].iter().all(|&b| b == 0));
//!
//! // Another handle (or process) sees the same records.
//! let other = Db::open_existing(&path)?;
//! assert_eq!(other.len(), 2);
//!
//! // Update or delete in place while iterating.
//! db.update_each(|key, _value| if key.starts_with(b"/mnt/b") { Action::Delete } else { Action::Keep })?;
//! assert!(!other.contains(b"/mnt/b")?);
//!
//! // Too long is an error, not a truncation.
//! assert!(matches!(db.put(&[0; 17], b"x"), Err(pblockdb::Error::KeySize { given: 17, expected: 16 })));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod buf;
mod db;
mod error;
mod format;
mod options;
mod owners;
mod typed;
mod writer;

pub use crate::db::{Db, Iter, Stats};
pub use crate::error::{Error, Result};
pub use crate::format::{
    FORMAT_VERSION, MAGIC, MAX_CAPACITY, MAX_KEY_SIZE, MAX_VALUE_SIZE, MIN_CAPACITY, USER_AREA_SIZE,
};
pub use crate::options::{DEFAULT_CAPACITY, DbOptions};
pub use crate::typed::TypedDb;
#[doc(hidden)]
pub use crate::writer::slots_examined;
pub use crate::writer::{Action, Writer};
