//! Helpers for the pounds benchmarks and latency harnesses alone: criterion's smoke mode and `cargo xtask bench --quick`. What
//! the benches share with the tests (the seeded `Rng`) comes from the workspace's test kit,
//! `pounds-testkit`, which the bench targets use directly: it is a dev-dependency here as
//! everywhere (tidy refuses it as a normal one), so this library cannot re-export it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Whether a criterion bench binary runs in its smoke mode (`cargo bench -- --test`, as
/// `cargo xtask ci` does): benches shrink their sizes so that the pass is quick.
#[must_use]
pub fn smoke() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// Whether `cargo xtask bench --quick` runs this (`POUNDS_BENCH_QUICK` set): benches and
/// harnesses then shorten their counts and skip their largest sizes.
#[must_use]
pub fn quick() -> bool {
    std::env::var_os("POUNDS_BENCH_QUICK").is_some()
}
