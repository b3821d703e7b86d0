//! Shared helpers for the pounds benchmarks and latency harnesses: criterion's smoke mode and
//! the seeded generator, from the workspace's test kit (`pounds-testkit`), so that the benches
//! and the tests share one copy.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use pounds_testkit::{Rng, smoke};

/// Whether `cargo xtask bench --quick` runs this (`POUNDS_BENCH_QUICK` set): benches and
/// harnesses then shorten their counts and skip their largest sizes.
pub fn quick() -> bool {
    std::env::var_os("POUNDS_BENCH_QUICK").is_some()
}
