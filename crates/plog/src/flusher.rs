//! The background flush thread of [`crate::LogOptions::flush_every`], safe across `fork`.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::log::LogState;

/// The background flush thread; dropping it stops and joins it.
///
/// A thread does not survive `fork`: a child that inherits a `Log` inherits this handle to a
/// thread that exists only in the parent, and a mutex that the parent's thread may have held at
/// the moment of the fork. So the handle remembers the process that started the thread, and a
/// drop in any other process neither locks, signals nor joins: it forgets the handle (the
/// child has no flusher; the parent's thread stops when the parent drops its own copy).
#[derive(Debug)]
pub(crate) struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    owner: u32,
}

impl Flusher {
    pub(crate) fn start(inner: Arc<LogState>, interval: Duration) -> Flusher {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("plog-flush".into())
            .spawn(move || {
                let (lock, cvar) = &*signal;
                let Ok(mut stopped) = lock.lock() else { return };
                while !*stopped {
                    match cvar.wait_timeout(stopped, interval) {
                        Ok((guard, _)) => stopped = guard,
                        Err(_) => return,
                    }
                    if !*stopped {
                        // A failed background flush has nobody to report to; the next
                        // explicit `flush` reports the error.
                        let _ = inner.map.flush();
                    }
                }
            })
            .ok();
        Flusher {
            stop,
            thread,
            owner: pmap::current_pid(),
        }
    }

    /// Whether the flush thread runs in this process (false in a forked child).
    #[cfg(test)]
    pub(crate) fn runs_here(&self) -> bool {
        self.thread.is_some() && self.owner == pmap::current_pid()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        if self.owner != pmap::current_pid() {
            // A forked child: the thread is the parent's, the mutex may be locked forever.
            if let Some(thread) = self.thread.take() {
                std::mem::forget(thread);
            }
            // The Arc's memory is this process's copy; leaking it avoids running the
            // Mutex's destructor on a possibly locked mutex.
            std::mem::forget(Arc::clone(&self.stop));
            return;
        }
        let (lock, cvar) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
