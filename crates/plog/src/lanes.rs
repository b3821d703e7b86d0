//! Writer lanes (docs/plog-format.md, "Lanes"): which lane a writer uses, and the reader that
//! merges a laned log's lanes back into one stream in record-time order.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads that asked for a lane where the platform names no processor, numbered in order.
static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's lane hint where the platform names no processor: its number mixed with
    /// the process id, so that the threads of one process, and single-threaded processes,
    /// spread over the lanes.
    static THREAD_LANE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The lane, of `lanes` (a power of two), a writer on this thread uses now: its processor's
/// number modulo `lanes`, or a per-thread choice where the platform does not say. Any answer is
/// correct (a lane takes writers from any number of threads and processes, lock-free as a log
/// of one lane does); the processor's number only keeps two cores off one counter.
#[inline]
pub(crate) fn writer_lane(lanes: usize) -> usize {
    let mask = lanes.wrapping_sub(1);
    match pmap::current_cpu() {
        Some(cpu) => cpu as usize & mask,
        None => thread_lane() & mask,
    }
}

#[cold]
fn thread_lane() -> usize {
    THREAD_LANE
        .try_with(|lane| match lane.get() {
            Some(lane) => lane,
            None => {
                let chosen = (pmap::current_pid() as usize)
                    .wrapping_add(THREADS.fetch_add(1, Ordering::Relaxed));
                lane.set(Some(chosen));
                chosen
            }
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_lane_is_always_one_of_the_lanes() {
        for lanes in [1, 2, 4, 16] {
            assert!(writer_lane(lanes) < lanes);
            assert!(thread_lane() & (lanes - 1) < lanes);
        }
    }
}
