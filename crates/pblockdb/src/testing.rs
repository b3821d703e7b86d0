//! Hooks for tests that stop a writer at a chosen point of a commit, to show what readers and
//! recovery do then. Not part of the API: hidden from the documentation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Where in a commit [`stall_at`] stops the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallPoint {
    /// Every replaced version is saved and the history head moved; no slot is touched yet.
    AfterHistory,
    /// Inside the rewrite of the commit's `n`-th slot (0-based), its version odd.
    MidSlot(u64),
    /// Every slot is rewritten; the commit word is not yet stored.
    BeforePublish,
}

type Hook = Box<dyn Fn() + Send>;

static ARMED: AtomicBool = AtomicBool::new(false);
static HOOK: Mutex<Option<(StallPoint, Hook)>> = Mutex::new(None);

/// Calls `hook` (once) when this process's next commit reaches `point`. The hook typically
/// tells the test where the writer is and then never returns (parks forever), so the test can
/// read beside a writer stopped there, or kill it there.
pub fn stall_at(point: StallPoint, hook: impl Fn() + Send + 'static) {
    *HOOK.lock().unwrap_or_else(PoisonError::into_inner) = Some((point, Box::new(hook)));
    ARMED.store(true, Ordering::Release);
}

/// Called by the commit path at each point; one relaxed load when no test armed a stall.
#[inline]
pub(crate) fn reached(point: StallPoint) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    let hook = {
        let mut armed = HOOK.lock().unwrap_or_else(PoisonError::into_inner);
        match armed.take() {
            Some((at, hook)) if at == point => {
                ARMED.store(false, Ordering::Release);
                Some(hook)
            }
            other => {
                *armed = other;
                None
            }
        }
    };
    if let Some(hook) = hook {
        hook();
    }
}
