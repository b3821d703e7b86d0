//! The protocol kernels of the write path, the reader's lap check and the follower's sleeper
//! bit: each load, store and fence of docs/plog-format.md ("Writing", "Reading", "Follow"), in
//! the order the doc argues, written once. The claim words' kernels are in `claim.rs`.
//!
//! Each kernel is generic over `pmap::word`'s traits: the crate calls it with the words of its
//! mapping (std atomics: the same machine code as without the seam), and the models of
//! `loom_models.rs` (`cargo xtask loom`) call the very same function with loom's atomics. A
//! change of an ordering here is a change the models check.

use std::sync::atomic::Ordering;

use pmap::word::{Load32, Load64, Word32, Word64};

use crate::format::SLEEPER;

/// A writer's reservation: the position its record takes, and the wake word as it was then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    /// The position (the record's id): the counter before this writer's add.
    pub(crate) pos: u64,
    /// The wake word loaded right after the add.
    pub(crate) wake: u32,
}

impl Reservation {
    /// Reserves `blocks` positions on `counter` and loads `wake`.
    ///
    /// SeqCst on the add and on the load after it: with the follower's SeqCst announcement and
    /// recheck ([`Sleeper`]), either this writer sees the sleeper bit or the follower sees this
    /// reservation (model: `loom_models::sleeper_no_lost_wakeup`). Then a release fence: every
    /// store the writer makes after it (claims, bytes) comes after the reservation for a
    /// reader whose acquire fence follows a load of one of them, so that reader's counter load
    /// shows the lap ([`LapCheck`]; model: `loom_models::lapped_copy_is_never_accepted`).
    #[inline(always)]
    pub(crate) fn reserve<C: Word64, K: Load32>(counter: &C, wake: &K, blocks: u64) -> Self {
        let pos = counter.fetch_add(blocks, Ordering::SeqCst);
        let wake = wake.load(Ordering::SeqCst);
        C::fence(Ordering::Release);
        Reservation { pos, wake }
    }

    /// Whether a follower had announced its sleep when this writer reserved: the writer then
    /// wakes the followers ([`Sleeper::wake`]) once its record is published.
    #[inline(always)]
    pub(crate) fn sleeper_seen(&self) -> bool {
        self.wake & SLEEPER != 0
    }
}

/// The reader's side: open a slot by its claim word, copy, then check that no writer lapped
/// the slot meanwhile (docs/plog-format.md, "Reading").
pub(crate) struct LapCheck;

impl LapCheck {
    /// The claim word of a record's first block (or of a later block), with acquire ordering:
    /// every byte copied after it is at least what the record's writer published.
    #[inline(always)]
    pub(crate) fn open<W: Load64>(claim: &W) -> u64 {
        claim.load(Ordering::Acquire)
    }

    /// The counter after the copy: an acquire fence, then a relaxed load. A copy that read any
    /// byte a later lap's writer stored synchronises, through this fence and that writer's
    /// release fence ([`Reservation::reserve`]), with its reservation: the counter loaded here
    /// then shows it, and [`Self::lapped`] rejects the copy.
    #[inline(always)]
    pub(crate) fn counter_after_copy<W: Load64>(counter: &W) -> u64 {
        W::fence(Ordering::Acquire);
        counter.load(Ordering::Relaxed)
    }

    /// Whether a counter loaded by [`Self::counter_after_copy`] shows writers reserved past one
    /// lap from `pos` (a ring of `ring_blocks`): then the copy of `pos` may be torn.
    #[inline(always)]
    pub(crate) fn lapped(counter: u64, pos: u64, ring_blocks: u64) -> bool {
        counter > pos.saturating_add(ring_blocks)
    }

    /// Whether the claim word still holds `commit`, the value [`Self::open`] loaded (after
    /// [`Self::counter_after_copy`]'s fence: relaxed is enough).
    #[inline(always)]
    pub(crate) fn unchanged<W: Load64>(claim: &W, commit: u64) -> bool {
        claim.load(Ordering::Relaxed) == commit
    }
}

/// The follower's sleep on the wake word, and the writer's wake (docs/plog-format.md,
/// "Follow"). The sleep itself is pmap's `wait_u32` on the value [`Self::announce`] returned.
pub(crate) struct Sleeper;

impl Sleeper {
    /// Sets the sleeper bit (SeqCst) and returns the value to sleep on.
    #[inline(always)]
    pub(crate) fn announce<K: Word32>(wake: &K) -> u32 {
        wake.fetch_or(SLEEPER, Ordering::SeqCst) | SLEEPER
    }

    /// The counter after the announcement (SeqCst): a follower that finds it past its position
    /// looks again instead of sleeping; otherwise any writer reserving later sees the bit.
    #[inline(always)]
    pub(crate) fn recheck<C: Load64>(counter: &C) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    /// Bumps the wake word's sequence and clears the sleeper bit (SeqCst), before the caller's
    /// futex wake: a follower about to sleep on the old value then does not sleep.
    #[inline]
    pub(crate) fn wake<K: Word32>(wake: &K) {
        let mut current = wake.load(Ordering::SeqCst);
        loop {
            let bumped = current.wrapping_add(1) & !SLEEPER;
            match wake.compare_exchange(current, bumped, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}
