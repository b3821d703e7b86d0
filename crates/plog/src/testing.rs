//! A stall hook for tests: park one write at a chosen point of the protocol, so that a test can
//! stall a writer exactly where a preemption, a stop or a page fault could, without signals.
//! Not part of the API; the cost when unarmed is one load of a static per point.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where in a write the hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallPoint {
    /// After the reservation (the counter's atomic add), before any block is claimed.
    Reserved,
    /// After every block of the record is claimed, before its bytes are written and published.
    Claimed,
}

static HOOK: OnceLock<(StallPoint, fn(u64))> = OnceLock::new();
static ARMED: AtomicBool = AtomicBool::new(false);

/// Runs `hook(position)` once, in the next write of this process that reaches `point`; the
/// write goes on when the hook returns. Only the first call in a process arms a hook.
pub fn stall_once(point: StallPoint, hook: fn(u64)) {
    if HOOK.set((point, hook)).is_ok() {
        ARMED.store(true, Ordering::SeqCst);
    }
}

/// The write path's call at `point`.
#[inline]
pub(crate) fn at(point: StallPoint, pos: u64) {
    if let Some((armed_point, hook)) = HOOK.get()
        && *armed_point == point
        && ARMED.swap(false, Ordering::SeqCst)
    {
        hook(pos);
    }
}

thread_local! {
    static EXAMINED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts blocks a reader on this thread examined (claim words loaded to find or check a
/// record), so that tests can hold readers to their bounds on work without timing them.
#[inline]
pub(crate) fn examined(blocks: u64) {
    EXAMINED.with(|c| c.set(c.get() + blocks));
}

/// Blocks examined by readers on this thread since the last call; resets the count.
pub fn take_examined() -> u64 {
    EXAMINED.with(|c| c.replace(0))
}

/// How often a reader that never pauses looks at its file's length: before one read of the
/// ring in this many (see `truncation.rs`), for the test that holds readers to it.
pub const LENGTH_CHECK_READS: u32 = crate::truncation::LENGTH_CHECK_READS;

/// Writes a record with the raw `kind` byte in its header, as a writer of a later format would
/// write a kind this build does not know.
pub fn write_kind(
    log: &crate::Log,
    level: crate::Level,
    kind: u8,
    tag: &str,
    payload: &[u8],
) -> crate::Result<u64> {
    let lane = log.lane_for_write();
    lane.write_kind(level, kind, tag.as_bytes(), payload)
        .map(|pos| lane.global_id(pos))
}

/// Writes a plain record in lane `lane` of a laned log (lane 0 of a log of one lane), as a
/// writer on a processor of that lane would: tests reach every lane from one thread this way.
///
/// # Panics
/// If the log has no lane `lane`.
pub fn write_in_lane(
    log: &crate::Log,
    lane: usize,
    level: crate::Level,
    tag: &str,
    payload: &[u8],
) -> crate::Result<u64> {
    let lane = &log.lanes[lane];
    lane.write(level, tag.as_bytes(), payload)
        .map(|pos| lane.global_id(pos))
}

/// Each lane's reservation counter (one entry for a log of one lane): the position the lane's
/// next record will get, so that a test knows which of a lane's ids are in its final lap.
pub fn lane_counters(log: &crate::Log) -> Vec<u64> {
    log.lanes
        .iter()
        .map(|lane| lane.next(std::sync::atomic::Ordering::Acquire))
        .collect()
}
