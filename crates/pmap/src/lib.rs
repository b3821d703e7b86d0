//! `pmap`: portable, checked file mappings, the ground every other pounds layer stands on.
//!
//! A mapping is a file's bytes at memory speed. What makes it hard to use safely is everything
//! around the bytes: a view that must be unmapped before its file grows (Windows insists), a
//! file another process extends, offsets and alignments that a corrupt file controls, memory
//! that other processes write while this one reads. `pmap` takes all of that in, and is the one
//! pounds crate that holds `unsafe`; the layers above are safe code.
//!
//! Two handle types share one core:
//! - [`Map`] for a handle that owns its view: slices, typed reads and in-place views
//!   (`zerocopy`), growth by size or by doubling, `refresh` after another process grew the
//!   file, flush (all or a range, sync or async), and a trim on [`Map::finish`].
//! - [`SharedMap`] for memory that threads and processes write at once: copies in and out
//!   that never expose a reference to racing bytes, checked `AtomicU32`/`AtomicU64` at an
//!   offset, and wait/wake on a shared word (a futex on Linux that works across processes).
//!
//! - Double-mapped rings ([`Ring`], [`InfiniteRing`], in [`ring`]): memory mapped twice back
//!   to back, so that every readable or writable range is one slice, even across the wrap;
//!   anonymous or in a file that another process maps too, with single-producer and
//!   single-consumer ends ([`RingProducer`], [`RingConsumer`]) across threads or processes.
//!
//! - [`crc32c_append`]: the crc32c of a short buffer in three interleaved streams of the
//!   hardware instruction (the crates above checksum records with it and may not use
//!   `unsafe` to reach the instruction); the same value as the `crc32c` crate's.
//!   [`crc32c_append_parts`] checksums parts that lie apart (a header, a key, a value) as one;
//!   [`crc32c_append_chained`] is the one-chain form for many independent buffers in a row.
//!
//! Every offset, length and alignment is checked and a bad one is an [`Error`], never a panic.
//! Options ([`MapOptions`]) cover read-only or read-write, create or must-exist, a view at an
//! offset with a fixed length, populate, an advisory [`Lock`] and the creation mode.
//!
//! ```
//! # fn main() -> Result<(), pmap::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("counter.bin");
//! use std::sync::atomic::Ordering;
//!
//! // Create (or open) a file of at least 4 KiB and share a counter in it.
//! let shared = pmap::Map::create(&path, 4096)?.into_shared();
//! shared.atomic_u64(0)?.fetch_add(1, Ordering::AcqRel);
//! shared.flush()?;
//!
//! // Another handle, read-only, sees the same bytes.
//! let reader = pmap::Map::open_read_only(&path)?;
//! assert_eq!(reader.read::<u64>(0)?, 1);
//!
//! // Bad offsets are errors, not panics.
//! assert!(matches!(shared.atomic_u64(3), Err(pmap::Error::Misaligned { .. })));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![allow(unsafe_code)] // The one crate that may: see the crate doc.

mod advice;
mod common;
mod core;
mod crc;
mod error;
mod liveness;
mod map;
mod options;
mod process;
mod read_span;
mod reserve;
pub mod ring;
mod shared;
mod span;
#[cfg(unix)]
#[doc(hidden)]
pub mod testing;
mod view;
pub mod word;

// What every Unix shares, used by both platform files.
#[cfg(unix)]
#[path = "os/unix.rs"]
mod os_unix;

#[cfg_attr(target_os = "linux", path = "os/linux.rs")]
#[cfg_attr(not(target_os = "linux"), path = "os/fallback.rs")]
mod os;

// The polling fallback, compiled on Linux too under test so its unit tests run here.
#[cfg(all(test, target_os = "linux"))]
#[allow(dead_code)]
#[path = "os/fallback.rs"]
mod os_fallback;

pub use crate::advice::Advice;
pub use crate::crc::{crc32c_append, crc32c_append_chained, crc32c_append_parts};
pub use crate::error::{Error, Result};
pub use crate::liveness::{LivenessMark, ShareLock};
pub use crate::map::Map;
pub use crate::options::{Lock, MapOptions};
pub use crate::process::{ProcessState, current_cpu, current_pid, process_state};
pub use crate::read_span::ReadSpan;
pub use crate::ring::{
    InfiniteRing, Ring, RingBufReader, RingBufWriter, RingConsumer, RingOptions, RingProducer,
};
pub use crate::shared::SharedMap;
pub use crate::span::SharedSpan;
