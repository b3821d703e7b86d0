//! Helpers shared by the pblockdb test binaries.

/// CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`), bitwise, continuing from `crc` (0
/// to start) as `crc32c::crc32c_append` does, so tests can craft checksums without the crate
/// under test's own code.
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
