//! Hooks for tests: stopping a writer at a chosen point of a commit, to show what readers and
//! recovery do then, and recording every write and sync a handle makes (the crash-simulating
//! storage of the power-loss tests). Not part of the API: hidden from the documentation.

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

/// One thing a writer did to the file, as a [`Recorder`] saw it, in the order it did them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `bytes` were stored at offset `at` (record bytes, or a coordination word stored whole).
    Write {
        /// The file offset.
        at: u64,
        /// What was stored there.
        bytes: Vec<u8>,
    },
    /// A sync returned: every byte written before it in `start .. end` is on the disk (`end`
    /// is `u64::MAX` for the whole file).
    Sync {
        /// First byte made durable.
        start: u64,
        /// End of the bytes made durable.
        end: u64,
    },
}

/// The storage of the crash tests: a handle opened with
/// [`DbOptions::record_to`](crate::DbOptions::record_to) writes through its mapping as usual and
/// notes every write and sync here, so that a test can build any file a power loss could have
/// left (the synced bytes, plus any subset of the pages written since).
#[derive(Debug, Default)]
pub struct Recorder {
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    /// An empty record.
    #[must_use]
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Every write and sync so far, in order.
    #[must_use]
    pub fn ops(&self) -> Vec<Op> {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many writes and syncs were noted so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing was noted yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn wrote(&self, at: u64, bytes: &[u8]) {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Op::Write {
                at,
                bytes: bytes.to_vec(),
            });
    }

    pub(crate) fn synced(&self, start: u64, end: u64) {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Op::Sync { start, end });
    }
}
