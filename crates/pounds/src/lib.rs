//! `pounds`: durable, very fast work on memory-mapped files.
//!
//! The facade re-exports every layer under a short name, each behind a feature:
//! [`map`] (always), `stream`, `log` and `db`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use pmap as map;
#[cfg(feature = "stream")]
pub use pmap_stream as stream;
#[cfg(feature = "log")]
pub use plog as log;
#[cfg(feature = "db")]
pub use pblockdb as db;
