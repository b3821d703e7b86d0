//! The on-disk layout, version 2: constants, header offsets derived from each other, and the
//! codecs of slots, history entries, descriptors and count records. Kept in step with
//! `docs/pblockdb-format.md` (and checked against it by `cargo xtask tidy`).

/// The eight bytes every pblockdb file starts with (PNG-style: catches text-mode damage).
pub const MAGIC: [u8; 8] = *b"\x89PBD\r\n\x1a\n";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;
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
/// The table is rebuilt when live records plus tombstones would pass this fraction of it
/// (numerator, denominator): linear probing over a dense hint array stays short up to 7/8, and
/// a fuller table keeps more of itself in the cache.
pub(crate) const MAX_LOAD: (u64, u64) = (7, 8);
/// Smallest history ring, in entries.
pub const MIN_HISTORY: u64 = 64;
/// Largest history ring, in entries.
pub const MAX_HISTORY: u64 = 1 << 32;

pub(crate) const PAGE: u64 = 4096;

// The fixed header: geometry, then one cache line per group of words that change together.
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_HEADER_SIZE: usize = OFF_VERSION + 4;
pub(crate) const OFF_KEY_SIZE: usize = OFF_HEADER_SIZE + 4;
pub(crate) const OFF_VALUE_SIZE: usize = OFF_KEY_SIZE + 4;
pub(crate) const OFF_SLOT_SIZE: usize = OFF_VALUE_SIZE + 4;
pub(crate) const OFF_USER_AREA_SIZE: usize = OFF_SLOT_SIZE + 4;
pub(crate) const OFF_GEOMETRY_CRC: usize = OFF_USER_AREA_SIZE + 12;
pub(crate) const GEOMETRY_LEN: usize = OFF_GEOMETRY_CRC;

/// Bumped by each table rebuild; selects the active table descriptor (`generation & 1`).
pub(crate) const OFF_GENERATION: usize = 64;
/// Two table descriptors of [`DESCRIPTOR_LEN`] bytes.
pub(crate) const OFF_TABLES: [usize; 2] = [OFF_GENERATION + 8, OFF_GENERATION + 8 + DESCRIPTOR_LEN];
pub(crate) const DESCRIPTOR_LEN: usize = 40;

/// The snapshot clock: the history position after the last committed transaction.
pub(crate) const OFF_COMMIT: usize = 192;
/// The history position after the last entry written (ahead of `commit` only mid-commit).
pub(crate) const OFF_HISTORY_HEAD: usize = OFF_COMMIT + 8;
/// Bumped by each history ring growth; selects the active ring descriptor.
pub(crate) const OFF_RING_GENERATION: usize = OFF_HISTORY_HEAD + 8;
/// Two ring descriptors of [`RING_LEN`] bytes.
pub(crate) const OFF_RINGS: [usize; 2] =
    [OFF_RING_GENERATION + 8, OFF_RING_GENERATION + 8 + RING_LEN];
pub(crate) const RING_LEN: usize = 40;

/// Two count records of [`COUNTS_LEN`] bytes; the valid one whose clock is `commit` (and, of
/// two such, the higher sequence) holds the counts of the committed state.
pub(crate) const OFF_COUNTS: [usize; 2] = [320, 320 + COUNTS_LEN];
pub(crate) const COUNTS_LEN: usize = 48;

/// The writer word (u32): 0 when no writer holds the lock, else the holder's liveness mark id
/// in the low 31 bits and bit 31 set while someone waits (`lock.rs`, Linux; elsewhere unused).
pub(crate) const OFF_WRITER: usize = 416;
const _: () =
    assert!(OFF_WRITER == OFF_COUNTS[1] + COUNTS_LEN && OFF_WRITER + 4 <= OFF_USER_VERSION);

pub(crate) const OFF_USER_VERSION: usize = 448;
/// Two copies of the user area; the parity of `user_version` selects the current one.
pub(crate) const OFF_USER_AREA: [usize; 2] = [512, 512 + USER_AREA_SIZE];
/// The end of the fixed header fields.
pub(crate) const HEADER_FIELDS_END: usize = OFF_USER_AREA[1] + USER_AREA_SIZE;
/// The smallest file that can hold a header.
pub(crate) const MIN_FILE_LEN: u64 = PAGE;
/// The header's size: every table and ring region starts after it.
pub(crate) const HEADER_SIZE: u64 = PAGE;

// A slot: a fixed header, then the key and value areas at their maximum sizes.
pub(crate) const SLOT_META: usize = 0;
pub(crate) const SLOT_COMMIT: usize = 8;
pub(crate) const SLOT_UNDO: usize = 16;
pub(crate) const SLOT_TAG: usize = 24;
pub(crate) const SLOT_KEY_LEN: usize = 28;
pub(crate) const SLOT_VALUE_LEN: usize = 32;
pub(crate) const SLOT_CRC: usize = 36;
pub(crate) const SLOT_HEADER: usize = 40;

pub(crate) const STATE_EMPTY: u64 = 0;
pub(crate) const STATE_LIVE: u64 = 1;
pub(crate) const STATE_TOMB: u64 = 2;

/// A slot image's `undo` when it has no older version: the slot was empty before it.
pub(crate) const NO_UNDO: u64 = u64::MAX;

// A history entry: a small header, then the slot image it saved.
pub(crate) const ENTRY_NUMBER: usize = 0;
pub(crate) const ENTRY_SLOT: usize = 8;
pub(crate) const ENTRY_GENERATION: usize = 16;
pub(crate) const ENTRY_CRC: usize = 24;
pub(crate) const ENTRY_HEADER: usize = 32;
/// An entry's number while it is being written.
pub(crate) const ENTRY_WRITING: u64 = u64::MAX;

pub(crate) fn state_of(meta: u64) -> u64 {
    meta & 3
}

pub(crate) fn version_of(meta: u64) -> u64 {
    meta >> 2
}

pub(crate) fn meta(version: u64, state: u64) -> u64 {
    (version << 2) | state
}

/// Whether a slot's meta word says a writer is inside the slot (odd version).
pub(crate) fn is_writing(meta: u64) -> bool {
    version_of(meta) & 1 == 1
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
        // Both bounded above, so this cannot overflow.
        let slot_size = (SLOT_HEADER + key_size + value_size).next_multiple_of(8);
        Ok(Geometry {
            key_size,
            value_size,
            slot_size,
        })
    }

    /// Bytes of a table region: the hint array, then the slots.
    pub(crate) fn table_bytes(&self, capacity: u64) -> Option<u64> {
        hint_bytes(capacity)?.checked_add(capacity.checked_mul(self.slot_size as u64)?)
    }

    /// Bytes of one history entry.
    pub(crate) fn entry_size(&self) -> usize {
        ENTRY_HEADER + self.slot_size
    }

    /// Bytes of a history ring of `entries` entries.
    pub(crate) fn ring_bytes(&self, entries: u64) -> Option<u64> {
        entries.checked_mul(self.entry_size() as u64)
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
        put_u32(&mut bytes, OFF_HEADER_SIZE, HEADER_SIZE as u32);
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

pub(crate) fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[inline]
pub(crate) fn get_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

#[inline]
pub(crate) fn get_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn crc_of_words(words: &[u64]) -> u64 {
    // One pass over the words' bytes laid end to end: the same value as appending them one by
    // one, at one call's cost instead of one per word.
    let mut bytes = [0u8; 64];
    let len = words.len().min(8) * 8;
    for (i, word) in words.iter().take(8).enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    u64::from(pmap::crc32c_append(0, &bytes[..len]))
}

/// A table descriptor: where a table lives and from which commit its contents hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableDescriptor {
    /// The generation this descriptor describes; `u64::MAX` while it is being rewritten.
    pub generation: u64,
    pub offset: u64,
    pub capacity: u64,
    /// The commit clock when the table became active: snapshots from it on read this table.
    pub since: u64,
}

impl TableDescriptor {
    pub(crate) fn crc(&self) -> u64 {
        crc_of_words(&[self.generation, self.offset, self.capacity, self.since])
    }
}

/// A history ring descriptor: where the ring lives and the first entry number it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingDescriptor {
    /// The ring generation this describes; `u64::MAX` while it is being rewritten.
    pub generation: u64,
    pub offset: u64,
    /// Entries (a power of two); entry `n` lives at `offset + (n % entries) * entry_size`.
    pub entries: u64,
    /// The first entry number written into this ring.
    pub base: u64,
}

impl RingDescriptor {
    pub(crate) fn crc(&self) -> u64 {
        crc_of_words(&[self.generation, self.offset, self.entries, self.base])
    }
}

/// The counts of one committed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    /// The commit clock these counts belong to.
    pub clock: u64,
    /// Orders two records of one clock (a rebuild rewrites `used` without a commit).
    pub sequence: u64,
    /// Live records.
    pub count: u64,
    /// Live records plus tombstones in the active table.
    pub used: u64,
    /// Transactions committed over the life of the file.
    pub commits: u64,
}

impl Counts {
    pub(crate) fn encode(&self) -> [u8; COUNTS_LEN] {
        let mut bytes = [0u8; COUNTS_LEN];
        let words = [
            self.clock,
            self.sequence,
            self.count,
            self.used,
            self.commits,
        ];
        for (i, word) in words.iter().enumerate() {
            put_u64(&mut bytes, i * 8, *word);
        }
        put_u64(&mut bytes, 40, crc_of_words(&words));
        bytes
    }

    /// The record in `bytes`, if its checksum holds.
    pub(crate) fn decode(bytes: &[u8; COUNTS_LEN]) -> Option<Counts> {
        let word = |i: usize| get_u64(bytes, i * 8);
        let words = [word(0), word(1), word(2), word(3), word(4)];
        (crc_of_words(&words) == word(5)).then_some(Counts {
            clock: words[0],
            sequence: words[1],
            count: words[2],
            used: words[3],
            commits: words[4],
        })
    }
}

/// A slot image's fields, read from its fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotHeader {
    pub meta: u64,
    pub commit: u64,
    pub undo: u64,
    pub tag: u32,
    pub key_len: u32,
    pub value_len: u32,
    pub crc: u32,
}

impl SlotHeader {
    pub(crate) fn read(image: &[u8]) -> SlotHeader {
        // One bounds check for the whole header; the fields are then at constant offsets of a
        // fixed-size array (a reader decodes a header per slot it looks at).
        let mut head = [0u8; SLOT_HEADER];
        head.copy_from_slice(&image[..SLOT_HEADER]);
        SlotHeader {
            meta: get_u64(&head, SLOT_META),
            commit: get_u64(&head, SLOT_COMMIT),
            undo: get_u64(&head, SLOT_UNDO),
            tag: get_u32(&head, SLOT_TAG),
            key_len: get_u32(&head, SLOT_KEY_LEN),
            value_len: get_u32(&head, SLOT_VALUE_LEN),
            crc: get_u32(&head, SLOT_CRC),
        }
    }

    pub(crate) fn state(&self) -> u64 {
        state_of(self.meta)
    }
}

/// A slot image's key and value, once its lengths were checked against the geometry.
pub(crate) fn key_of<'a>(image: &'a [u8], geo: &Geometry) -> Option<&'a [u8]> {
    let len = get_u32(image, SLOT_KEY_LEN) as usize;
    (len <= geo.key_size).then(|| &image[SLOT_HEADER..][..len])
}

/// A slot image's key and value, once its lengths were checked against the geometry: both
/// lengths read at once, for a scan's hand-out of every record.
#[inline]
pub(crate) fn record_of<'a>(image: &'a [u8], geo: &Geometry) -> Option<(&'a [u8], &'a [u8])> {
    let (key_len, value_len) = checked_lengths(image, geo)?;
    let value_at = geo.value_at();
    Some((
        image.get(SLOT_HEADER..SLOT_HEADER + key_len)?,
        image.get(value_at..value_at + value_len)?,
    ))
}

/// The key and value lengths of `image`, when it is a whole slot and both are in range: read
/// alone, without decoding the rest of the header (a scan checks every record it hands out).
#[inline]
fn checked_lengths(image: &[u8], geo: &Geometry) -> Option<(usize, usize)> {
    let image = image.get(..geo.slot_size)?;
    let key_len = get_u32(image, SLOT_KEY_LEN) as usize;
    let value_len = get_u32(image, SLOT_VALUE_LEN) as usize;
    (key_len <= geo.key_size && value_len <= geo.value_size).then_some((key_len, value_len))
}

pub(crate) fn value_of<'a>(image: &'a [u8], geo: &Geometry) -> Option<&'a [u8]> {
    let len = get_u32(image, SLOT_VALUE_LEN) as usize;
    (len <= geo.value_size).then(|| &image[geo.value_at()..][..len])
}

/// The checksum of a slot image: its commit, undo, tag and lengths, then its key and value
/// bytes (exactly their lengths). `None` when a length exceeds the geometry.
pub(crate) fn slot_crc(image: &[u8], geo: &Geometry) -> Option<u32> {
    let (key, _) = record_parts(image, geo)?;
    Some(parts_crc(image, geo, key))
}

/// The header of `image` and its key, when the lengths are in range and `image` is a whole
/// slot (one bounds check for the header, one for the slot's end).
#[inline]
fn record_parts<'a>(image: &'a [u8], geo: &Geometry) -> Option<(&'a [u8], SlotHeader)> {
    let image = image.get(..geo.slot_size)?;
    let header = SlotHeader::read(image);
    let (key_len, value_len) = (header.key_len as usize, header.value_len as usize);
    if key_len > geo.key_size || value_len > geo.value_size {
        return None;
    }
    Some((&image[SLOT_HEADER..SLOT_HEADER + key_len], header))
}

/// The checksum of `image`, whose lengths [`record_parts`] checked (`key` is its key).
#[inline]
fn parts_crc(image: &[u8], geo: &Geometry, key: &[u8]) -> u32 {
    parts_crc_by(image, geo, key, pmap::crc32c_append)
}

/// [`parts_crc`] with `append` (a crc32c of a buffer appended to a crc) for each part in turn:
/// its header fields, its key and its value. A call a part, with no list of parts to walk
/// (the list and its dispatch a part were 36 of a scan's 454 instructions a record).
#[inline]
fn parts_crc_by(
    image: &[u8],
    geo: &Geometry,
    key: &[u8],
    append: impl Fn(u32, &[u8]) -> u32,
) -> u32 {
    let value_len = get_u32(image, SLOT_VALUE_LEN) as usize;
    let head = append(0, &image[SLOT_COMMIT..SLOT_CRC]);
    let value_at = geo.value_at();
    if key.len() == geo.key_size {
        // A key that fills its room runs straight into the value: two parts, not three.
        return append(head, &image[SLOT_HEADER..value_at + value_len]);
    }
    append(append(head, key), &image[value_at..value_at + value_len])
}

/// Whether a live or tombstone image is whole: lengths in range, checksum and tag right. Reads
/// only the fields it checks (a scan checks every record it hands out).
pub(crate) fn image_is_sound(image: &[u8], geo: &Geometry) -> bool {
    let Some((key_len, _)) = checked_lengths(image, geo) else {
        return false;
    };
    let key = &image[SLOT_HEADER..SLOT_HEADER + key_len];
    if get_u32(image, SLOT_TAG) != tag_of(hash_key(key)) {
        return false;
    }
    // One chain a part (`pmap::crc32c_append_chained`): a scan checks records one after
    // another, and their chains overlap in the processor.
    parts_crc_by(image, geo, key, pmap::crc32c_append_chained) == get_u32(image, SLOT_CRC)
}

/// Whether an image's checksum matches its bytes (lengths in range). Enough for an image a
/// lookup matched by tag and key: its tag is then the looked-up key's, so [`image_is_sound`]'s
/// tag check would hash the same key again.
pub(crate) fn checksum_holds(image: &[u8], geo: &Geometry) -> bool {
    record_parts(image, geo).is_some_and(|(key, header)| parts_crc(image, geo, key) == header.crc)
}

/// Fills `image` (zeroed, `slot_size` bytes) as a record of `key` and `value` (or, when
/// `value` is `None`, a tombstone keeping the key) written by commit `commit` over the version
/// saved as history entry `undo`, with meta word `meta`.
pub(crate) fn build_image(
    image: &mut [u8],
    geo: &Geometry,
    key: &[u8],
    value: Option<&[u8]>,
    commit: u64,
    undo: u64,
    version: u64,
) {
    image.fill(0);
    let state = if value.is_some() {
        STATE_LIVE
    } else {
        STATE_TOMB
    };
    let value = value.unwrap_or(&[]);
    put_u64(image, SLOT_META, meta(version, state));
    put_u64(image, SLOT_COMMIT, commit);
    put_u64(image, SLOT_UNDO, undo);
    put_u32(image, SLOT_TAG, tag_of(hash_key(key)));
    put_u32(image, SLOT_KEY_LEN, key.len() as u32);
    put_u32(image, SLOT_VALUE_LEN, value.len() as u32);
    image[SLOT_HEADER..][..key.len()].copy_from_slice(key);
    image[geo.value_at()..][..value.len()].copy_from_slice(value);
    // The lengths were checked by the caller, so the checksum exists.
    let crc = slot_crc(image, geo).unwrap_or(0);
    put_u32(image, SLOT_CRC, crc);
}

/// The checksum of a history entry's header fields (slot and generation) and its image.
pub(crate) fn entry_crc(slot: u64, generation: u64, image: &[u8]) -> u32 {
    let mut head = [0u8; 16];
    put_u64(&mut head, 0, slot);
    put_u64(&mut head, 8, generation);
    pmap::crc32c_append(pmap::crc32c_append(0, &head), image)
}

/// The key hash: FxHash-style multiply-rotate over 8-byte little-endian words (the last one
/// zero-padded), seeded with the key's length so that `"a"` and `"a\0"` differ, finished with
/// the MurmurHash3 64-bit mixer so the low bits (the home slot) and the high bits (the tag)
/// are both well spread. Part of the format: changing it is a new version.
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
    if state == STATE_EMPTY {
        0
    } else {
        (tag & !3) | state as u32
    }
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
        assert!(MAGIC[0] & 0x80 != 0);
        assert!(MAGIC.windows(2).any(|w| w == b"\r\n"));
        assert!(MAGIC.contains(&0x1a));
    }

    #[test]
    fn header_fields_fit_and_do_not_overlap() {
        assert_eq!(GEOMETRY_LEN, 40);
        assert!(OFF_TABLES[1] + DESCRIPTOR_LEN <= OFF_COMMIT);
        assert!(OFF_RINGS[1] + RING_LEN <= OFF_COUNTS[0]);
        assert!(OFF_COUNTS[1] + COUNTS_LEN <= OFF_USER_VERSION);
        assert!(HEADER_FIELDS_END as u64 <= HEADER_SIZE);
        for at in [
            OFF_GENERATION,
            OFF_COMMIT,
            OFF_HISTORY_HEAD,
            OFF_RING_GENERATION,
        ] {
            assert_eq!(at % 8, 0);
        }
    }

    #[test]
    fn geometry_is_checked_and_aligned() {
        let g = Geometry::new(16, 64).unwrap();
        assert_eq!(g.slot_size, 120);
        assert_eq!(Geometry::new(3, 1).unwrap().slot_size, 48);
        assert!(Geometry::new(0, 8).is_err());
        assert!(Geometry::new(MAX_KEY_SIZE + 1, 8).is_err());
        assert!(Geometry::new(8, MAX_VALUE_SIZE + 1).is_err());
    }

    #[test]
    fn keys_of_different_lengths_hash_apart() {
        assert_ne!(hash_key(b"a"), hash_key(b"a\0"));
        assert_ne!(hash_key(b""), hash_key(b"\0"));
        let mut homes = std::collections::HashSet::new();
        for i in 0u64..1024 {
            homes.insert(hash_key(&i.to_le_bytes()) & 1023);
        }
        assert!(homes.len() > 550, "poor spread: {}", homes.len());
    }

    #[test]
    fn images_round_trip_and_checksums_cover_every_field() {
        let g = Geometry::new(8, 16).unwrap();
        let mut image = vec![0u8; g.slot_size];
        build_image(&mut image, &g, b"key", Some(b"value"), 7, 3, 2);
        assert!(image_is_sound(&image, &g));
        assert_eq!(key_of(&image, &g), Some(&b"key"[..]));
        assert_eq!(value_of(&image, &g), Some(&b"value"[..]));
        let header = SlotHeader::read(&image);
        assert_eq!(
            (header.commit, header.undo, header.state()),
            (7, 3, STATE_LIVE)
        );
        for at in SLOT_COMMIT..SLOT_HEADER + 3 {
            let mut bad = image.clone();
            bad[at] ^= 1;
            assert!(!image_is_sound(&bad, &g), "a flip at {at} went unnoticed");
        }
    }

    #[test]
    fn counts_records_reject_any_flipped_bit() {
        let counts = Counts {
            clock: 9,
            sequence: 2,
            count: 5,
            used: 6,
            commits: 4,
        };
        let bytes = counts.encode();
        assert_eq!(Counts::decode(&bytes), Some(counts));
        for bit in 0..COUNTS_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Counts::decode(&bad), None);
        }
    }

    #[test]
    fn round_up_overflows_to_none() {
        assert_eq!(round_up(1, 4096), Some(4096));
        assert_eq!(round_up(u64::MAX, 4096), None);
    }
}
