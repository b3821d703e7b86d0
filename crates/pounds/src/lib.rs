//! `pounds`: durable, very fast work on memory-mapped files.
//!
//! This crate is only a facade: each layer is its own crate, re-exported here under a short
//! name so that a service can depend on one crate and name what it uses. Take a single layer's
//! crate instead when that is all you need; each optional layer sits behind a feature (all on
//! by default).
//!
//! | module | crate | feature | what it is for |
//! | --- | --- | --- | --- |
//! | [`map`] | `pmap` | always | checked, portable file mappings and shared-memory primitives |
//! | `stream` | `pmap-stream` | `stream` | `Read`/`Write`/`Seek` over a mapping; a growable append writer |
//! | `log` | `plog` | `log` | the lock-free circular log shared by threads and processes |
//! | `db` | `pblockdb` | `db` | the fixed-block record database shared by processes |
//!
//! The features `log-adapter` and `tracing-layer` turn on `plog`'s `log::Log` logger and
//! `tracing` layer. `examples/` holds one short program per layer and one with two processes
//! sharing a log and a database (`cargo run -p pounds --example log`).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use pounds::log::{Level, Log};
//!
//! // A flight recorder: fixed size, never blocks, readable by other processes.
//! let log = Log::open(dir.path().join("service.plog"))?;
//! log.write(Level::Info, "startup", "listening on :8080")?;
//! assert_eq!(log.reader().count(), 1);
//!
//! // A small table shared by processes: 16-byte keys, 64-byte values.
//! let db = pounds::db::DbOptions::new(16, 64).capacity(1024).open(dir.path().join("leases.pdb"))?;
//! db.put(b"client-7", b"lease until 12:00")?;
//! assert!(db.contains(b"client-7")?);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[doc(inline)]
pub use pmap as map;

#[cfg(feature = "stream")]
#[doc(inline)]
pub use pmap_stream as stream;

#[cfg(feature = "log")]
#[doc(inline)]
pub use plog as log;

#[cfg(feature = "db")]
#[doc(inline)]
pub use pblockdb as db;
