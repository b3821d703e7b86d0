//! The writer lock: an in-process mutex, then across processes either the writer word in the
//! header (where the platform has liveness marks: an atomic compare-and-swap, no system call)
//! or an exclusive advisory file lock; with the owner words that turn a lock a thread already
//! holds (through this handle or another) into a typed error instead of a deadlock. Taking it
//! recovers what a dead writer left. The protocol and its argument are in
//! `docs/pblockdb-format.md` ("The writer lock").

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pmap::{LivenessMark, Lock, SharedMap};

use crate::format::OFF_WRITER;
use crate::{Db, Error, Result};

/// A number unique to the calling thread while it lives (the address of a thread-local).
pub(crate) fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|token| std::ptr::from_ref(token) as usize)
}

/// Set in the writer word while a writer waits for it to be released (so the holder wakes it).
const WAITING: u32 = 1 << 31;

/// How many times a writer re-reads a held word before it asks whether the holder lives and
/// sleeps: a commit of a few changes ends within these few microseconds.
const SPINS: u32 = 200;

/// How long a waiting writer sleeps before it asks again whether the holder lives: the
/// holder's release wakes it at once, but a holder's death wakes nobody.
const RECHECK: Duration = Duration::from_millis(10);

/// The writer word protocol (header offset [`OFF_WRITER`]): 0 is free; a writer takes it with
/// a compare-and-swap from 0 to its liveness mark's id (acquire) and releases it with a swap to
/// 0 (release), so everything a commit stored happens before the next writer's reads. A word
/// whose id no live handle's mark holds belonged to a writer that died (or is damage): it is
/// taken over the same way, from the id seen, and the taker's recovery then rolls back
/// whatever that writer left unfinished. A waiter sets [`WAITING`] and sleeps on the word
/// (a futex on the file's page, across processes); a releaser that sees the bit wakes every
/// sleeper.
struct WriterWord<'a> {
    map: &'a SharedMap,
}

impl WriterWord<'_> {
    fn acquire(&self, mark: &LivenessMark) -> Result<()> {
        let word = self.map.atomic_u32(OFF_WRITER)?;
        let me = mark.id();
        let mut spins = 0;
        loop {
            let seen = word.load(Ordering::Relaxed);
            if seen == 0 {
                if word
                    .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let holder = seen & !WAITING;
            // Our own id is held by our own mark: a process forked from this one and writing
            // through the inherited handle. It is waited for like any live holder.
            if holder != me && !mark.is_held(holder)? {
                if word
                    .compare_exchange(seen, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if seen & WAITING == 0
                && word
                    .compare_exchange(seen, seen | WAITING, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            self.map
                .wait_u32(OFF_WRITER, seen | WAITING, Some(RECHECK))?;
        }
    }

    fn release(&self) {
        // The word was mapped when the lock was taken and stays mapped with the handle; a
        // failure here would be a bounds error that `acquire` met first.
        if let Ok(word) = self.map.atomic_u32(OFF_WRITER) {
            if word.swap(0, Ordering::Release) & WAITING != 0 {
                let _ = self.map.wake_u32(OFF_WRITER);
            }
        }
    }
}

/// Proof that the writer lock is held; released on drop.
#[derive(Debug)]
pub(crate) struct WriteLock<'a> {
    pub(crate) db: &'a Db,
    /// The in-process mutex, and the staging buffers it keeps between transactions.
    pub(crate) spare: MutexGuard<'a, Vec<crate::staged::Staged>>,
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
        match &self.db.mark {
            Some(_) => WriterWord {
                map: &self.db.locker,
            }
            .release(),
            // An unlock that fails leaves the lock to be released when the file closes;
            // nothing better can be done from a destructor.
            None => {
                let _ = self.db.locker.unlock();
            }
        }
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
        self.read_view().storage.check_writer_process(&self.path)?;
        let mutex = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &self.mark {
            Some(mark) => WriterWord { map: &self.locker }.acquire(mark)?,
            None => self.locker.lock(Lock::Exclusive)?,
        }
        self.owner.store(token, Ordering::Relaxed);
        self.file_owner.store(token, Ordering::Relaxed);
        let lock = WriteLock {
            db: self,
            spare: mutex,
        };
        self.refresh()?;
        crate::commit::recover(&lock)?;
        Ok(lock)
    }
}
