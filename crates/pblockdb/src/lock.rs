//! The writer lock: an in-process mutex plus an exclusive advisory file lock, with the owner
//! words that turn a lock a thread already holds (through this handle or another) into a
//! typed error instead of a deadlock. Taking it recovers what a dead writer left.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use pmap::Lock;

use crate::{Db, Error, Result};

/// A number unique to the calling thread while it lives (the address of a thread-local).
pub(crate) fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|token| std::ptr::from_ref(token) as usize)
}

/// Proof that the writer lock is held; released on drop.
#[derive(Debug)]
pub(crate) struct WriteLock<'a> {
    pub(crate) db: &'a Db,
    _mutex: MutexGuard<'a, ()>,
}

impl Drop for WriteLock<'_> {
    fn drop(&mut self) {
        self.db.owner.store(0, Ordering::Relaxed);
        // Only if still this thread's (a WriteLock is not Send, so this is the thread that
        // took it): a store that raced a later owner's must not clear theirs.
        let token = thread_token();
        let _ = self
            .db
            .file_owner
            .compare_exchange(token, 0, Ordering::Relaxed, Ordering::Relaxed);
        // An unlock that fails leaves the lock to be released when the file closes; nothing
        // better can be done from a destructor.
        let _ = self.db.locker.unlock();
    }
}

impl Db {
    /// Takes the writer lock, catches up with other processes' rebuilds and growth, and rolls
    /// back a commit a dead writer left unfinished.
    pub(crate) fn lock_writer(&self) -> Result<WriteLock<'_>> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
                op: "write",
            });
        }
        let token = thread_token();
        if self.owner.load(Ordering::Relaxed) == token {
            return Err(Error::Reentrant {
                path: self.path.clone(),
            });
        }
        // Checked before the mutex: another thread may hold it while it waits for the file
        // lock that this thread holds through another handle.
        if self.file_owner.load(Ordering::Relaxed) == token {
            return Err(Error::WouldDeadlock {
                path: self.path.clone(),
            });
        }
        let mutex = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.locker.lock(Lock::Exclusive)?;
        self.owner.store(token, Ordering::Relaxed);
        self.file_owner.store(token, Ordering::Relaxed);
        let lock = WriteLock {
            db: self,
            _mutex: mutex,
        };
        self.refresh()?;
        crate::commit::recover(&lock)?;
        Ok(lock)
    }
}
