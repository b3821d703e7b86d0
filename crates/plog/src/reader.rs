//! Reading records back: validation of one slot, and the reader that walks the ring.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use zerocopy::FromBytes;

use crate::claim::Claim;
use crate::format::{
    CLAIM_LEN, KIND_RECORD, KIND_STRUCTURED, POSITION_LIMIT, RECORD_HEADER_LEN, RecordHeader,
    padded,
};
use crate::log::LogState;
use crate::protocol::LapCheck;
use crate::record::RecordKind;
use crate::truncation::LengthCheck;
use crate::{Error, Filter, Level, RecordRef, Result};

/// The most records one [`LogState::read_batch`] copies before it validates them.
pub(crate) const BATCH_RECORDS: usize = 32;
/// The most bytes one batch copies (past the record that crosses it).
pub(crate) const BATCH_BYTES: usize = 16 << 10;

/// Records whose content is longer than this are checked against their crc straight from the
/// ring, through a small buffer, before a buffer of their size is allocated for the copy: a
/// damaged header can claim a span of gigabytes, and only a record whose bytes check earns it.
const CHECK_BEFORE_COPY: usize = 64 << 10;

/// A reader's buffer of copied records: a `Vec<u8>` whose bytes are not cleared between uses,
/// so that growing it again after [`Arena::clear`] costs no zero fill (it did, at every batch, a
/// few percent of a follower's time). Bytes it grows over hold what an earlier copy left there
/// (or zeros): every caller overwrites what it grows over before reading it.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    buf: Vec<u8>,
    len: usize,
}

impl Arena {
    /// Makes the arena `len` bytes long.
    #[inline]
    pub(crate) fn extend_to(&mut self, len: usize) {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.len = len;
    }

    /// Shortens the arena to `len` bytes (no-op if it is shorter).
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Empties the arena, keeping its bytes for the next use.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }
}

impl std::ops::Deref for Arena {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Arena {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

/// The most blocks [`LogState::copy_run`] copies in one pass.
const RUN_BLOCKS: usize = BATCH_RECORDS;

/// A record (or padding) copied out of the ring, its header and crc checked, not yet known to
/// be untorn.
#[derive(Debug)]
pub(crate) struct Copied {
    pos: u64,
    /// The claim word of its first block when the copy began.
    commit: u64,
    header: RecordHeader,
    blocks: u64,
    /// Padding (a claim word alone), or a record whose content was copied to the arena.
    pad: bool,
    /// Where the record's content (its bytes after the first claim word, zero-padded to 8)
    /// starts in the arena it was copied to.
    start: usize,
    crc_ok: bool,
}

impl Copied {
    /// What a copy that passed [`LogState::verdict`] holds.
    #[inline(always)]
    fn slot(&self) -> Slot {
        if self.pad {
            return Slot::Pad(1);
        }
        let header = &self.header;
        let Some(level) = Level::from_code(header.level) else {
            return Slot::Invalid;
        };
        let found = Found {
            id: self.pos,
            time: header.time_ns,
            level,
            pid: header.pid,
            kind: header.kind,
            tag_len: header.tag_len,
            len: header.len,
            tag_at: self.start + HEADER_CONTENT,
        };
        Slot::Record(found, self.blocks)
    }
}

/// A valid record found in the ring, its bytes in the arena of the reader that copied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) id: u64,
    pub(crate) time: u64,
    pub(crate) level: Level,
    pub(crate) pid: u32,
    /// The header's kind byte: a kind this build does not know is a valid record that readers
    /// skip (docs/plog-format.md, "Versions").
    pub(crate) kind: u8,
    /// Length of the tag.
    pub(crate) tag_len: u8,
    /// Length of the payload, which follows the tag.
    pub(crate) len: u32,
    /// Arena offset of the tag.
    pub(crate) tag_at: usize,
}

impl Found {
    /// The record, borrowed from `arena` (the one it was copied to).
    #[inline(always)]
    pub(crate) fn view<'a>(&self, arena: &'a [u8]) -> RecordRef<'a> {
        let tag_end = self.tag_at + usize::from(self.tag_len);
        let end = tag_end + self.len as usize;
        let (tag, payload) = match arena.get(self.tag_at..end) {
            Some(bytes) => bytes.split_at(usize::from(self.tag_len)),
            None => (&[][..], &[][..]),
        };
        RecordRef {
            id: self.id,
            time: self.time,
            level: self.level,
            pid: self.pid,
            kind: kind_of(self.kind).unwrap_or_default(),
            tag,
            payload,
        }
    }
}

/// The kinds this build reads; `None` for a kind a later format adds.
fn kind_of(code: u8) -> Option<RecordKind> {
    match code {
        KIND_RECORD => Some(RecordKind::Plain),
        KIND_STRUCTURED => Some(RecordKind::Structured),
        _ => None,
    }
}

/// What the block at one position holds.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A complete, valid record of this many blocks (its bytes in the reader's arena).
    Record(Found, u64),
    /// Padding of this many blocks, written where a record would have straddled the ring's end
    /// or where a writer gave its reservation back.
    Pad(u64),
    /// No valid record starts here: never written, written in an earlier lap, in flight, left
    /// half-written by a crash, damaged, or inside another record.
    Invalid,
    /// Writers have lapped this position while it was read: the copy may be torn.
    Torn,
}

/// Content bytes of a record header (after its claim word).
const HEADER_CONTENT: usize = RECORD_HEADER_LEN - CLAIM_LEN;

impl LogState {
    /// The counter after a copy ([`LapCheck::counter_after_copy`]: an acquire fence, then the
    /// counter; docs/plog-format.md, "Reading").
    #[inline]
    fn counter_after_copy(&self) -> u64 {
        self.map
            .load_word_u64(self.counter_off())
            .map_or(0, |counter| LapCheck::counter_after_copy(&counter))
            .min(POSITION_LIMIT)
    }

    /// Whether writers have reserved past `pos + blocks` by the end of a copy of `pos`, so the
    /// slot may hold bytes of a later lap ([`LapCheck`]).
    fn lapped(&self, pos: u64) -> bool {
        LapCheck::lapped(self.counter_after_copy(), pos, self.blocks)
    }

    fn invalid_or_torn(&self, pos: u64) -> Slot {
        if self.lapped(pos) {
            Slot::Torn
        } else {
            Slot::Invalid
        }
    }

    /// Reads and validates the record that should start at `pos`. Every field is checked
    /// before it is used, so any byte pattern gives `Invalid`, never a panic or a read out of
    /// bounds.
    pub(crate) fn read_slot(&self, pos: u64, arena: &mut Arena) -> Slot {
        let Some(copy) = self.copy_slot(pos, arena) else {
            return self.invalid_or_torn(pos);
        };
        if self.lapped(pos) {
            return Slot::Torn;
        }
        self.checked_slot(copy, arena)
    }

    /// Whether a valid record or padding starts at `pos` (what [`Self::read_slot`] returns,
    /// without keeping the copy).
    pub(crate) fn probe_slot(&self, pos: u64, arena: &mut Arena) -> Slot {
        let mark = arena.len();
        let slot = self.read_slot(pos, arena);
        arena.truncate(mark);
        slot
    }

    /// Copies the record or padding that should start at `pos` and checks its header, its
    /// later blocks' claim words and its crc, without the lap check: `None` when the copy shows
    /// no record there (yet). The copy is trusted only after an acquire fence and a load of the
    /// counter that shows the slot was not lapped ([`Self::lapped`]), then [`Self::checked_slot`].
    ///
    /// Work is bounded by the record's blocks, and each is examined only after the claim words
    /// of the blocks before it named this record: a crafted ring of start claims costs one
    /// load per candidate, not a copy of the span each claims.
    fn copy_slot(&self, pos: u64, arena: &mut Arena) -> Option<Copied> {
        crate::testing::examined(1);
        let off = self.block_offset(pos);
        let commit = LapCheck::open(&self.map.load_word_u64(off).ok()?);
        match Claim::decode(commit) {
            Claim::Start(at) if at == pos => {}
            Claim::Pad(at) if at == pos => {
                return Some(Copied {
                    pos,
                    commit,
                    header: RecordHeader::default(),
                    blocks: 1,
                    pad: true,
                    start: arena.len(),
                    crc_ok: true,
                });
            }
            _ => return None,
        }
        // The header's content bytes go straight to the arena, where the record's copy starts:
        // read once, checked there, and the rest of the content copied after them only when
        // the header and the later blocks' claim words name this record. The copy is laid out
        // as the writer's checksum image (content padded to 8, then id and time), so that the
        // crc runs over it in one pass (its definition's order, see format.rs).
        let start = arena.len();
        arena.extend_to(start + HEADER_CONTENT);
        let copied = self.gather(pos, 0, &mut arena[start..]).is_ok();
        let mut head = [0u8; RECORD_HEADER_LEN];
        head[..CLAIM_LEN].copy_from_slice(&commit.to_le_bytes());
        head[CLAIM_LEN..].copy_from_slice(&arena[start..]);
        let checked = copied
            .then(|| RecordHeader::read_from_bytes(&head).ok())
            .flatten()
            .and_then(|header| Some((header, self.checked_span(pos, &header)?)))
            .filter(|&(_, blocks)| self.continues(pos, blocks));
        let Some((header, blocks)) = checked else {
            arena.truncate(start);
            return None;
        };
        let tag_len = usize::from(header.tag_len);
        // checked_span bounded tag and payload by the record's blocks, which lie in the ring.
        let content_len = HEADER_CONTENT + tag_len + header.len as usize;
        let crc_ok = 'copied: {
            if content_len > CHECK_BEFORE_COPY && !self.crc_in_place(pos, content_len, header.crc) {
                // Failed in place: not worth a buffer of the size its fields claim.
                arena.truncate(start);
                break 'copied false;
            }
            let end = padded(content_len);
            arena.extend_to(start + end + 16);
            let image = &mut arena[start..];
            if self
                .gather(pos, HEADER_CONTENT, &mut image[HEADER_CONTENT..content_len])
                .is_err()
            {
                arena.truncate(start);
                return None;
            }
            // The arena's bytes are not cleared between uses: `image_in_place` zeroes the
            // padding and the crc field (the header holds the crc) and appends the id and the
            // time, in the 16 bytes the arena was extended by.
            match image_in_place(image, content_len, end, pos, image.len()) {
                Some(len) => RecordHeader::checksum_image(&image[8..8 + len]) == header.crc,
                None => false,
            }
        };
        Some(Copied {
            pos,
            commit,
            header,
            blocks,
            pad: false,
            start,
            crc_ok,
        })
    }

    /// Whether the claim word of each block after the first of a `blocks`-block record at `pos`
    /// is `Cont` of its position: checked before any of the record's content past its header is
    /// copied.
    fn continues(&self, pos: u64, blocks: u64) -> bool {
        (1..blocks).all(|i| {
            crate::testing::examined(1);
            self.map
                .load_word_u64(self.block_offset(pos + i))
                .is_ok_and(|word| Claim::decode(LapCheck::open(&word)) == Claim::Cont(pos + i))
        })
    }

    /// Copies content bytes `at..at + out.len()` of the record at `pos` into `out`.
    fn gather(&self, pos: u64, mut at: usize, mut out: &mut [u8]) -> Result<()> {
        while !out.is_empty() {
            let room = self.room_at(at);
            let (now, rest) = out.split_at_mut(room.min(out.len()));
            crate::testing::examined(1);
            self.map.read_at(self.content_offset(pos, at), now)?;
            at += now.len();
            out = rest;
        }
        Ok(())
    }

    /// Whether the record at `pos`, of `content_len` content bytes, matches `crc`, computed
    /// through a 4 KiB buffer (no allocation sized by the record's fields).
    fn crc_in_place(&self, pos: u64, content_len: usize, crc: u32) -> bool {
        let mut buf = [0u8; 4096];
        let mut first = [0u8; HEADER_CONTENT];
        if self.gather(pos, 0, &mut first).is_err() {
            return false;
        }
        let mut sum = crc32c::crc32c(&first[8..20]);
        sum = crc32c::crc32c_append(sum, &[0; 4]);
        sum = crc32c::crc32c_append(sum, &first[24..]);
        let mut at = HEADER_CONTENT;
        while at < content_len {
            let n = buf.len().min(content_len - at);
            if self.gather(pos, at, &mut buf[..n]).is_err() {
                return false;
            }
            sum = crc32c::crc32c_append(sum, &buf[..n]);
            at += n;
        }
        let pad = padded(content_len) - content_len;
        sum = crc32c::crc32c_append(sum, &[0u8; 8][..pad]);
        sum = crc32c::crc32c_append(sum, &pos.to_le_bytes());
        crc32c::crc32c_append(sum, &first[..8]) == crc
    }

    /// Turns a copy that passed the lap check (after the fence) into a record or padding:
    /// `Torn` if its claim word changed since, `Invalid` if its crc failed.
    fn checked_slot(&self, copy: Copied, arena: &[u8]) -> Slot {
        match self.verdict(&copy, arena) {
            Some(bad) => bad,
            None => copy.slot(),
        }
    }

    /// Why a copy that passed the lap check (after the fence) is no record or padding: `Torn`
    /// if its claim word changed since, `Invalid` if its crc or its level failed or its bytes
    /// are not all in `arena`; `None` when it is good ([`Copied::slot`] then says what it is).
    #[inline]
    fn verdict(&self, copy: &Copied, arena: &[u8]) -> Option<Slot> {
        let off = self.block_offset(copy.pos);
        let unchanged = self
            .map
            .load_word_u64(off)
            .is_ok_and(|claim| LapCheck::unchanged(&claim, copy.commit));
        self.verdict_with(copy, arena, unchanged)
    }

    /// [`Self::verdict`], given whether the copy's claim word still holds what it held when the
    /// copy began (loaded after the fence).
    #[inline(always)]
    fn verdict_with(&self, copy: &Copied, arena: &[u8], unchanged: bool) -> Option<Slot> {
        if !unchanged {
            return Some(Slot::Torn);
        }
        if copy.pad {
            return None;
        }
        let header = &copy.header;
        let end = copy.start + HEADER_CONTENT + usize::from(header.tag_len) + header.len as usize;
        if !copy.crc_ok || Level::from_code(header.level).is_none() || arena.len() < end {
            return Some(Slot::Invalid);
        }
        None
    }

    /// Copies up to `limit` consecutive records (and padding) from `pos` on, stopping
    /// before `end`, before a block that starts none, and once [`BATCH_BYTES`] are copied; then
    /// validates them all with one acquire fence and one load of the counter. The records a
    /// writer may have overwritten (`counter > pos + blocks`) are a prefix: they are dropped,
    /// and the returned position is the first kept one (`end` if none was kept). Validation
    /// stops at the first kept copy that fails [`Self::checked_slot`]; the caller reads that slot
    /// again alone. One counter load per batch rather than per record keeps a fast reader from
    /// taking the counter's cache line from the writers at every record.
    ///
    /// Returns the first kept position and the range of `copies` that validated, in order.
    pub(crate) fn read_batch(
        &self,
        pos: u64,
        end: u64,
        limit: usize,
        arena: &mut Arena,
        copies: &mut Vec<Copied>,
    ) -> (u64, Range<usize>) {
        self.copy_batch(pos, end, limit, arena, copies);
        self.validate_batch(pos, copies, arena)
    }

    /// The copying half of [`Self::read_batch`]: into `copies` (cleared first, reused so that a
    /// batch allocates nothing once the reader has warmed up).
    fn copy_batch(
        &self,
        pos: u64,
        end: u64,
        limit: usize,
        arena: &mut Arena,
        copies: &mut Vec<Copied>,
    ) {
        copies.clear();
        let (mut at, first) = (pos, arena.len());
        let limit = limit.max(1);
        while at < end && copies.len() < limit && arena.len() - first < BATCH_BYTES {
            let run = self.copy_run(at, end, limit - copies.len(), arena, copies);
            if run > 0 {
                at += run;
                continue;
            }
            let Some(copy) = self.copy_slot(at, arena) else {
                break;
            };
            at += copy.blocks;
            copies.push(copy);
        }
    }

    /// Copies a run of one-block records and padding from `pos` on (at most `max` of them,
    /// [`RUN_BLOCKS`], and stopping before `end` and the ring's end) in one pass: the claim words
    /// first, each loaded with acquire ordering (so every byte copied after them is at least
    /// what its writer published, as in [`Self::copy_slot`]), then the blocks in one copy, then
    /// each record's header and crc checked in the copy. Returns the blocks copied; 0 when the
    /// block at `pos` is neither padding nor a one-block record with a consistent header (the
    /// caller then takes [`Self::copy_slot`], which reads any record). Each block is examined
    /// once.
    fn copy_run(
        &self,
        pos: u64,
        end: u64,
        max: usize,
        arena: &mut Arena,
        copies: &mut Vec<Copied>,
    ) -> u64 {
        let to_ring_end = self.blocks - self.slot_of(pos);
        let n = (end - pos).min(to_ring_end).min(max.min(RUN_BLOCKS) as u64) as usize;
        let block = self.geometry.block_size as usize;
        // The run's blocks are consecutive in the ring (it stops at the ring's end): one
        // checked span for their claim words and their copy.
        let Ok(span) = self.map.read_span(self.block_offset(pos), n * block) else {
            return 0;
        };
        let mut claims = [0u64; RUN_BLOCKS];
        let mut m = 0;
        while m < n {
            let at = pos + m as u64;
            let Some(word) = span.word_u64(m * block) else {
                break;
            };
            let word = LapCheck::open(&word);
            if word != Claim::Start(at).encode() && word != Claim::Pad(at).encode() {
                break;
            }
            claims[m] = word;
            m += 1;
        }
        crate::testing::examined(m as u64);
        if m == 0 {
            return 0;
        }
        let base = arena.len();
        arena.extend_to(base + m * block);
        if !span.read_at(0, &mut arena[base..]) {
            arena.truncate(base);
            return 0;
        }
        let room = self.content_per_block;
        // The checksums are computed after the loop, one chain each, back to back: the chains
        // of different records do not depend on each other, so the processor overlaps them
        // (`pmap::crc32c_append_chained`). Each entry: the copy's index and its image's range.
        let mut pending = [(0usize, 0usize, 0usize); RUN_BLOCKS];
        let mut pending_len = 0;
        let mut kept = m;
        for (i, &commit) in claims[..m].iter().enumerate() {
            let at = pos + i as u64;
            let b = base + i * block;
            if commit == Claim::Pad(at).encode() {
                copies.push(Copied {
                    pos: at,
                    commit,
                    header: RecordHeader::default(),
                    blocks: 1,
                    pad: true,
                    start: b,
                    crc_ok: true,
                });
                continue;
            }
            // The claim word as loaded (acquire) stands for the one in the copy, which the
            // header's parse does not read: the header's content bytes follow it.
            let header = arena
                .get(b..b + RECORD_HEADER_LEN)
                .and_then(|bytes| RecordHeader::read_from_bytes(bytes).ok());
            // What `checked_span` checks, for one block without its division: one block, a
            // known level, content that fits the block (so needs exactly one), inside the ring.
            let content_len = header.map_or(usize::MAX, |h| {
                HEADER_CONTENT + usize::from(h.tag_len) + h.len as usize
            });
            let (Some(header), Some(image)) = (
                header.filter(|h| {
                    h.blocks == 1 && Level::from_code(h.level).is_some() && content_len <= room
                }),
                arena.get_mut(b + CLAIM_LEN..b + block),
            ) else {
                // Not a one-block record with a consistent header: the caller reads it alone.
                kept = i;
                break;
            };
            debug_assert_eq!(self.checked_span(at, &header), Some(1));
            // One block: the content lies whole after the claim word, within `room` bytes.
            let padded_len = padded(content_len);
            let crc_ok = match image_in_place(image, content_len, padded_len, at, room) {
                Some(len) => {
                    pending[pending_len] = (copies.len(), b + CLAIM_LEN + 8, len);
                    pending_len += 1;
                    false
                }
                None => {
                    let mut tail = [0u8; 16];
                    tail[..8].copy_from_slice(&at.to_le_bytes());
                    tail[8..].copy_from_slice(&image[..8]);
                    let crc = RecordHeader::checksum_image(&image[8..padded_len]);
                    crc32c::crc32c_append(crc, &tail) == header.crc
                }
            };
            copies.push(Copied {
                pos: at,
                commit,
                header,
                blocks: 1,
                pad: false,
                start: b + CLAIM_LEN,
                crc_ok,
            });
        }
        for &(index, start, len) in &pending[..pending_len] {
            let crc = arena
                .get(start..start + len)
                .map(|image| pmap::crc32c_append_chained(0, image));
            if let Some(copy) = copies.get_mut(index) {
                copy.crc_ok = crc == Some(copy.header.crc);
            }
        }
        if kept < m {
            arena.truncate(base + kept * block);
            return kept as u64;
        }
        m as u64
    }

    /// The validating half of [`Self::read_batch`]: `copies` were made from `pos` on.
    /// Returns the first kept position and the range of `copies` that validated.
    fn validate_batch(&self, pos: u64, copies: &[Copied], arena: &[u8]) -> (u64, Range<usize>) {
        let counter = self.counter_after_copy();
        // Positions increase along the batch, so the lapped copies are a prefix.
        let kept = copies.partition_point(|c| LapCheck::lapped(counter, c.pos, self.blocks));
        let copied_to = copies.last().map_or(pos, |c| c.pos + c.blocks);
        let first_kept = copies.get(kept).map_or(copied_to, |c| c.pos);
        // The kept copies' claim words up to the ring's end through one checked span (a batch
        // that wrapped reads the rest through the map).
        let block = self.geometry.block_size as usize;
        let in_span = (copied_to - first_kept).min(self.blocks - self.slot_of(first_kept));
        let span = self
            .map
            .read_span(self.block_offset(first_kept), in_span as usize * block)
            .ok();
        let valid = copies[kept..]
            .iter()
            .position(|copy| {
                let index = copy.pos - first_kept;
                let verdict = match &span {
                    Some(span) if index < in_span => {
                        let unchanged = span
                            .word_u64(index as usize * block)
                            .is_some_and(|claim| LapCheck::unchanged(&claim, copy.commit));
                        self.verdict_with(copy, arena, unchanged)
                    }
                    _ => self.verdict(copy, arena),
                };
                verdict.is_some()
            })
            .map_or(copies.len(), |bad| kept + bad);
        (first_kept, kept..valid)
    }
    /// The number of blocks the record claims, if its header is consistent: a known level
    /// (any kind: one this build does not know is checked like the others and skipped), a span of 1 to half the ring that does not cross the ring's end, and content that
    /// needs exactly that many blocks.
    fn checked_span(&self, pos: u64, header: &RecordHeader) -> Option<u64> {
        let blocks = u64::from(header.blocks);
        let slot = self.slot_of(pos);
        if blocks == 0 || blocks > self.geometry.max_record_blocks() || slot + blocks > self.blocks
        {
            return None;
        }
        Level::from_code(header.level)?;
        let content = HEADER_CONTENT as u64 + u64::from(header.tag_len) + u64::from(header.len);
        (self.geometry.blocks_for(content) == blocks).then_some(blocks)
    }
}

/// Makes a record's copied content, `image` (`room` bytes: the content, `content_len` bytes,
/// then free room; a one-block record's block after its claim word, or a record's place in
/// the arena), the writer's checksum image in place: the crc field and the padding to
/// `padded_len` zeroed, then the id `at` and the time after the padded content. Returns the
/// length of the image from its byte 8 (what the crc covers), or `None` when there are not
/// the 16 bytes of free room for the id and the time (then only the zeroing is done).
#[inline(always)]
fn image_in_place(
    image: &mut [u8],
    content_len: usize,
    padded_len: usize,
    at: u64,
    room: usize,
) -> Option<usize> {
    image[20..24].fill(0);
    // The padding (0..7 bytes) zeroed with one masked word store rather than a call to
    // memset: the last word of the padded content keeps only its content bytes.
    let last = padded_len - 8;
    let keep = content_len - last;
    if let Some(word) = image.get_mut(last..padded_len) {
        let mut value = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        if keep < 8 {
            value &= (1u64 << (keep * 8)) - 1;
        }
        word.copy_from_slice(&value.to_le_bytes());
    }
    if padded_len + 16 > room {
        return None;
    }
    image[padded_len..padded_len + 8].copy_from_slice(&at.to_le_bytes());
    image.copy_within(..8, padded_len + 8);
    Some(padded_len + 8)
}

/// What one step of a reader found.
pub(crate) enum Step {
    /// The next record passing the filter: the reader's [`Reader::current`], its bytes in the
    /// reader's arena.
    Record,
    /// The reader is at the newest position: nothing more has been reserved.
    End,
    /// Blocks were reserved but no valid record starts at the reader's position, and none after
    /// it yet: a record in flight (or a dead writer's hole at the end).
    Pending,
    /// The step did its bounded share of work (skipping lapped blocks) without a record to
    /// return: call again. Lets a follower check its deadline between steps.
    Again,
    /// No valid record at `at`, but one at `next_valid`: a hole (dead writer, damage), or a
    /// record still in flight behind later ones.
    Hole {
        /// The reader's position.
        at: u64,
        /// The next position holding a valid record or padding.
        next_valid: u64,
        /// `at` is the oldest position in the ring, or where a lapped reader resumed: likely inside
        /// a record whose head was overwritten or skipped, and never a record in flight (its
        /// writer would be a lap late): skipped at once, without a grace.
        at_oldest: bool,
    },
    /// Another program cut the file short (to this many bytes): the reader reads no more.
    Truncated(u64),
}

/// The reader of one lane (of the only lane of a log of one lane): [`Reader`]'s work, on positions
/// of that lane. What its public methods say of a `Reader` they say of this lane.
#[derive(Debug)]
pub(crate) struct LaneReader {
    pub(crate) inner: Arc<LogState>,
    pos: u64,
    counting: bool,
    lost: u64,
    /// The part of `lost` skipped as holes (no valid record started there), not to laps.
    invalid: u64,
    padding: u64,
    /// Blocks of valid records of a kind this build does not read, stepped over.
    unknown_kinds: u64,
    filter: Filter,
    /// The copies in `copies`, from `pos` on, validated and not yet returned.
    ready: Range<usize>,
    /// How many records one validation covers: 1 for a plain reader, so that a record
    /// returned by `next` was intact at that call (records validated ahead and returned by a
    /// later call might have been overwritten between the calls, which a caller interleaving
    /// writes and reads would notice); [`BATCH_RECORDS`] for followers and dumps, which
    /// consume what they validate at once.
    batch_limit: usize,
    /// `(pos, to)`: when the reader last looked ahead from `pos`, no block in `pos + 1..to`
    /// started a valid record. The next look from the same `pos` starts at `to`, so that a
    /// reader waiting at a hole (or at a counter far ahead of every record) does not examine
    /// the same blocks at every call.
    scanned: Option<(u64, u64)>,
    /// The bytes of the records in `batch` (and of the one returned last): reused, so that
    /// reading allocates nothing per record.
    arena: Arena,
    /// Where this reader last resumed after being lapped: a hole there is the middle of a
    /// record it skipped into, not a record in flight.
    landed: Option<u64>,
    /// The copies of the batch being validated: reused.
    copies: Vec<Copied>,
    /// The record the last [`Step::Record`] returned, its bytes in `arena`.
    current: Option<Found>,
    /// When this reader next looks at the file's length (another program may truncate it).
    length: LengthCheck,
}

/// Rounds lost to laps in one [`Reader::step`] (each a bounded batch) before it returns
/// [`Step::Again`].
const STEP_ROUNDS: usize = 4;
/// [`Step::Again`]s one `Reader::next` takes before it returns `None` (writers lapping the
/// reader faster than it reads): the bound on the work of one call.
const NEXT_ROUNDS: usize = 16;

impl LaneReader {
    pub(crate) fn new(inner: Arc<LogState>, from: Option<u64>) -> LaneReader {
        // A file already cut short may have lost the counter too: the reader starts at 0 and
        // its first step reports the truncation.
        let mut length = LengthCheck::new();
        let next = match length.before_read(&inner) {
            Ok(()) => inner.next(Ordering::Acquire),
            Err(_) => 0,
        };
        // Its first read may come much later.
        length.look_next_time();
        let oldest = next.saturating_sub(inner.blocks);
        let (pos, lost) = match from {
            // Ids asked for but already overwritten are lost; blocks skipped to reach the
            // first record at or after `id` are not.
            Some(id) => (id.clamp(oldest, next), oldest.saturating_sub(id)),
            None => (oldest, 0),
        };
        // Position 0 and the end are record boundaries: holes after them count as lost.
        let counting = pos == 0 || pos == next;
        LaneReader {
            inner,
            pos,
            counting,
            lost,
            invalid: 0,
            padding: 0,
            unknown_kinds: 0,
            filter: Filter::all(),
            ready: 0..0,
            batch_limit: 1,
            scanned: None,
            arena: Arena::default(),
            landed: None,
            copies: Vec::new(),
            current: None,
            length,
        }
    }

    /// Validates up to [`BATCH_RECORDS`] records with one load of the counter (see
    /// [`LogState::read_batch`]): for readers that return what they read at once.
    /// Sets how many records one validation covers; returns the limit before.
    pub(crate) fn set_batch_limit(&mut self, limit: usize) -> usize {
        std::mem::replace(&mut self.batch_limit, limit)
    }

    pub(crate) fn batched(mut self) -> LaneReader {
        self.batch_limit = BATCH_RECORDS;
        self
    }

    /// Returns only records that pass `filter`.
    pub(crate) fn with_filter(mut self, filter: Filter) -> LaneReader {
        self.filter = filter;
        self
    }

    /// The position (id) this reader looks at next: save it to resume later.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Blocks that were overwritten, torn, or invalid after this reader started and before it
    /// reached them (for [`Log::reader_from`], also the ids asked for that were already
    /// overwritten). Ids are block positions, so this is exact in ids; in records it is an
    /// upper bound, exact when every record takes one block. Padding is not counted, nor are
    /// invalid blocks skipped to find the first record when the reader started inside the ring
    /// (it may start inside a record whose head was overwritten); laps always are.
    pub(crate) fn lost(&self) -> u64 {
        self.lost
    }

    /// The part of [`Self::lost`] that no writer lapped: blocks this reader skipped because no
    /// valid record started there (damaged, left half-written by a writer that died, or never
    /// published within a follower's [`crate::FollowOptions::hole_grace`]). Counted as
    /// [`Self::lost`] counts holes: not before the first record of a reader started inside the
    /// ring.
    pub(crate) fn invalid(&self) -> u64 {
        self.invalid
    }

    /// Blocks of padding this reader stepped over (written where a record would have crossed
    /// the ring's end). With [`Self::lost`], [`Self::unknown_kinds`] and the blocks of the
    /// records read, it accounts for every id the reader advanced over.
    pub(crate) fn padding(&self) -> u64 {
        self.padding
    }

    /// Blocks of valid records of a kind this build does not read (written by a later
    /// format's writer), stepped over: not lost, and not returned.
    pub(crate) fn unknown_kinds(&self) -> u64 {
        self.unknown_kinds
    }

    /// Moves past a hole to the record at `to`, counting the skipped blocks as lost (unless
    /// the reader has not yet found its first record: it may have started inside one).
    pub(crate) fn skip_hole(&mut self, to: u64) {
        if self.counting {
            let skipped = to.saturating_sub(self.pos);
            self.lost += skipped;
            self.invalid += skipped;
        }
        self.pos = self.pos.max(to);
    }

    /// Makes the next step look at the file's length before it reads: the caller is about to
    /// wait, and the file may be cut short meanwhile.
    pub(crate) fn look_next_time(&mut self) {
        self.length.look_next_time();
    }

    /// [`Error::Truncated`] for a file found `len` bytes long.
    pub(crate) fn truncated(&self, len: u64) -> Error {
        self.inner.truncated(len)
    }

    /// Moves past blocks that writers overwrote before this reader reached them: always lost.
    fn skip_lapped(&mut self, to: u64) {
        self.lost += to.saturating_sub(self.pos);
        self.pos = self.pos.max(to);
    }

    /// One step: the next record, or why there is none. Rounds that move the reader forward
    /// over records and padding are not limited (a filter or a run of padding costs what it
    /// skips, at most the ring); rounds lost to writers lapping the reader (copies dropped as
    /// lapped, a torn slot) are, to [`STEP_ROUNDS`], after which the step returns
    /// [`Step::Again`].
    #[inline(always)]
    pub(crate) fn step(&mut self) -> Step {
        if self.step_ready() {
            return Step::Record;
        }
        self.step_batch()
    }

    /// The part of [`Self::step`] that returns a record already validated in the batch (most
    /// steps of a follower or a dump): small enough to be inlined into the callers' loops,
    /// where the rest of a step, which reads the ring, is not. True when a record became
    /// [`Self::current`].
    #[inline(always)]
    pub(crate) fn step_ready(&mut self) -> bool {
        while let Some(i) = self.ready.next() {
            let Some(copy) = self.copies.get(i) else {
                continue;
            };
            debug_assert_eq!(copy.pos, self.pos);
            let slot = copy.slot();
            // read_batch keeps only records and padding.
            if self.advance_past(slot) {
                return true;
            }
        }
        false
    }

    /// The rest of [`Self::step`]: the batch is used up; read the next one.
    #[inline(never)]
    fn step_batch(&mut self) -> Step {
        let mut lapped_rounds = 0;
        loop {
            if self.step_ready() {
                return Step::Record;
            }
            if lapped_rounds >= STEP_ROUNDS {
                return Step::Again;
            }
            if let Err(len) = self.length.before_read(&self.inner) {
                return Step::Truncated(len);
            }
            let next = self.inner.next(Ordering::Acquire);
            if self.pos >= next {
                return Step::End;
            }
            let oldest = next.saturating_sub(self.inner.blocks);
            if self.pos < oldest {
                // Lapped: resume a quarter of the ring ahead of the oldest position, not at it.
                // The oldest block is the one the writers overwrite next, so a reader resuming
                // there is lapped again at once; a quarter ring of headroom lets a reader that
                // reads at least as fast as the writers write catch up, and the blocks it skips
                // are counted lost like the rest of the lap.
                let resume = (oldest + self.inner.blocks / 4).min(next);
                self.skip_lapped(resume);
                self.landed = Some(resume);
                self.scanned = None;
            }
            // The batch is empty: the arena's bytes belong to no record any more.
            self.arena.clear();
            let (kept_from, ready) = self.inner.read_batch(
                self.pos,
                next,
                self.batch_limit,
                &mut self.arena,
                &mut self.copies,
            );
            self.ready = ready;
            if kept_from > self.pos || !self.ready.is_empty() {
                if self.ready.is_empty() {
                    lapped_rounds += 1;
                }
                // Lapped copies were dropped: those blocks are lost.
                self.skip_lapped(kept_from);
                continue;
            }
            // No record could be copied at the reader's position: look closer, alone.
            match self.inner.read_slot(self.pos, &mut self.arena) {
                slot @ (Slot::Record(..) | Slot::Pad(_)) => {
                    if self.advance_past(slot) {
                        return Step::Record;
                    }
                }
                Slot::Torn => lapped_rounds += 1,
                Slot::Invalid => match self.find_valid_after(next) {
                    Some(Some(next_valid)) => {
                        return Step::Hole {
                            at: self.pos,
                            next_valid,
                            at_oldest: self.pos == oldest || self.landed == Some(self.pos),
                        };
                    }
                    Some(None) => return Step::Pending,
                    // Lapped while looking: start over.
                    None => lapped_rounds += 1,
                },
            }
        }
    }

    /// Moves past a record or padding read at the reader's position; true if it is a record
    /// the filter accepts, which becomes [`Self::current`]. Invalid and torn slots leave the
    /// position alone.
    #[inline(always)]
    fn advance_past(&mut self, slot: Slot) -> bool {
        match slot {
            Slot::Record(found, blocks) if kind_of(found.kind).is_none() => {
                self.pos += blocks;
                self.unknown_kinds += blocks;
                self.counting = true;
                false
            }
            Slot::Record(found, blocks) => {
                self.pos += blocks;
                self.counting = true;
                let passes = self.filter.is_all() || {
                    let record = found.view(&self.arena);
                    self.filter.accepts_bytes(record.level, record.tag)
                };
                if passes {
                    self.current = Some(found);
                }
                passes
            }
            Slot::Pad(blocks) => {
                self.pos += blocks;
                self.padding += blocks;
                self.counting = true;
                false
            }
            Slot::Invalid | Slot::Torn => false,
        }
    }

    /// The first position after the reader's and before `next` where a valid record or
    /// padding starts; `Some(None)` if there is none, `None` if the reader was lapped meanwhile.
    ///
    /// Each block is examined at most once per look (a candidate start costs its claim words
    /// before any copy, see [`LogState::copy_slot`]), and a look that found nothing is remembered
    /// ([`Reader::scanned`]): the next look from the same position examines only the blocks
    /// reserved since, then, if it finds one, the blocks before it once more (a record there
    /// may have been published meanwhile).
    fn find_valid_after(&mut self, next: u64) -> Option<Option<u64>> {
        let pos = self.pos;
        let resume = match self.scanned {
            Some((at, to)) if at == pos => to.max(pos + 1),
            _ => pos + 1,
        };
        let Some(found) = self.first_valid(resume, next)? else {
            self.scanned = Some((pos, next.max(resume)));
            return Some(None);
        };
        self.scanned = None;
        if resume > pos + 1
            && let Some(earlier) = self.first_valid(pos + 1, resume)?
        {
            return Some(Some(earlier));
        }
        Some(Some(found))
    }

    /// The first position in `from..to` where a valid record or padding starts; `None` if the
    /// reader was lapped meanwhile.
    fn first_valid(&mut self, from: u64, to: u64) -> Option<Option<u64>> {
        let mut at = from;
        while at < to {
            match self.inner.probe_slot(at, &mut self.arena) {
                Slot::Record(..) | Slot::Pad(_) => return Some(Some(at)),
                Slot::Torn => return None,
                Slot::Invalid => at += 1,
            }
        }
        Some(None)
    }

    /// The next record (see [`crate::Reader::try_next_ref`]).
    ///
    /// A reader looks at the file's length (one `fstat`) before its first read, after a call
    /// that returned no record (its caller may wait any time before the next), and every few
    /// hundred reads otherwise (`docs/plog-format.md`, "Limits": a file cut short while this
    /// reader copies records out of it still raises `SIGBUS`).
    ///
    /// # Errors
    /// [`Error::Truncated`] once the file is shorter than the log: then at every call, and
    /// the reader reads the mapping no more.
    pub(crate) fn try_next_ref(&mut self) -> Result<Option<RecordRef<'_>>> {
        for _ in 0..NEXT_ROUNDS {
            match self.step() {
                Step::Record => return Ok(self.current_ref()),
                Step::End | Step::Pending => break,
                Step::Truncated(len) => return Err(self.truncated(len)),
                Step::Again => {}
                Step::Hole { next_valid, .. } => self.skip_hole(next_valid),
            }
        }
        self.length.look_next_time();
        Ok(None)
    }

    /// The record this reader's last step returned, borrowed from its buffer (`None` before
    /// any).
    #[inline(always)]
    pub(crate) fn current_ref(&self) -> Option<RecordRef<'_>> {
        self.current.as_ref().map(|found| {
            let mut record = found.view(&self.arena);
            record.id = self.inner.global_id(found.id);
            record
        })
    }

    /// The time and lane position of the record the last step returned, if any.
    #[inline]
    pub(crate) fn current_time_and_position(&self) -> Option<(u64, u64)> {
        self.current.as_ref().map(|found| (found.time, found.id))
    }
}

/// What [`crate::Log::dump`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpSummary {
    /// Records written.
    pub written: u64,
    /// Blocks lost while dumping (see [`crate::Reader::lost`]).
    pub lost: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogOptions;

    fn ids(copies: &[Copied], ready: Range<usize>, arena: &[u8]) -> Vec<u64> {
        copies[ready]
            .iter()
            .map(|copy| (copy.pos, copy.slot()))
            .map(|(at, slot)| match slot {
                Slot::Record(found, 1) => {
                    let record = found.view(arena);
                    assert_eq!(record.id, at);
                    assert_eq!(record.payload, at.to_le_bytes());
                    at
                }
                other => panic!("unexpected slot at {at}: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_batch_lapped_midway_keeps_only_its_unlapped_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogOptions::new()
            .blocks(16)
            .block_size(64)
            .open(dir.path().join("batch.plog"))
            .unwrap();
        for id in 0..16u64 {
            assert_eq!(log.write(Level::Info, "", id.to_le_bytes()).unwrap(), id);
        }
        let inner = &log.inner;
        let (mut arena, mut copies) = (Arena::default(), Vec::new());
        inner.copy_batch(0, 16, BATCH_RECORDS, &mut arena, &mut copies);
        assert_eq!(copies.len(), 16);
        // Writers overwrite slots 0..3 after the copy and before the validation.
        for id in 16..19u64 {
            assert_eq!(log.write(Level::Info, "", id.to_le_bytes()).unwrap(), id);
        }
        let (first, ready) = inner.validate_batch(0, &copies, &arena);
        assert_eq!(first, 3);
        assert_eq!(ids(&copies, ready, &arena), (3..16).collect::<Vec<_>>());

        // Lapped entirely: nothing kept, and the position moves past every copy.
        let mut arena = Arena::default();
        inner.copy_batch(3, 8, BATCH_RECORDS, &mut arena, &mut copies);
        for id in 19..30u64 {
            log.write(Level::Info, "", id.to_le_bytes()).unwrap();
        }
        let (first, ready) = inner.validate_batch(3, &copies, &arena);
        assert_eq!(first, 8);
        assert!(ready.is_empty());
    }

    #[test]
    fn a_batch_stops_at_a_slot_without_a_record_and_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogOptions::new()
            .blocks(128)
            .block_size(64)
            .open(dir.path().join("limit.plog"))
            .unwrap();
        for id in 0..40u64 {
            log.write(Level::Info, "", id.to_le_bytes()).unwrap();
        }
        let read = |from, to, limit| {
            let (mut arena, mut copies) = (Arena::default(), Vec::new());
            let (first, ready) = log
                .inner
                .read_batch(from, to, limit, &mut arena, &mut copies);
            (first, ids(&copies, ready, &arena))
        };
        assert_eq!(
            read(0, 40, BATCH_RECORDS),
            (0, (0..BATCH_RECORDS as u64).collect::<Vec<_>>())
        );
        // Position 40 is past the counter: reserved by no one, it holds no record.
        assert_eq!(read(38, 41, BATCH_RECORDS), (38, vec![38, 39]));
        assert_eq!(read(5, 40, 1), (5, vec![5]));
    }

    #[test]
    fn a_reader_lapped_between_batches_counts_every_id() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogOptions::new()
            .blocks(64)
            .block_size(64)
            .open(dir.path().join("reader.plog"))
            .unwrap();
        for id in 0..64u64 {
            log.write(Level::Info, "", id.to_le_bytes()).unwrap();
        }
        let mut reader = log.reader().batched();
        let first = reader.next().unwrap();
        assert_eq!(first.id, 0);
        // The first batch holds ids 0..32; writers now lap all of it and more.
        for id in 64..110u64 {
            log.write(Level::Info, "", id.to_le_bytes()).unwrap();
        }
        let rest: Vec<u64> = reader.by_ref().map(|r| r.id).collect();
        // Records already validated in the batch are returned (they were whole when
        // copied), then the reader jumps to the oldest surviving record.
        let (batched, fresh): (Vec<u64>, Vec<u64>) = rest.iter().partition(|&&id| id < 32);
        assert_eq!(batched, (1..32).collect::<Vec<_>>());
        // Lapped: the oldest surviving record is 46; the reader resumes a quarter ring (16)
        // ahead of it, and counts 32..62 lost.
        assert_eq!(fresh, (62..110).collect::<Vec<_>>());
        assert_eq!(1 + rest.len() as u64 + reader.lost(), 110);
    }
}
