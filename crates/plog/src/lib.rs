//! `plog`: a lock-free, crash-consistent circular log in a memory-mapped file, written by many
//! threads and processes at once and read, or followed live, by others.
//!
//! # Design
//! The file is a 4 KiB header and a ring of fixed-size blocks (`docs/plog-format.md`). A writer
//! reserves the blocks its record needs with one atomic add on a 64-bit counter in the mapped
//! header, takes each block's claim word with one compare-and-swap, copies the record in, and
//! publishes it by storing its start claim last, with release ordering. There is no lock, no
//! system call and no allocation on that path, so writing costs about as much as copying the
//! bytes; a reader, slow or dead, costs a writer nothing.
//!
//! - The claim word is why a writer stalled at any instruction for any time (preempted,
//!   stopped, faulting) never destroys a record another writer published: a block is written
//!   only by the writer holding its claim, a claim is taken only from a word naming an older
//!   position, and a writer that finds a newer word, or a block another live writer holds,
//!   writes nothing there and reserves again. A writer killed while it holds a block is taken
//!   over by the next writer to reach it (its process is gone).
//!
//! - A record's id is its starting position in the block counter: unique and increasing for
//!   the life of the file. A record longer than a block takes contiguous blocks; one that would
//!   straddle the ring's end is preceded by padding, so it never splits.
//! - The ring overwrites its oldest records. Readers copy a record, then check (after an acquire
//!   fence) that no writer has reserved past one lap from it: a record overwritten while it was
//!   read is counted as lost, never returned torn.
//! - Every record carries a crc32c over its id, header and body: a record left half-written by
//!   a killed writer, or half-flushed by a power loss, or damaged, fails it and is skipped.
//!   Every header field is validated before it is used, so any byte pattern in a file gives an
//!   [`Error`] or skipped records, never a panic.
//! - Followers sleep on a futex word in the header and writers wake them only when one has
//!   announced that it sleeps.
//! - Time stamps are wall-clock nanoseconds derived from the TSC (via `quanta`) and a
//!   calibration pair taken at open, because reading the system clock would cost more than the
//!   rest of a write.
//!
//! ```
//! # fn main() -> Result<(), plog::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("service.plog");
//! use plog::{Filter, Format, Level, Log};
//!
//! let log = Log::open(&path)?; // 16384 blocks of 128 bytes, created if absent
//! log.write(Level::Info, "http", "listening on :8080")?;
//! let id = log.write(Level::Error, "db", b"connection lost".as_slice())?;
//!
//! // Another process would open the same file, read-only if it likes.
//! let reader = Log::open_read_only(&path)?;
//! let errors: Vec<_> = reader.reader().with_filter(Filter::all().min_level(Level::Warn)).collect();
//! assert_eq!(errors.len(), 1);
//! assert_eq!((errors[0].id, errors[0].tag.as_str()), (id, "db"));
//!
//! let mut out = Vec::new();
//! reader.dump(&mut out, &Filter::all(), None, Format::Json)?;
//! assert!(String::from_utf8_lossy(&out).contains(r#""message":"connection lost""#));
//! # Ok(()) }
//! ```
//!
//! Features: `log` adds `Logger`, a `log::Log` implementation (target as tag); `tracing` adds
//! `PlogLayer`, a `tracing_subscriber::Layer` writing events with their fields.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod claim;
mod clock;
mod cursor;
mod error;
mod flusher;
mod follow;
mod format;
mod lanes;
mod level;
mod log;
#[cfg(feature = "log")]
mod log_adapter;
#[cfg(any(feature = "log", feature = "tracing"))]
mod log_adapter_shared;
mod merged;
mod open;
mod options;
mod panic_hook;
mod protocol;
mod reader;
mod record;
mod recover;
mod structured;
#[doc(hidden)]
pub mod testing;
#[cfg(feature = "tracing")]
mod tracing_layer;
mod truncation;
mod write;

// The protocol models of `cargo xtask loom` (`RUSTFLAGS="--cfg loom"`).
#[cfg(all(test, loom))]
mod loom_models;

pub use crate::error::{Error, Result};
pub use crate::follow::{FollowOptions, FollowThread, Follower, StopHandle};
pub use crate::format::{
    CLAIM_LEN, COMPAT_VERSION, CURSOR_SLOTS, DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS, FORMAT_VERSION,
    FORMAT_VERSION_1, HEADER_SIZE, LANED_COMPAT_VERSION, LANED_HEADER_SIZE, MAGIC, MAX_BLOCK_SIZE,
    MAX_BLOCKS, MAX_CURSOR_NAME, MAX_LANES, MAX_RING_BYTES, MAX_TAG_LEN, MIN_BLOCK_SIZE,
    MIN_BLOCKS, POSITION_LIMIT, RECORD_HEADER_LEN, USER_AREA_SIZE, WRITE_LIMIT,
};
pub use crate::level::{Filter, Level, ParseLevelError};
pub use crate::log::{Log, Stats};
#[cfg(feature = "log")]
pub use crate::log_adapter::Logger;
pub use crate::merged::Reader;
pub use crate::options::{LogOptions, POPULATE_BYTES, Populate};
pub use crate::panic_hook::{PANIC_TAG, install_panic_hook};
pub use crate::reader::DumpSummary;
pub use crate::record::{Format, Record, RecordKind, RecordRef, rfc3339};
pub use crate::structured::{Field, Fields, Span, Spans, Structured, StructuredPayload, Value};
#[cfg(feature = "tracing")]
pub use crate::tracing_layer::PlogLayer;
