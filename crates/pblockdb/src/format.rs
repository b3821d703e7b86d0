//! The on-disk layout: constants, header offsets, the key hash and checksums. Kept in step with
//! `docs/pblockdb-format.md`, which explains every field.

/// The eight bytes every pblockdb file starts with (PNG-style: catches text-mode damage).
pub const MAGIC: [u8; 8] = *b"\x89PBD\r\n\x1a\n";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in the user area of the header.
pub const USER_AREA_SIZE: usize = 256;
/// Largest supported key size in bytes.
pub const MAX_KEY_SIZE: usize = 1024;
/// Largest supported value size in bytes.
pub const MAX_VALUE_SIZE: usize = 1 << 20;
/// Smallest table capacity in slots.
pub const MIN_CAPACITY: u64 = 16;
/// Largest table capacity in slots.
pub const MAX_CAPACITY: u64 = 1 << 32;

pub(crate) const PAGE: u64 = 4096;

pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_HEADER_SIZE: usize = 12;
pub(crate) const OFF_KEY_SIZE: usize = 16;
pub(crate) const OFF_VALUE_SIZE: usize = 20;
pub(crate) const OFF_SLOT_SIZE: usize = 24;
pub(crate) const OFF_USER_AREA_SIZE: usize = 28;
pub(crate) const OFF_GEOMETRY_CRC: usize = 40;
pub(crate) const GEOMETRY_LEN: usize = 40;

pub(crate) const OFF_GENERATION: usize = 64;
pub(crate) const OFF_DESC: [usize; 2] = [72, 96];
pub(crate) const OFF_COUNT: usize = 128;
pub(crate) const OFF_USED: usize = 136;
pub(crate) const OFF_CHANGES: usize = 144;

pub(crate) const OFF_JOURNAL_STATE: usize = 192;
pub(crate) const OFF_JOURNAL_BODY: usize = 200;
pub(crate) const JOURNAL_BODY_LEN: usize = 40;
pub(crate) const OFF_JOURNAL_CRC: usize = 240;
pub(crate) const JOURNAL_ARMED: u64 = 0x4A52_4E4C_4152_4D44;

pub(crate) const OFF_USER_VERSION: usize = 256;
/// Two copies of the user area; the parity of `user_version` selects the current one.
pub(crate) const OFF_USER_AREA: [usize; 2] = [320, 576];
pub(crate) const OFF_JOURNAL_IMAGE: usize = 832;
/// The smallest file that can hold a header's fixed fields.
pub(crate) const MIN_FILE_LEN: u64 = OFF_JOURNAL_IMAGE as u64;

pub(crate) const SLOT_HEADER: usize = 16;
pub(crate) const STATE_EMPTY: u64 = 0;
pub(crate) const STATE_LIVE: u64 = 1;
pub(crate) const STATE_TOMB: u64 = 2;

pub(crate) fn state_of(meta: u64) -> u64 {
    meta & 3
}

pub(crate) fn version_of(meta: u64) -> u64 {
    meta >> 2
}

pub(crate) fn meta(version: u64, state: u64) -> u64 {
    (version << 2) | state
}

/// Rounds `value` up to a multiple of `to` (a power of two), or `None` on overflow.
pub(crate) fn round_up(value: u64, to: u64) -> Option<u64> {
    Some(value.checked_add(to - 1)? & !(to - 1))
}

/// The sizes every offset is computed from; all within the ranges checked by [`Self::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub key_size: usize,
    pub value_size: usize,
    pub slot_size: usize,
    pub header_size: u64,
}

impl Geometry {
    pub(crate) fn new(key_size: usize, value_size: usize) -> crate::Result<Self> {
        if !(1..=MAX_KEY_SIZE).contains(&key_size) {
            return Err(crate::Error::InvalidGeometry {
                what: "key_size",
                value: key_size as u64,
                min: 1,
                max: MAX_KEY_SIZE as u64,
            });
        }
        if value_size > MAX_VALUE_SIZE {
            return Err(crate::Error::InvalidGeometry {
                what: "value_size",
                value: value_size as u64,
                min: 0,
                max: MAX_VALUE_SIZE as u64,
            });
        }
        // Both bounded above, so none of this can overflow.
        let slot_size = (SLOT_HEADER + key_size + value_size).next_multiple_of(8);
        let header_size = ((OFF_JOURNAL_IMAGE + slot_size) as u64).next_multiple_of(PAGE);
        Ok(Geometry {
            key_size,
            value_size,
            slot_size,
            header_size,
        })
    }

    /// Bytes of a table region: the hint array, then the slots.
    pub(crate) fn table_bytes(&self, capacity: u64) -> Option<u64> {
        hint_bytes(capacity)?.checked_add(capacity.checked_mul(self.slot_size as u64)?)
    }

    /// Offset of the value within a slot.
    pub(crate) fn value_at(&self) -> usize {
        SLOT_HEADER + self.key_size
    }

    /// The geometry fields of the header, bytes `0..GEOMETRY_LEN`, with the magic.
    pub(crate) fn header_bytes(&self) -> [u8; GEOMETRY_LEN] {
        let mut bytes = [0u8; GEOMETRY_LEN];
        bytes[..8].copy_from_slice(&MAGIC);
        put_u32(&mut bytes, OFF_VERSION, FORMAT_VERSION);
        put_u32(&mut bytes, OFF_HEADER_SIZE, self.header_size as u32);
        put_u32(&mut bytes, OFF_KEY_SIZE, self.key_size as u32);
        put_u32(&mut bytes, OFF_VALUE_SIZE, self.value_size as u32);
        put_u32(&mut bytes, OFF_SLOT_SIZE, self.slot_size as u32);
        put_u32(&mut bytes, OFF_USER_AREA_SIZE, USER_AREA_SIZE as u32);
        bytes
    }
}

pub(crate) fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn get_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

pub(crate) fn get_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// A table descriptor's checksum binds offset, capacity and the generation selecting it.
pub(crate) fn descriptor_crc(offset: u64, capacity: u64, generation: u64) -> u64 {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&offset.to_le_bytes());
    bytes[8..16].copy_from_slice(&capacity.to_le_bytes());
    bytes[16..].copy_from_slice(&generation.to_le_bytes());
    u64::from(crc32c::crc32c(&bytes))
}

/// Checksum of a live slot: the tag, then key and value.
pub(crate) fn slot_crc(tag: u32, key_value: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&tag.to_le_bytes()), key_value)
}

/// The key hash: FxHash-style multiply-rotate over 8-byte little-endian words (the last one
/// zero-padded), finished with the MurmurHash3 64-bit mixer so the low bits (the home slot) and
/// the high bits (the tag) are both well spread. Part of the format: changing it is a new
/// version.
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h: u64 = key.len() as u64;
    let mut chunks = key.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

pub(crate) fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// Bytes of a table's hint array: one `u32` per slot, rounded up to a cache line so the slots
/// after it stay 8-aligned.
pub(crate) fn hint_bytes(capacity: u64) -> Option<u64> {
    round_up(capacity.checked_mul(4)?, 64)
}

/// A slot's hint: its state in the low two bits, the upper 30 bits of its tag above them.
pub(crate) fn hint(state: u64, tag: u32) -> u32 {
    (tag & !3) | state as u32
}

/// Whether a hint could be the live slot of a key with this tag.
pub(crate) fn hint_matches(hint: u32, tag: u32) -> bool {
    hint == (tag & !3) | STATE_LIVE as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_catches_text_mode_damage() {
        assert_eq!(MAGIC.len(), 8);
        assert!(MAGIC[0] & 0x80 != 0);
        assert!(MAGIC.windows(2).any(|w| w == b"\r\n"));
        assert!(MAGIC.contains(&0x1a));
    }

    #[test]
    fn geometry_is_checked_and_aligned() {
        let g = Geometry::new(16, 64).unwrap();
        assert_eq!(g.slot_size, 96);
        assert_eq!(g.header_size, 4096);
        assert_eq!(Geometry::new(3, 1).unwrap().slot_size, 24);
        assert!(Geometry::new(0, 8).is_err());
        assert!(Geometry::new(MAX_KEY_SIZE + 1, 8).is_err());
        assert!(Geometry::new(8, MAX_VALUE_SIZE + 1).is_err());
        let big = Geometry::new(MAX_KEY_SIZE, MAX_VALUE_SIZE).unwrap();
        assert_eq!(big.header_size % PAGE, 0);
        assert!(big.header_size >= (OFF_JOURNAL_IMAGE + big.slot_size) as u64);
    }

    #[test]
    fn hash_spreads_and_depends_on_every_byte() {
        let a = hash_key(b"0123456789abcdef");
        let b = hash_key(b"0123456789abcdeg");
        let c = hash_key(b"1123456789abcdef");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(hash_key(b"abc"), hash_key(b"abd"));
        // Sequential integer keys should land in distinct low bits most of the time.
        let mut homes = std::collections::HashSet::new();
        for i in 0u64..1024 {
            homes.insert(hash_key(&i.to_le_bytes()) & 1023);
        }
        assert!(homes.len() > 550, "poor spread: {}", homes.len());
    }

    #[test]
    fn round_up_overflows_to_none() {
        assert_eq!(round_up(1, 4096), Some(4096));
        assert_eq!(round_up(4096, 4096), Some(4096));
        assert_eq!(round_up(u64::MAX, 4096), None);
    }
}
