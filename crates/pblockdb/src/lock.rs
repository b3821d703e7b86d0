//! The writer lock: an in-process mutex, then across processes either the writer word in the
//! header (where the platform has liveness marks: an atomic compare-and-swap, no system call)
//! or an exclusive advisory file lock; with the owner words that turn a lock a thread already
//! holds (through this handle or another) into a typed error instead of a deadlock, and the
//! mutex's holder process that does the same for a process forked while another thread held
//! it. Taking it recovers what a dead writer left. The protocol and its argument are in
//! `docs/pblockdb-format.md` ("The writer lock").

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use pmap::{LivenessMark, Lock, SharedMap};

use crate::format::OFF_WRITER;
use crate::{Db, Error, Result};

/// A number unique to the calling thread while it lives (the address of a thread-local).
pub(crate) fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|token| std::ptr::from_ref(token) as usize)
}

/// How long a writer in a process forked since the handle opened waits, at most, for a mutex
/// holder that has not yet stored its process (it does so right after locking, so a live one
/// takes a few instructions): past it the holder is taken for a thread of the parent that was
/// there at the fork, and the write is refused.
const FORKED_HOLDER_WAIT: Duration = Duration::from_millis(100);

/// The in-process writer mutex, which keeps the buffers of the last write transaction's
/// levels (the next one stages into them), with the process its holder runs in.
///
/// Why the process: `fork` copies a locked mutex into the child, but only the forking thread.
/// A mutex another thread held at the fork is locked in the child forever, and a writer there
/// would wait forever. The holder stores its process id just after locking and clears it just
/// before unlocking; a writer that finds the mutex locked reads it. Its own process: a thread
/// here holds it, wait. Another process: the holder is a parent's thread, which does not exist
/// here, so [`crate::Error::ForkedWhileWriting`]. None yet: a holder between its lock and its
/// store; in the process that opened the handle (never forked since) it can only be one of
/// this process's threads, so wait; in a forked one it may be a parent's thread caught there
/// at the fork, so wait at most [`FORKED_HOLDER_WAIT`] for the store, then refuse.
#[derive(Debug)]
pub(crate) struct WriterMutex {
    buffers: Mutex<Vec<crate::staged::Staged>>,
    /// The holder's process id, 0 while none is stored.
    holder: AtomicU32,
    /// The process that opened the handle.
    opened_in: u32,
}

impl WriterMutex {
    pub(crate) fn new() -> WriterMutex {
        WriterMutex {
            buffers: Mutex::new(Vec::new()),
            holder: AtomicU32::new(0),
            opened_in: pmap::current_pid(),
        }
    }

    /// Locks the mutex for a write transaction on the file at `path`.
    fn lock(&self, path: &Path) -> crate::Result<WriterGuard<'_>> {
        let me = pmap::current_pid();
        let buffers = match self.buffers.try_lock() {
            Ok(buffers) => buffers,
            // A panic in a transaction leaves the buffers as reusable as any: they are
            // cleared before each use.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => self.lock_held(me, path)?,
        };
        self.holder.store(me, Ordering::Relaxed);
        Ok(WriterGuard {
            mutex: self,
            buffers,
        })
    }

    /// [`Self::lock`] when the mutex was found locked.
    fn lock_held(
        &self,
        me: u32,
        path: &Path,
    ) -> crate::Result<MutexGuard<'_, Vec<crate::staged::Staged>>> {
        let forked = me != self.opened_in;
        let deadline = Instant::now() + FORKED_HOLDER_WAIT;
        loop {
            let holder = self.holder.load(Ordering::Relaxed);
            if holder == me || (holder == 0 && !forked) {
                return Ok(self.buffers.lock().unwrap_or_else(PoisonError::into_inner));
            }
            if holder != 0 || Instant::now() >= deadline {
                return Err(crate::Error::ForkedWhileWriting {
                    path: path.to_path_buf(),
                });
            }
            match self.buffers.try_lock() {
                Ok(buffers) => return Ok(buffers),
                Err(TryLockError::Poisoned(poisoned)) => return Ok(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => std::thread::yield_now(),
            }
        }
    }
}

/// The locked [`WriterMutex`]: its buffers, and the holder's process cleared before unlocking.
#[derive(Debug)]
pub(crate) struct WriterGuard<'a> {
    mutex: &'a WriterMutex,
    buffers: MutexGuard<'a, Vec<crate::staged::Staged>>,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        // Before `buffers` unlocks (fields drop after this body).
        self.mutex.holder.store(0, Ordering::Relaxed);
    }
}

impl Deref for WriterGuard<'_> {
    type Target = Vec<crate::staged::Staged>;
    fn deref(&self) -> &Self::Target {
        &self.buffers
    }
}

impl DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.buffers
    }
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
    pub(crate) spare: WriterGuard<'a>,
    /// The process that took the lock. A forked child's copy (of a transaction open at the
    /// fork) is not the lock: the parent holds it, through the word and the mark that the
    /// child shares with it.
    taken_in: u32,
}

impl WriteLock<'_> {
    /// Refuses to write under a lock this process did not take: committing a forked child's
    /// copy of a transaction would apply it a second time, beside the parent's.
    pub(crate) fn held_here(&self) -> Result<()> {
        if pmap::current_pid() == self.taken_in {
            Ok(())
        } else {
            Err(Error::ForkedWhileWriting {
                path: self.db.path.clone(),
            })
        }
    }
}

impl Drop for WriteLock<'_> {
    fn drop(&mut self) {
        // A forked child's copy releases nothing: the writer word and the file lock are the
        // parent's, which still holds them (the owner words are this process's own copies,
        // which no thread here holds).
        if self.held_here().is_err() {
            return;
        }
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
        let mutex = self.writer.lock(&self.path)?;
        match &self.mark {
            Some(mark) => {
                let mut mark = mark.lock().unwrap_or_else(PoisonError::into_inner);
                if !mark.taken_here() {
                    // A forked child's copy stands for the parent's mark, which dies with the
                    // parent's handle: a word holding its id could then be taken over under
                    // this process. This process writes with a mark of its own (the copy,
                    // dropped, releases nothing of the parent's).
                    if let Some(own) = self.locker.take_liveness_mark()? {
                        *mark = own;
                    }
                }
                WriterWord { map: &self.locker }.acquire(&mark)?;
            }
            None => self.locker.lock(Lock::Exclusive)?,
        }
        self.owner.store(token, Ordering::Relaxed);
        self.file_owner.store(token, Ordering::Relaxed);
        let lock = WriteLock {
            db: self,
            spare: mutex,
            taken_in: pmap::current_pid(),
        };
        self.refresh()?;
        crate::commit::recover(&lock)?;
        Ok(lock)
    }
}
