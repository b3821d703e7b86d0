//! Shared helpers for the pounds benchmarks and latency harnesses.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
