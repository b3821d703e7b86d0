//! Helpers shared by the pblockdb test binaries.

/// A small deterministic generator (xorshift64), so tests and their child processes need no
/// extra crates and every run can be replayed from its seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`), bitwise, continuing from `crc` (0
/// to start) as `crc32c::crc32c_append` does, so tests can craft checksums without the crate
/// under test's own code.
#[allow(dead_code)] // Not every test binary crafts checksums.
pub(crate) fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &byte in bytes {
        c ^= u32::from(byte);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}
