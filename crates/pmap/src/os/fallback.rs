//! Every platform but Linux: wait by polling with short, growing sleeps (macOS and Windows have
//! no documented cross-process futex), and the creation mode on other Unixes.

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[cfg(unix)]
pub(crate) fn set_create_mode(options: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(mode);
}

#[cfg(not(unix))]
pub(crate) fn set_create_mode(_options: &mut OpenOptions, _mode: u32) {}

const FIRST_SLEEP: Duration = Duration::from_micros(20);
const LONGEST_SLEEP: Duration = Duration::from_millis(1);

/// Polls the word until it differs from `expected` or `timeout` passes.
///
/// # Safety
/// `addr` must point to a 4-aligned word inside a live mapping for the whole call.
pub(crate) unsafe fn wait_u32(addr: *const u32, expected: u32, timeout: Option<Duration>) {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut sleep = FIRST_SLEEP;
    loop {
        // SAFETY: aligned and live per the caller's contract; only loaded.
        let now = unsafe { AtomicU32::from_ptr(addr.cast_mut()) }.load(Ordering::Acquire);
        if now != expected {
            return;
        }
        let nap = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => sleep.min(left),
                _ => return,
            },
            None => sleep,
        };
        std::thread::sleep(nap);
        sleep = (sleep * 2).min(LONGEST_SLEEP);
    }
}

/// Pollers notice changes by themselves.
///
/// # Safety
/// None needed; `unsafe` only to match the Linux signature.
pub(crate) unsafe fn wake_u32(_addr: *const u32) {}
