//! Helpers shared by the pblockdb test binaries: forgers of the format, written again from
//! `docs/pblockdb-format.md` (the checksum is the test kit's bitwise CRC-32C, not pmap's).

use pounds_testkit::crc32c_append;

/// The key hash of `docs/pblockdb-format.md`, written again from the document.
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h = key.len() as u64;
    for chunk in key.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

pub(crate) fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

pub(crate) fn set_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn set_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Header offsets of format 2.
pub(crate) const GENERATION: usize = 64;
pub(crate) const TABLES: [usize; 2] = [72, 112];
pub(crate) const COMMIT: usize = 192;
pub(crate) const HISTORY_HEAD: usize = 200;
pub(crate) const RINGS: [usize; 2] = [216, 256];
pub(crate) const COUNTS: [usize; 2] = [320, 368];

/// The checksum of little-endian words, as descriptors and count records use it.
pub(crate) fn words_crc(words: &[u64]) -> u64 {
    let mut crc = 0;
    for word in words {
        crc = crc32c_append(crc, &word.to_le_bytes());
    }
    u64::from(crc)
}

/// Writes table descriptor `generation & 1`.
pub(crate) fn table_descriptor(
    bytes: &mut [u8],
    generation: u64,
    offset: u64,
    capacity: u64,
    since: u64,
) {
    let at = TABLES[(generation & 1) as usize];
    let words = [generation, offset, capacity, since];
    for (i, w) in words.iter().enumerate() {
        set_u64(bytes, at + 8 * i, *w);
    }
    set_u64(bytes, at + 32, words_crc(&words));
}

/// Writes ring descriptor `generation & 1`.
pub(crate) fn ring_descriptor(
    bytes: &mut [u8],
    generation: u64,
    offset: u64,
    entries: u64,
    base: u64,
) {
    let at = RINGS[(generation & 1) as usize];
    let words = [generation, offset, entries, base];
    for (i, w) in words.iter().enumerate() {
        set_u64(bytes, at + 8 * i, *w);
    }
    set_u64(bytes, at + 32, words_crc(&words));
}

/// Writes count record `i`.
pub(crate) fn counts(bytes: &mut [u8], i: usize, clock: u64, sequence: u64, count: u64, used: u64) {
    let words = [clock, sequence, count, used, 0];
    for (j, w) in words.iter().enumerate() {
        set_u64(bytes, COUNTS[i] + 8 * j, *w);
    }
    set_u64(bytes, COUNTS[i] + 40, words_crc(&words));
}

/// A slot image of `slot_size` bytes for keys of up to `key_size` bytes (`geometry`).
pub(crate) fn image(
    (slot_size, key_size): (usize, usize),
    state: u64,
    version: u64,
    commit: u64,
    undo: u64,
    key: &[u8],
    value: &[u8],
) -> Vec<u8> {
    let mut image = vec![0u8; slot_size];
    set_u64(&mut image, 0, (version << 2) | state);
    set_u64(&mut image, 8, commit);
    set_u64(&mut image, 16, undo);
    set_u32(&mut image, 24, (hash_key(key) >> 32) as u32);
    set_u32(&mut image, 28, key.len() as u32);
    set_u32(&mut image, 32, value.len() as u32);
    image[40..40 + key.len()].copy_from_slice(key);
    image[40 + key_size..40 + key_size + value.len()].copy_from_slice(value);
    let crc = crc32c_append(crc32c_append(crc32c_append(0, &image[8..36]), key), value);
    set_u32(&mut image, 36, crc);
    image
}

/// A history entry: number, slot, generation, checksum, image.
pub(crate) fn entry(number: u64, slot: u64, generation: u64, image: &[u8]) -> Vec<u8> {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&slot.to_le_bytes());
    head[8..].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32c_append(crc32c_append(0, &head), image);
    let mut out = vec![0u8; 32];
    set_u64(&mut out, 0, number);
    out[8..24].copy_from_slice(&head);
    set_u32(&mut out, 24, crc);
    out.extend_from_slice(image);
    out
}
