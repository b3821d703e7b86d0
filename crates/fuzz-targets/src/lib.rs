//! The fuzz targets' bodies, one function per target, each taking the fuzzer's bytes: they
//! panic when pounds breaks a promise (a panic inside pounds, an answer that disagrees with a
//! model), and return normally for every input pounds handles, typed errors included.
//! `fuzz/fuzz_targets/*.rs` call them under cargo-fuzz (`cargo xtask fuzz`), and
//! `tests/replay.rs` runs every checked-in corpus file through them on the stable toolchain.
//!
//! ```
//! // An empty input is a valid (and boring) case of every target.
//! pounds_fuzz_targets::plog_file(&[]);
//! pounds_fuzz_targets::pblockdb_model(&[]);
//! ```
#![deny(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bytes;
mod db;
mod log;
mod stream;

pub use db::{pblockdb_file, pblockdb_model};
pub use log::plog_file;
pub use stream::stream_model;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/` file and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("plog_file", plog_file),
    ("pblockdb_file", pblockdb_file),
    ("pblockdb_model", pblockdb_model),
    ("stream_model", stream_model),
];
