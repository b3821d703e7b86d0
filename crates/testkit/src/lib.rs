//! Dev-only helpers that the pounds tests and benches share, written once: a seeded xorshift
//! generator ([`Rng`]), the round counts of `cargo xtask stress` ([`stress_rounds`]), the
//! "run this test binary again as a child in a role" harness ([`child_command`],
//! [`child_role`], [`run_child`], [`reported`], [`signal`]), a real small tmpfs ([`Tmpfs`],
//! Linux, needs root) and the formats' checksum computed bit by bit from its definition
//! ([`crc32c`]).
//!
//! It is a dev-dependency only (`cargo xtask tidy` refuses it in any `[dependencies]`), and it
//! depends on none of the pounds crates, so it sits below all of them. What stays in each
//! crate's own tests: its format forgers (headers, records, slots), written from its format
//! doc. A test should not trust the code it tests, and this kit knows nothing of any pounds
//! format; its checksum is the CRC-32C of the definition, not pmap's.
//!
//! ```
//! use pounds_testkit::{Rng, crc32c, crc32c_append, stress_rounds};
//!
//! // The same seed gives the same numbers, in the parent and in its children.
//! let mut a = Rng::new(0x5eed);
//! let mut b = Rng::new(0x5eed);
//! assert_eq!(a.next_u64(), b.next_u64());
//! assert!(a.below(10) < 10);
//!
//! // 20 rounds by default; under `cargo xtask stress` POUNDS_STRESS_ROUNDS / 10, at least one.
//! let rounds = stress_rounds(20, 10);
//! assert!(rounds >= 1);
//!
//! // CRC-32C's check value, in one piece or continued.
//! assert_eq!(crc32c(b"123456789"), 0xE306_9283);
//! assert_eq!(crc32c_append(crc32c(b"1234"), b"56789"), 0xE306_9283);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// A test kit: a failure to start a child or mount a disk fails the test that asked for it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod child;
mod crc;
mod rng;
#[cfg(unix)]
mod tmpfs;

#[cfg(unix)]
pub use child::signal;
pub use child::{child_command, child_role, child_role_path, reported, run_child};
pub use crc::{crc32c, crc32c_append};
pub use rng::Rng;
#[cfg(unix)]
pub use tmpfs::{Tmpfs, fill_until_full};

/// The environment variable `cargo xtask stress` sets to the number of rounds it asks for.
pub const STRESS_ROUNDS: &str = "POUNDS_STRESS_ROUNDS";

/// Rounds of a randomised or looping test: `ci_default` normally (`cargo test`, `cargo xtask
/// ci`), and `POUNDS_STRESS_ROUNDS / per`, at least one, under `cargo xtask stress` (`per` is
/// what one round of this test costs beside the cheapest: 1 takes the count as it is). A value
/// that does not parse as a number is ignored.
#[must_use]
pub fn stress_rounds(ci_default: u32, per: u32) -> u32 {
    std::env::var(STRESS_ROUNDS)
        .ok()
        .and_then(|r| r.parse::<u32>().ok())
        .map_or(ci_default, |r| (r / per.max(1)).max(1))
}

/// Whether this run is a stress run (`POUNDS_STRESS_ROUNDS` is set, whatever its value): for
/// tests that make each round longer there, not only more rounds.
#[must_use]
pub fn stress_run() -> bool {
    std::env::var_os(STRESS_ROUNDS).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_xorshift64_from_its_seed() {
        // The reference xorshift64 (13, 7, 17) from seed 1.
        let mut rng = Rng::new(1);
        assert_eq!(rng.next_u64(), 1_082_269_761);
        assert_eq!(rng.next_u64(), 1_152_992_998_833_853_505);
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let bytes = a.bytes(9);
        let expected: Vec<u8> = (0..9).map(|_| b.next_u64() as u8).collect();
        assert_eq!(bytes, expected);
        assert!((0..1000).all(|_| a.below(7) < 7));
    }

    #[test]
    #[should_panic(expected = "seed")]
    fn a_zero_seed_is_refused() {
        let _ = Rng::new(0);
    }
}
