//! The claim word at the start of every block: who may write the block, and what it holds. The
//! writer's side of the protocol (take, commit, give back) and its fences live here, so that
//! its argument (docs/plog-format.md, "Claims") is reviewed in one place.
//!
//! A block is written only by the writer that holds its claim. A claim is taken by one
//! compare-and-swap from a word that names an *older* position than the taker's, so a writer
//! that is late (another writer has used the block at a newer position since it reserved)
//! never touches the block, and a writer that holds a block it is still writing is never
//! overwritten: the newer writer sees the claim and leaves the block alone. Positions are
//! unique and increasing, so a word never returns to a value a slow writer saw earlier.

use std::sync::atomic::Ordering;

use pmap::ProcessState;
use pmap::word::{Load64, Word64};

/// Bits of a claim word below the state: a position + 1, or (busy) position bits and a pid.
const VALUE_BITS: u32 = 62;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
const STATE_START: u64 = 0;
const STATE_CONT: u64 = 1;
const STATE_PAD: u64 = 2;
const STATE_BUSY: u64 = 3;
/// Bits of the position kept in a busy word (beside the 32-bit pid): they make a thief's
/// compare-and-swap fail if the word was re-taken by a new process that reused the dead pid.
const BUSY_POS_BITS: u32 = 30;

/// A decoded claim word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Never written (a new file, or a dead writer's claim released at open).
    Empty,
    /// The first block of the record published at this position.
    Start(u64),
    /// A block, at this position, of a record published at an earlier one.
    Cont(u64),
    /// Reserved at this position but holding no record: padding before the ring's end, or a
    /// reservation its writer gave back.
    Pad(u64),
    /// Being written by a writer of process `pid` that reserved a position whose low bits are
    /// `pos_bits`.
    Busy {
        /// The claimer's process id.
        pid: u32,
        /// The low [`BUSY_POS_BITS`] bits of the claimed position.
        pos_bits: u32,
    },
}

impl Claim {
    /// Decodes a claim word. Every `u64` is some claim, so any byte pattern decodes.
    #[inline]
    pub(crate) fn decode(word: u64) -> Claim {
        let value = word & VALUE_MASK;
        match word >> VALUE_BITS {
            STATE_START if value == 0 => Claim::Empty,
            STATE_START => Claim::Start(value - 1),
            STATE_CONT if value == 0 => Claim::Empty,
            STATE_CONT => Claim::Cont(value - 1),
            STATE_PAD if value == 0 => Claim::Empty,
            STATE_PAD => Claim::Pad(value - 1),
            _ => Claim::Busy {
                pid: value as u32,
                pos_bits: (value >> 32) as u32,
            },
        }
    }

    /// The word for this claim. Positions are below [`crate::format::WRITE_LIMIT`] < 2^62 - 1,
    /// so `position + 1` fits in the value bits.
    #[inline]
    pub(crate) const fn encode(self) -> u64 {
        match self {
            Claim::Empty => 0,
            Claim::Start(pos) => (STATE_START << VALUE_BITS) | ((pos + 1) & VALUE_MASK),
            Claim::Cont(pos) => (STATE_CONT << VALUE_BITS) | ((pos + 1) & VALUE_MASK),
            Claim::Pad(pos) => (STATE_PAD << VALUE_BITS) | ((pos + 1) & VALUE_MASK),
            Claim::Busy { pid, pos_bits } => {
                (STATE_BUSY << VALUE_BITS)
                    | (((pos_bits as u64) & ((1 << BUSY_POS_BITS) - 1)) << 32)
                    | pid as u64
            }
        }
    }

    /// The busy claim of a writer of process `pid` for position `pos`.
    #[inline]
    pub(crate) const fn busy(pos: u64, pid: u32) -> Claim {
        Claim::Busy {
            pid,
            pos_bits: (pos & ((1 << BUSY_POS_BITS) - 1)) as u32,
        }
    }
}

/// What [`take`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The block is this writer's until it commits or gives it back.
    Mine,
    /// A writer at a newer position has used or claimed the block, or the writers have lapped
    /// this position: this writer's reservation is stale and must not be written.
    Late,
    /// An older writer still holds the block (stalled, or of a process still alive): this
    /// writer leaves it alone and reserves again elsewhere.
    Held,
}

/// The state a block is expected in when a writer at `pos` arrives: the record of the lap
/// before. One compare-and-swap then takes it; any other state costs one more.
#[inline]
fn expected_before(pos: u64, ring_blocks: u64) -> u64 {
    match pos.checked_sub(ring_blocks) {
        Some(previous) => Claim::Start(previous).encode(),
        None => Claim::Empty.encode(),
    }
}

/// Takes the claim of the block at position `pos` for a writer of process `pid` (the word is
/// that block's claim word, `counter` the log's reservation counter).
///
/// The claim is taken only from a word that names an older position (or none). A word naming
/// `pos` or a newer one means a newer writer was here: [`Taken::Late`]. A busy word means a
/// writer holds the block; if the writers have since reserved a lap past `pos`, this writer is
/// [`Taken::Late`]; otherwise the holder is older than `pos` (a newer one would have reserved
/// past `pos + ring_blocks` first), and its block is taken over only when its process is dead,
/// else [`Taken::Held`].
///
/// Ordering: AcqRel on success, so that the previous owner's stores to the block happen
/// before this writer's (their modification order follows), and the claim is ordered after the
/// caller's reservation and release fence.
pub(crate) fn take<W: Word64, C: Load64>(
    word: &W,
    pos: u64,
    pid: u32,
    counter: &C,
    ring_blocks: u64,
) -> Taken {
    take_from(
        word,
        expected_before(pos, ring_blocks),
        pos,
        pid,
        counter,
        ring_blocks,
    )
}

/// The claim word of the block a writer reserved, loaded (acquire) ahead of [`take_seen`], so
/// that the block's cache line travels while the record is assembled.
#[inline(always)]
pub(crate) fn seen<W: Load64>(word: &W) -> u64 {
    word.load(Ordering::Acquire)
}

/// [`take_from`] with its common case inlined: `seen` is the state the block is expected in
/// (the record of the lap before, or never written), which names an older position than `pos`,
/// so [`take_from`] would go straight to its compare-and-swap; that compare-and-swap is made
/// here, and any other state (or a failed swap, with the value it found) goes to [`take_from`],
/// which judges it exactly as before.
#[inline]
pub(crate) fn take_seen<W: Word64, C: Load64>(
    word: &W,
    seen: u64,
    pos: u64,
    pid: u32,
    counter: &C,
    ring_blocks: u64,
) -> Taken {
    let mut current = seen;
    if seen == expected_before(pos, ring_blocks) {
        let mine = Claim::busy(pos, pid).encode();
        match word.compare_exchange(seen, mine, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Taken::Mine,
            Err(actual) => current = actual,
        }
    }
    take_from(word, current, pos, pid, counter, ring_blocks)
}

/// [`take`], starting from `seen`, a value of the word loaded earlier (the write path loads it
/// right after its reservation so that the block's cache line is on its way while the record's
/// checksum is computed). `seen` is judged like any value the word holds before the
/// compare-and-swap is tried.
pub(crate) fn take_from<W: Word64, C: Load64>(
    word: &W,
    seen: u64,
    pos: u64,
    pid: u32,
    counter: &C,
    ring_blocks: u64,
) -> Taken {
    let mine = Claim::busy(pos, pid).encode();
    let mut current = seen;
    loop {
        match Claim::decode(current) {
            Claim::Empty => {}
            Claim::Start(at) | Claim::Cont(at) | Claim::Pad(at) => {
                if at >= pos {
                    return Taken::Late;
                }
            }
            Claim::Busy { pid: holder, .. } => {
                // The busy word was seen with acquire ordering; a newer holder reserved before
                // it claimed, so the counter now shows that reservation.
                if counter.load(Ordering::Acquire) > pos.saturating_add(ring_blocks) {
                    return Taken::Late;
                }
                if holder == pid || pmap::process_state(holder) != ProcessState::Dead {
                    return Taken::Held;
                }
                // The holder's process is gone: the block is taken over by the
                // compare-and-swap below (which fails if the word changed meanwhile).
            }
        }
        match word.compare_exchange(current, mine, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Taken::Mine,
            Err(actual) => current = actual,
        }
    }
}

/// Marks the block at `pos` as padding unless a writer holds it or a newer one used it: a
/// block reserved at `pos` that will hold no record. Ring-end padding is written this way,
/// without a busy phase, since it carries no bytes.
pub(crate) fn pad_unclaimed<W: Word64>(word: &W, pos: u64, ring_blocks: u64) {
    let pad = Claim::Pad(pos).encode();
    let mut current = expected_before(pos, ring_blocks);
    loop {
        match word.compare_exchange(current, pad, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
        match Claim::decode(current) {
            Claim::Empty => {}
            Claim::Start(at) | Claim::Cont(at) | Claim::Pad(at) if at < pos => {}
            // Held by a writer, or used at `pos` or later: not ours to mark.
            _ => return,
        }
    }
}

/// Publishes a block this writer holds: `Start(pos)` for a record's first block (stored last,
/// after its other blocks), `Cont(pos)` for the others. Release: a reader that loads the word
/// with acquire ordering sees every byte written before it.
#[inline]
pub(crate) fn publish<W: Word64>(word: &W, claim: Claim) {
    word.store(claim.encode(), Ordering::Release);
}

/// Gives back a block this writer holds without a record in it: readers skip it as padding,
/// and any newer writer may take it.
#[inline]
pub(crate) fn give_back<W: Word64>(word: &W, pos: u64) {
    word.store(Claim::Pad(pos).encode(), Ordering::Release);
}

/// Releases, at open, a busy claim whose process is dead (or whose pid is no process), so that
/// its block is not held forever: `true` if the word was released to [`Claim::Empty`].
pub(crate) fn release_dead<W: Word64>(word: &W) -> bool {
    let current = word.load(Ordering::Acquire);
    let Claim::Busy { pid, .. } = Claim::decode(current) else {
        return false;
    };
    if pid != 0 && pmap::process_state(pid) != ProcessState::Dead {
        return false;
    }
    word.compare_exchange(
        current,
        Claim::Empty.encode(),
        Ordering::AcqRel,
        Ordering::Relaxed,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn every_claim_round_trips_and_every_word_decodes() {
        for claim in [
            Claim::Empty,
            Claim::Start(0),
            Claim::Start(crate::format::WRITE_LIMIT - 1),
            Claim::Cont(7),
            Claim::Pad(1 << 40),
            Claim::busy(5, 1234),
            Claim::busy(u64::MAX, u32::MAX),
        ] {
            assert_eq!(Claim::decode(claim.encode()), claim, "{claim:?}");
        }
        for word in [
            u64::MAX,
            1 << 62,
            2 << 62,
            3 << 62,
            1,
            0x8000_0000_0000_0001,
        ] {
            let claim = Claim::decode(word);
            if claim != Claim::Empty {
                assert_eq!(claim.encode(), word);
            }
        }
        // A start claim is the format-1 commit word: id + 1.
        assert_eq!(Claim::Start(41).encode(), 42);
    }

    #[test]
    fn a_late_writer_never_takes_a_newer_block() {
        let ring = 8;
        let counter = AtomicU64::new(20);
        let word = AtomicU64::new(Claim::Start(12).encode());
        // Position 4 (lap 0) arrives after 12 (lap 1) was published there.
        assert_eq!(take(&word, 4, 1, &counter, ring), Taken::Late);
        assert_eq!(
            Claim::decode(word.load(Ordering::Relaxed)),
            Claim::Start(12)
        );
        // Position 20 (lap 2) takes it.
        assert_eq!(take(&word, 20, 1, &counter, ring), Taken::Mine);
        assert_eq!(
            Claim::decode(word.load(Ordering::Relaxed)),
            Claim::busy(20, 1)
        );
        // While 20 writes, 28 (lap 3) finds it held by a live process (this one).
        counter.store(29, Ordering::Relaxed);
        let me = std::process::id();
        word.store(Claim::busy(20, me).encode(), Ordering::Relaxed);
        assert_eq!(take(&word, 28, me, &counter, ring), Taken::Held);
        // And a writer lapped since the holder claimed is late, not held.
        counter.store(40, Ordering::Relaxed);
        assert_eq!(take(&word, 28, me, &counter, ring), Taken::Late);
        publish(&word, Claim::Start(20));
        pad_unclaimed(&word, 12, ring);
        assert_eq!(
            Claim::decode(word.load(Ordering::Relaxed)),
            Claim::Start(20)
        );
        pad_unclaimed(&word, 36, ring);
        assert_eq!(Claim::decode(word.load(Ordering::Relaxed)), Claim::Pad(36));
    }

    /// The inlined fast path decides as `take_from` does, from every kind of state, whether
    /// `seen` is the word's value or a stale one.
    #[test]
    fn take_seen_decides_as_take_from() {
        let ring = 8;
        let me = std::process::id();
        let states = [
            Claim::Empty,
            Claim::Start(2),
            Claim::Start(10),
            Claim::Start(18),
            Claim::Cont(10),
            Claim::Pad(10),
            Claim::Pad(18),
            Claim::busy(10, me),
        ];
        for pos in [2, 10, 18, 26] {
            for actual in states {
                for seen in states {
                    let counter = AtomicU64::new(pos + 1);
                    let a = AtomicU64::new(actual.encode());
                    let b = AtomicU64::new(actual.encode());
                    let fast = take_seen(&a, seen.encode(), pos, 77, &counter, ring);
                    let slow = take_from(&b, seen.encode(), pos, 77, &counter, ring);
                    assert_eq!(fast, slow, "{pos} {actual:?} {seen:?}");
                    assert_eq!(
                        a.load(Ordering::Relaxed),
                        b.load(Ordering::Relaxed),
                        "{pos} {actual:?} {seen:?}"
                    );
                }
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_dead_holder_is_taken_over() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let counter = AtomicU64::new(9);
        let word = AtomicU64::new(Claim::busy(0, dead).encode());
        assert_eq!(take(&word, 8, 77, &counter, 8), Taken::Mine);
        assert_eq!(
            Claim::decode(word.load(Ordering::Relaxed)),
            Claim::busy(8, 77)
        );
        word.store(Claim::busy(0, dead).encode(), Ordering::Relaxed);
        assert!(release_dead(&word));
        assert_eq!(Claim::decode(word.load(Ordering::Relaxed)), Claim::Empty);
        word.store(
            Claim::busy(0, std::process::id()).encode(),
            Ordering::Relaxed,
        );
        assert!(!release_dead(&word));
    }
}
