//! Benchmarks for `plog`: filled in with that layer.
#![allow(missing_docs)]
fn main() {}
