//! Wall-clock nanoseconds at the cost of a counter read.
//!
//! `SystemTime::now()` costs more than the rest of a write together. At open, one calibration
//! pair is taken (wall-clock nanoseconds and a raw `quanta` reading, the TSC where it is
//! usable, the monotonic clock elsewhere); each record's time is that wall-clock instant plus the
//! scaled counter delta since. The time therefore drifts from the system clock as the counter
//! and NTP disagree (parts per million), until the log is opened again.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub(crate) struct WallClock {
    clock: quanta::Clock,
    base_raw: u64,
    base_ns: u64,
}

impl WallClock {
    pub(crate) fn new() -> WallClock {
        let clock = quanta::Clock::new();
        let base_raw = clock.raw();
        WallClock {
            clock,
            base_raw,
            base_ns: system_now_ns(),
        }
    }

    /// Nanoseconds since the Unix epoch.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        self.base_ns
            .saturating_add(self.clock.delta_as_nanos(self.base_raw, self.clock.raw()))
    }
}

/// The system clock in nanoseconds since the Unix epoch (0 before it, saturated after 2554).
pub(crate) fn system_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_the_system_clock() {
        let clock = WallClock::new();
        let a = clock.now_ns();
        let sys = system_now_ns();
        let b = clock.now_ns();
        assert!(b >= a);
        // Within 50 ms of the system clock right after calibration.
        assert!(a.abs_diff(sys) < 50_000_000, "{a} vs {sys}");
    }
}
