//! The write path: reserve, claim, copy, publish (docs/plog-format.md, "Writing").

use std::sync::atomic::{AtomicU64, Ordering};

use pmap::SharedMap;
use zerocopy::IntoBytes;

use crate::claim::{self, Claim, Taken};
use crate::format::{
    AlignedImage, CLAIM_LEN, KIND_RECORD, MAX_TAG_LEN, NEXT_OFF, RECORD_HEADER_LEN, RecordHeader,
    WAKE_OFF, WRITE_LIMIT, padded,
};
use crate::log::LogState;
use crate::protocol::{Reservation, Sleeper};
use crate::testing::StallPoint;
use crate::{Error, Level, Result};

/// Records whose content is up to this size (and fits one block) are assembled in a
/// per-thread buffer and checksummed in one pass.
const STACK_IMAGE: usize = 256;

/// A writer whose reservations keep meeting blocks held by stalled or dead writers gives up
/// after this many, so that it never waits for them (or once its reservations have covered four
/// laps of the ring, whichever comes later).
const MIN_ATTEMPTS: u64 = 64;

/// Bytes of a record header after its claim word: the start of a record's content.
const HEADER_CONTENT: usize = RECORD_HEADER_LEN - CLAIM_LEN;

/// The header bytes a write touches, from the counter at [`NEXT_OFF`] to the end of the wake
/// word at [`WAKE_OFF`], as one span.
const HEAD_SPAN: usize = WAKE_OFF + 4 - NEXT_OFF;

/// The error for an access outside a checked span (the spans' accessors answer `None`/`false`
/// rather than an error, to keep the write path short).
#[cold]
fn out_of_span(offset: usize, len: usize, map_len: usize) -> pmap::Error {
    pmap::Error::OutOfBounds {
        offset,
        len,
        map_len,
    }
}

thread_local! {
    /// The per-thread record buffer: reused, so that a write does not zero 272 bytes first.
    static IMAGE: std::cell::RefCell<AlignedImage<{ STACK_IMAGE + 16 }>> =
        const { std::cell::RefCell::new(AlignedImage([0; STACK_IMAGE + 16])) };
}

impl LogState {
    pub(crate) fn write(&self, level: Level, tag: &[u8], payload: &[u8]) -> Result<u64> {
        self.write_kind(level, KIND_RECORD, tag, payload)
    }

    /// Writes a record of `kind` (its payload already encoded for that kind).
    pub(crate) fn write_kind(
        &self,
        level: Level,
        kind: u8,
        tag: &[u8],
        payload: &[u8],
    ) -> Result<u64> {
        self.require_writable("write")?;
        if tag.len() > MAX_TAG_LEN {
            return Err(Error::TagTooLong {
                len: tag.len(),
                max: MAX_TAG_LEN,
            });
        }
        let max_content = self.max_content;
        let content = HEADER_CONTENT + tag.len() + payload.len();
        if payload.len() > max_content || content > max_content {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                max: self.max_message(tag.len()),
            });
        }
        let blocks = if content <= self.content_per_block {
            1
        } else {
            self.geometry.blocks_for(content as u64)
        };
        let pid = pmap::current_pid();
        let mut header = RecordHeader {
            commit: 0,
            time_ns: self.clock.now_ns(),
            len: payload.len() as u32,
            pid,
            blocks: blocks as u32,
            crc: 0,
            level: level.code(),
            kind,
            tag_len: tag.len() as u8,
            reserved0: 0,
            reserved1: 0,
        };
        // One checked span for the two header words a write touches (the counter and the wake
        // word): constant offsets inside it, so their own checks fold away.
        let (counter, wake_word) = if self.counter_off() == NEXT_OFF {
            let head = self.map.span(NEXT_OFF, HEAD_SPAN)?;
            let Some(wake_word) = head.atomic_u32(WAKE_OFF - NEXT_OFF) else {
                return Err(out_of_span(WAKE_OFF, 4, NEXT_OFF + head.len()).into());
            };
            (head.first_u64(), wake_word)
        } else {
            // A laned log: this lane's counter in the second header page, the wake word, shared
            // by every lane, in the first.
            (
                self.map.atomic_u64(self.counter_off())?,
                self.map.atomic_u32(WAKE_OFF)?,
            )
        };
        let mut attempts = 0;
        loop {
            // The reservation, the wake word's load and the release fence, as
            // `protocol::Reservation::reserve` argues them.
            let reservation = Reservation::reserve(counter, wake_word, blocks);
            let pos = reservation.pos;
            if pos >= WRITE_LIMIT {
                // Give the blocks back, so that refused writes cannot push the counter past
                // the limit that `open` checks (a file the library itself made unopenable).
                // Safe while others race: only writers refused here subtract, each what it
                // added, so the counter never drops below the end of a granted reservation.
                counter.fetch_sub(blocks, Ordering::Relaxed);
                return Err(Error::CounterExhausted { path: self.path() });
            }
            attempts += 1;
            crate::testing::at(StallPoint::Reserved, pos);
            let slot = self.slot_of(pos);
            let placed = if slot + blocks > self.blocks {
                // The record would straddle the ring's end: mark this reservation as padding
                // and reserve again, so that every record is contiguous.
                for i in 0..blocks {
                    claim::pad_unclaimed(self.claim_word(pos + i)?, pos + i, self.blocks);
                }
                Placement::Refused
            } else if blocks == 1 && content <= STACK_IMAGE {
                self.place_small(counter, pos, pid, &header, tag, payload)?
            } else {
                Placement::NoBuffer
            };
            let placed = match placed {
                Placement::NoBuffer => {
                    self.place_scattered(counter, pos, blocks, pid, &mut header, tag, payload)?
                }
                other => other,
            };
            if reservation.sleeper_seen() {
                self.wake_followers()?;
            }
            match placed {
                Placement::Published => return Ok(pos),
                // The division only once the cheap bound is passed: a write that succeeds
                // at once never pays it.
                _ if attempts >= MIN_ATTEMPTS && attempts >= 4 * self.blocks / blocks => {
                    return Err(Error::NoFreeBlocks {
                        path: self.path(),
                        attempts,
                    });
                }
                _ => {}
            }
        }
    }

    /// Places a one-block record of at most [`STACK_IMAGE`] content bytes at `pos`: loads the
    /// block's claim word first (its cache line travels while the record is assembled in the
    /// per-thread buffer), takes the claim, copies the buffer in one pass of whole words,
    /// computes the checksum and stores it, publishes. The buffer is unavailable only
    /// re-entrantly or while the thread exits: then [`Placement::NoBuffer`], and nothing was
    /// done.
    ///
    /// Why the checksum comes after the claim: on x86 a locked instruction executes only
    /// once every instruction before it has retired, so whatever a write computes before the
    /// reservation's add or the claim's compare-and-swap adds its whole latency to the write.
    /// After the claim, the crc's dependency chain runs beside the copy's stores and the next
    /// write's clock read (the copy does not wait for it: the crc goes into the block after
    /// it, and the release store that publishes comes after both). The clock stays first:
    /// a TSC read placed after a locked instruction measured twice as dear as one before it.
    /// Figures: docs/benchmarks.md ("The write: work after the locked instructions").
    #[inline]
    fn place_small(
        &self,
        counter: &AtomicU64,
        pos: u64,
        pid: u32,
        header: &RecordHeader,
        tag: &[u8],
        payload: &[u8],
    ) -> Result<Placement> {
        // The whole block checked once: its claim word and its content are then reached
        // without a check against the map each.
        let block = self.map.span(self.block_offset(pos), self.block_size)?;
        let word = block.first_u64();
        let seen = claim::seen(word);
        let placed = IMAGE.try_with(|cell| {
            let Ok(mut buf) = cell.try_borrow_mut() else {
                return Ok(Placement::NoBuffer);
            };
            let end = build_small(pos, header, tag, payload, &mut buf.0);
            if claim::take_seen(word, seen, pos, pid, counter, self.blocks) != Taken::Mine {
                return Ok(Placement::Refused);
            }
            crate::testing::at(StallPoint::Claimed, pos);
            let crc = RecordHeader::checksum_image(&buf.0[8..end + 16]);
            if !block.write_at(CLAIM_LEN, &buf.0[..end])
                || !block.write_at(CLAIM_LEN + 20, &crc.to_le_bytes())
            {
                // Cannot happen (a one-block record's content fits its block); if it did,
                // nothing was written: give the block back rather than leave it held.
                claim::give_back(word, pos);
                return Err(out_of_span(CLAIM_LEN, end, block.len()).into());
            }
            claim::publish(word, Claim::Start(pos));
            Ok(Placement::Published)
        });
        placed.unwrap_or(Ok(Placement::NoBuffer))
    }

    /// Places any record at `pos`: takes the claims of its blocks, scatters its content around
    /// their claim words, publishes the later blocks, then the first.
    #[allow(clippy::too_many_arguments)]
    fn place_scattered(
        &self,
        counter: &AtomicU64,
        pos: u64,
        blocks: u64,
        pid: u32,
        header: &mut RecordHeader,
        tag: &[u8],
        payload: &[u8],
    ) -> Result<Placement> {
        if !self.claim_blocks(counter, pos, blocks, pid)? {
            return Ok(Placement::Refused);
        }
        crate::testing::at(StallPoint::Claimed, pos);
        header.crc = header.checksum(pos, tag, payload);
        self.scatter(pos, 0, &header.as_bytes()[CLAIM_LEN..])?;
        self.scatter(pos, HEADER_CONTENT, tag)?;
        self.scatter(pos, HEADER_CONTENT + tag.len(), payload)?;
        // Later blocks first, the first block's start claim last: a reader that sees the
        // start (acquire) sees the whole record.
        for i in 1..blocks {
            claim::publish(self.claim_word(pos + i)?, Claim::Cont(pos + i));
        }
        claim::publish(self.claim_word(pos)?, Claim::Start(pos));
        Ok(Placement::Published)
    }

    /// The claim word of the block at position `pos`.
    #[inline]
    pub(crate) fn claim_word(&self, pos: u64) -> Result<&AtomicU64> {
        Ok(self.map.atomic_u64(self.block_offset(pos))?)
    }

    /// Takes the claims of the `blocks` blocks reserved at `pos`, in order. If one is held by
    /// an older writer or was used by a newer one, gives back those already taken, marks the
    /// rest as padding (where no writer holds or has used them) and returns false: the caller
    /// reserves again. No writer waits for another.
    fn claim_blocks(&self, counter: &AtomicU64, pos: u64, blocks: u64, pid: u32) -> Result<bool> {
        for i in 0..blocks {
            match claim::take(
                self.claim_word(pos + i)?,
                pos + i,
                pid,
                counter,
                self.blocks,
            ) {
                Taken::Mine => {}
                Taken::Late | Taken::Held => {
                    for j in 0..i {
                        claim::give_back(self.claim_word(pos + j)?, pos + j);
                    }
                    for j in i + 1..blocks {
                        claim::pad_unclaimed(self.claim_word(pos + j)?, pos + j, self.blocks);
                    }
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Copies `bytes` to the record at `pos`, from content byte `at` on, around the claim
    /// words of the blocks it spans.
    fn scatter(&self, pos: u64, mut at: usize, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let room = self.room_at(at);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.map.write_at(self.content_offset(pos, at), now)?;
            at += now.len();
            bytes = rest;
        }
        Ok(())
    }

    /// Bumps the wake word's sequence, clears the sleeper bit, and wakes every follower in
    /// every process. A follower killed while asleep leaves the bit set; the next writer clears
    /// it, so the cost of a dead follower is one wake call.
    pub(crate) fn wake_followers(&self) -> Result<()> {
        wake_word(&self.map)
    }
}

/// Assembles a one-block record of at most [`STACK_IMAGE`] content bytes (all but its claim
/// word) in `buf`: `[time][content 8.., padded to 8][id][time]`, the checksum image being
/// `buf[8..]` (its definition's order, see format.rs) with the crc field zero. Returns the
/// length of the part to copy to the block (`buf[..end]`: the content padded to 8, which stays
/// inside the block, whose content room is a multiple of 8).
#[inline]
fn build_small(
    pos: u64,
    header: &RecordHeader,
    tag: &[u8],
    payload: &[u8],
    buf: &mut [u8; STACK_IMAGE + 16],
) -> usize {
    let content = HEADER_CONTENT + tag.len() + payload.len();
    let end = padded(content);
    // The buffer is reused: zero the padding (at most 7 bytes, inside the last word) by
    // zeroing that whole word first (one store, not a call to memset of 0..7 bytes); the
    // header, tag and payload then overwrite what of it they cover.
    buf[end - 8..end].fill(0);
    let time = header.time_ns.to_le_bytes();
    buf[..8].copy_from_slice(&time);
    buf[8..32].copy_from_slice(&header.as_bytes()[16..]);
    // The crc field is taken as zero: a retried write's header already holds the crc of its
    // earlier position.
    buf[20..24].fill(0);
    buf[32..32 + tag.len()].copy_from_slice(tag);
    buf[32 + tag.len()..content].copy_from_slice(payload);
    buf[end..end + 8].copy_from_slice(&pos.to_le_bytes());
    buf[end + 8..end + 16].copy_from_slice(&time);
    end
}

/// What one placement attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// The record is published at the reserved position.
    Published,
    /// A block was late or held (or the reservation straddled the ring's end): nothing of the
    /// record was written; the caller reserves again.
    Refused,
    /// The per-thread buffer was unavailable: nothing was done; take the general path.
    NoBuffer,
}

/// Bumps the wake word of `map` (a log's mapping, or a follower's side mapping of its header):
/// the sequence advances, the sleeper bit clears, and every sleeper in every process wakes.
pub(crate) fn wake_word(map: &SharedMap) -> Result<()> {
    Sleeper::wake(map.atomic_u32(WAKE_OFF)?);
    map.wake_u32(WAKE_OFF)?;
    Ok(())
}
