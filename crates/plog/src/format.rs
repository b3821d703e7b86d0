//! The on-disk layout, exactly as `docs/plog-format.md` describes it, and the checks that make
//! every field safe to compute with.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[cfg(target_endian = "big")]
compile_error!(
    "plog files are little-endian and its atomics are native: big-endian hosts are not supported"
);

/// The first 16 bytes of every plog file: PNG-style, so that a text-mode transfer (which
/// rewrites `\r\n` or `\n`), a 7-bit channel (which clears the high bit of 0x89) or a `type`
/// command (stopped by 0x1a) is caught as damage rather than read as a log.
pub const MAGIC: [u8; 16] = *b"\x89PLOG\r\n\x1a\n\0\0\0\0\0\0\0";

/// The newest format version this build reads and writes: 3, a ring split into writer lanes
/// (docs/plog-format.md, "Lanes"). A log of one lane is written exactly as format 2 was, with
/// `version` and `compat_version` 2, so that format 2 builds go on reading it; only a laned
/// log is version 3.
pub const FORMAT_VERSION: u32 = 3;

/// The `version` and `compat_version` of a laned log: format 2 builds cannot read it (its
/// reservation counters and ring are split by lane).
pub const LANED_COMPAT_VERSION: u32 = 3;

/// The most writer lanes a log may have.
pub const MAX_LANES: u32 = 16;

/// The oldest version of plog able to read the logs of one lane this build writes (their
/// `version` too: format 2, every block starting with a claim word, docs/plog-format.md,
/// "Claims"). A reader accepts a file whose `compat_version` is at most its own
/// [`FORMAT_VERSION`]: newer versions that only add to the format keep `compat_version` and
/// stay readable by this build. Format 1 readers cannot read format 2 (a record's later blocks
/// begin with claim words), hence 2.
pub const COMPAT_VERSION: u32 = 2;

/// The format version of the files written before claim words, which this build refuses
/// ([`crate::Error::OldFormat`]).
pub const FORMAT_VERSION_1: u32 = 1;

/// Bytes before the ring of a log of one lane: one 4 KiB page.
pub const HEADER_SIZE: u32 = 4096;

/// Bytes before the ring of a laned log: the header page, then a page of lane counters and
/// lane cursor positions.
pub const LANED_HEADER_SIZE: u32 = 8192;

/// The longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 255;

/// Bytes of a record's fixed header, before its tag and payload.
pub const RECORD_HEADER_LEN: usize = 40;

/// Number of named cursor slots in the header.
pub const CURSOR_SLOTS: usize = 16;

/// The longest cursor name, in bytes.
pub const MAX_CURSOR_NAME: usize = 47;

/// Bytes of the user area in the header.
pub const USER_AREA_SIZE: usize = 1024;

/// Smallest and largest block sizes (both powers of two).
pub const MIN_BLOCK_SIZE: u32 = 64;
/// Largest block size.
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
/// Fewest blocks in a ring.
pub const MIN_BLOCKS: u64 = 2;
/// Most blocks in a ring.
pub const MAX_BLOCKS: u64 = 1 << 32;
/// Largest ring in bytes (1 TiB).
pub const MAX_RING_BYTES: u64 = 1 << 40;
/// Positions (record ids) stay below this, so that `id + 1` (the commit word) never wraps.
pub const POSITION_LIMIT: u64 = 1 << 62;

/// No writer is granted a position at or past this: a write that would be is refused with
/// [`crate::Error::CounterExhausted`] and gives its reservation back, so refused writes can never
/// push the counter to [`POSITION_LIMIT`], which opening rejects. A claim word naming a position
/// at or past it is garbage.
pub const WRITE_LIMIT: u64 = POSITION_LIMIT - (1 << 33);

/// Bytes at the start of every block taken by its claim word.
pub const CLAIM_LEN: usize = 8;

/// Default geometry: 16384 blocks of 128 bytes (2 MiB).
pub const DEFAULT_BLOCKS: u64 = 16384;
/// Default block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 128;

// Offsets of the live header words.
pub(crate) const NEXT_OFF: usize = 64;
pub(crate) const WAKE_OFF: usize = 128;
pub(crate) const CURSORS_OFF: usize = 1024;
pub(crate) const CURSOR_SLOT_LEN: usize = 64;
pub(crate) const USER_AREA_OFF: usize = 2048;
/// A laned log's reservation counters: lane `k`'s at `LANE_COUNTERS_OFF + k * LANE_COUNTER_STRIDE`,
/// each alone on a pair of cache lines (the adjacent-line prefetcher fetches lines in pairs),
/// so that writers on two cores never share a counter's line.
pub(crate) const LANE_COUNTERS_OFF: usize = 4096;
/// Bytes between two lanes' counters.
pub(crate) const LANE_COUNTER_STRIDE: usize = 128;
/// A laned log's cursor lane tables, after the counters of the most lanes a log may have:
/// cursor slot `s`'s at `CURSOR_LANES_OFF + s * CURSOR_LANES_STRIDE`, holding a sequence word,
/// the id it was saved with, and one 4-byte offset per lane (docs/plog-format.md, "Lanes").
pub(crate) const CURSOR_LANES_OFF: usize = LANE_COUNTERS_OFF + 16 * LANE_COUNTER_STRIDE;
/// Bytes of one cursor's lane table.
pub(crate) const CURSOR_LANES_STRIDE: usize = 128;

/// Bit 31 of the wake word: a follower is (about to be) asleep on it.
pub(crate) const SLEEPER: u32 = 1 << 31;

/// Record kinds: 0 is a record whose payload is its message. (Format 1's kind 1, padding, is a
/// claim word in format 2, so format 2 gives 1 a new meaning.)
pub(crate) const KIND_RECORD: u8 = 0;
/// Kind 1: a record whose payload is a structured encoding (`structured.rs`).
pub(crate) const KIND_STRUCTURED: u8 = 1;

/// The fixed first 64 bytes of the header, written once at creation.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct StaticHeader {
    pub magic: [u8; 16],
    pub version: u32,
    pub compat_version: u32,
    pub header_size: u32,
    pub block_size: u32,
    pub block_count: u64,
    pub created_ns: u64,
    /// Writer lanes: 1 (one reservation counter, at [`NEXT_OFF`]), or a power of two up to
    /// [`MAX_LANES`], each lane a ring of its own with its counter in the second header page.
    pub lanes: u32,
    pub reserved: [u32; 2],
    /// crc32c of bytes 0..60.
    pub crc: u32,
}

const _: () = assert!(size_of::<StaticHeader>() == 64);

impl StaticHeader {
    pub(crate) fn new(geometry: Geometry, created_ns: u64) -> StaticHeader {
        let version = if geometry.lanes > 1 {
            LANED_COMPAT_VERSION
        } else {
            COMPAT_VERSION
        };
        let mut header = StaticHeader {
            magic: MAGIC,
            version,
            compat_version: version,
            header_size: geometry.header_size(),
            block_size: geometry.block_size,
            block_count: geometry.blocks,
            created_ns,
            lanes: geometry.lanes,
            reserved: [0; 2],
            crc: 0,
        };
        header.crc = header.compute_crc();
        header
    }

    pub(crate) fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.as_bytes()[..60])
    }
}

/// The fixed part of a record, at the start of its first block. Its first word is the block's
/// claim word ([`crate::claim::Claim`]); the rest, the tag and the payload are the record's
/// *content*, laid out over its blocks after each block's claim word.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct RecordHeader {
    /// The claim word: `id + 1` once the record is complete; written last.
    pub commit: u64,
    pub time_ns: u64,
    pub len: u32,
    pub pid: u32,
    pub blocks: u32,
    pub crc: u32,
    pub level: u8,
    pub kind: u8,
    pub tag_len: u8,
    pub reserved0: u8,
    pub reserved1: u32,
}

const _: () = assert!(size_of::<RecordHeader>() == RECORD_HEADER_LEN);

impl RecordHeader {
    /// The record checksum: crc32c over, in this order,
    /// 1. the record's bytes from offset 16 (after `commit` and `time_ns`) to the end of its
    ///    payload, with the `crc` field taken as zero, zero-padded to a multiple of 8 bytes;
    /// 2. the id, 8 bytes LE;
    /// 3. `time_ns`, 8 bytes LE.
    ///
    /// The id binds the bytes to this lap of the ring, so a complete record left from an
    /// earlier lap never passes as a new one. The order puts the two values a writer learns
    /// last (the reservation and the clock) at the end of the crc's serial chain, so the
    /// processor overlaps their latency with it; the padding keeps the hardware crc on whole
    /// words.
    pub(crate) fn checksum(&self, id: u64, tag: &[u8], payload: &[u8]) -> u32 {
        let mut head = *self;
        head.crc = 0;
        let crc = crc32c::crc32c(&head.as_bytes()[16..]);
        let crc = crc32c::crc32c_append(crc, tag);
        let crc = crc32c::crc32c_append(crc, payload);
        let pad = (8 - (tag.len() + payload.len()) % 8) % 8;
        let crc = crc32c::crc32c_append(crc, &[0u8; 8][..pad]);
        let crc = crc32c::crc32c_append(crc, &id.to_le_bytes());
        crc32c::crc32c_append(crc, &self.time_ns.to_le_bytes())
    }

    /// The checksum of a checksum image: the bytes of step 1 of [`Self::checksum`] (with the crc
    /// field, at 12..16, zero), then id and time, 16 bytes, at the end.
    #[inline]
    pub(crate) fn checksum_image(image: &[u8]) -> u32 {
        debug_assert_eq!(image.len() % 8, 0);
        // The same crc32c, in three interleaved streams for the usual record sizes.
        pmap::crc32c_append(0, image)
    }
}

/// Rounds a record's length up to its checksummed length (a multiple of 8).
pub(crate) const fn padded(len: usize) -> usize {
    (len + 7) & !7
}

/// A stack buffer aligned for the hardware crc's 8-byte words.
#[repr(C, align(8))]
pub(crate) struct AlignedImage<const N: usize>(pub [u8; N]);

/// A ring's shape, validated: every product and sum of its fields fits in `u64` and `usize`.
/// `blocks` counts the blocks of every lane together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub blocks: u64,
    pub block_size: u32,
    /// Writer lanes: 1, or a power of two up to [`MAX_LANES`] dividing `blocks` into lanes of
    /// at least [`MIN_BLOCKS`] each.
    pub lanes: u32,
}

impl Geometry {
    /// Checks the rules a requested geometry must follow.
    pub(crate) fn checked(
        blocks: u64,
        block_size: u32,
    ) -> Result<Geometry, (&'static str, u64, &'static str)> {
        if !block_size.is_power_of_two() {
            return Err(("block_size", block_size.into(), "must be a power of two"));
        }
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err((
                "block_size",
                block_size.into(),
                "must be between 64 and 1 MiB",
            ));
        }
        if !(MIN_BLOCKS..=MAX_BLOCKS).contains(&blocks) {
            return Err(("blocks", blocks, "must be between 2 and 2^32"));
        }
        let ring = blocks.checked_mul(block_size.into());
        match ring {
            Some(ring)
                if ring <= MAX_RING_BYTES
                    && usize::try_from(ring + u64::from(HEADER_SIZE)).is_ok() => {}
            _ => {
                return Err((
                    "blocks",
                    blocks,
                    "blocks x block_size must be at most 1 TiB and fit in memory",
                ));
            }
        }
        Ok(Geometry {
            blocks,
            block_size,
            lanes: 1,
        })
    }

    /// This geometry split into `lanes` writer lanes, if the rules allow it.
    pub(crate) fn with_lanes(
        self,
        lanes: u32,
    ) -> Result<Geometry, (&'static str, u64, &'static str)> {
        if !lanes.is_power_of_two() || lanes > MAX_LANES {
            return Err(("lanes", lanes.into(), "must be a power of two from 1 to 16"));
        }
        let lanes_u64 = u64::from(lanes);
        if self.blocks % lanes_u64 != 0 || self.blocks / lanes_u64 < MIN_BLOCKS {
            return Err((
                "lanes",
                lanes.into(),
                "must divide blocks into lanes of at least 2 blocks",
            ));
        }
        Ok(Geometry { lanes, ..self })
    }

    /// Bytes before the ring.
    pub(crate) fn header_size(self) -> u32 {
        if self.lanes > 1 {
            LANED_HEADER_SIZE
        } else {
            HEADER_SIZE
        }
    }

    /// Blocks in one lane's ring.
    pub(crate) fn lane_blocks(self) -> u64 {
        self.blocks / u64::from(self.lanes)
    }

    /// Bytes of the ring.
    pub(crate) fn ring_bytes(self) -> u64 {
        self.blocks * u64::from(self.block_size)
    }

    /// Bytes of the whole file.
    pub(crate) fn file_len(self) -> u64 {
        u64::from(self.header_size()) + self.ring_bytes()
    }

    /// The most blocks one record may take: half a lane's ring, so that a record that had to
    /// skip the ring's end always fits at its start.
    pub(crate) fn max_record_blocks(self) -> u64 {
        self.lane_blocks() / 2
    }

    /// Content bytes (all of a record but its claim words) one block carries.
    pub(crate) fn content_per_block(self) -> usize {
        self.block_size as usize - CLAIM_LEN
    }

    /// The blocks a record of `content` bytes (header after the claim word, tag, payload)
    /// takes.
    pub(crate) fn blocks_for(self, content: u64) -> u64 {
        content.div_ceil(self.content_per_block() as u64).max(1)
    }

    /// The most content bytes (header after its claim word, tag and payload) one record may
    /// take, capped so that a payload length always fits the header's `u32`.
    pub(crate) fn max_content(self) -> usize {
        let bytes = self.max_record_blocks() * self.content_per_block() as u64;
        usize::try_from(bytes.min(u64::from(u32::MAX))).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_rules() {
        assert!(Geometry::checked(16384, 128).is_ok());
        assert!(Geometry::checked(2, 64).is_ok());
        assert_eq!(Geometry::checked(16, 100).unwrap_err().0, "block_size");
        assert_eq!(Geometry::checked(16, 32).unwrap_err().0, "block_size");
        assert_eq!(Geometry::checked(16, 1 << 21).unwrap_err().0, "block_size");
        assert_eq!(Geometry::checked(1, 64).unwrap_err().0, "blocks");
        assert_eq!(Geometry::checked(0, 64).unwrap_err().0, "blocks");
        assert_eq!(Geometry::checked(1 << 32, 1 << 20).unwrap_err().0, "blocks");
        let g = Geometry::checked(10, 64).unwrap();
        assert_eq!(g.max_record_blocks(), 5);
        assert_eq!(g.max_content(), 5 * 56);
        assert_eq!(g.blocks_for(56), 1);
        assert_eq!(g.blocks_for(57), 2);
        assert_eq!(g.blocks_for(0), 1);
        assert_eq!(g.file_len(), 4096 + 640);
        assert_eq!(g.with_lanes(3).unwrap_err().0, "lanes");
        assert_eq!(g.with_lanes(32).unwrap_err().0, "lanes");
        assert_eq!(g.with_lanes(4).unwrap_err().0, "lanes"); // 10 blocks in 4 lanes
        let g = Geometry::checked(16, 64).unwrap();
        assert_eq!(g.with_lanes(16).unwrap_err().0, "lanes"); // lanes of one block
        let laned = g.with_lanes(8).unwrap();
        assert_eq!(laned.lane_blocks(), 2);
        assert_eq!(laned.max_record_blocks(), 1);
        assert_eq!(laned.file_len(), 8192 + 16 * 64);
    }

    #[test]
    fn header_crc_covers_every_static_field() {
        let h = StaticHeader::new(Geometry::checked(16, 64).unwrap(), 7);
        let bytes = h.as_bytes().to_vec();
        for i in 0..60 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1;
            let d = StaticHeader::read_from_bytes(&damaged).unwrap();
            assert_ne!(d.compute_crc(), h.crc, "byte {i}");
        }
    }

    #[test]
    fn record_checksum_binds_the_id() {
        let h = RecordHeader {
            time_ns: 5,
            len: 3,
            blocks: 1,
            ..Default::default()
        };
        assert_ne!(
            h.checksum(1, b"t", b"abc"),
            h.checksum(1 + 16, b"t", b"abc")
        );
        assert_ne!(h.checksum(1, b"t", b"abc"), h.checksum(1, b"t", b"abd"));
        let mut h2 = h;
        h2.crc = 99;
        h2.commit = 12;
        assert_eq!(h.checksum(1, b"t", b"abc"), h2.checksum(1, b"t", b"abc"));
        // The reader's image of a copy: content after the claim word, crc field zero, padded
        // to 8, then id and time.
        let mut image = [&h2.as_bytes()[8..], b"t", b"abc", &[0; 4]].concat();
        image[20..24].fill(0);
        image.extend_from_slice(&1u64.to_le_bytes());
        image.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(
            RecordHeader::checksum_image(&image[8..]),
            h.checksum(1, b"t", b"abc")
        );
        assert_ne!(
            h.checksum(1, b"t", b"abc"),
            RecordHeader { time_ns: 6, ..h }.checksum(1, b"t", b"abc")
        );
    }
}
