//! [`crc32c`]: the checksum of the pounds formats, bit by bit from its definition, so that a
//! test forging headers and records does not trust the code under test.

/// CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`) of `bytes`, continuing from `crc`
/// (0 to start), as `crc32c::crc32c_append` does. One bit a step: slow, and written from the
/// definition, not from any pounds crate's code.
#[must_use]
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
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

/// CRC-32C of `bytes`: [`crc32c_append`] from 0.
#[must_use]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_append(0, bytes)
}
