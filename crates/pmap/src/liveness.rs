//! Liveness marks: a handle shows that it is alive by holding a shared lock on one byte of a
//! file, far past any data, which the kernel drops when the handle is closed or its process
//! dies, however it dies (`SIGKILL`, a crash, in any pid namespace). A lock-free protocol in
//! shared memory writes the mark's id into a shared word, and whoever finds the word taken asks
//! [`LivenessMark::is_held`] to tell a dead owner from a slow one, without pids (which are
//! recycled and differ between namespaces) and without a system call on the owner's side.
//!
//! Linux only (open file description locks, `F_OFD_SETLK`): they belong to one open of the
//! file, so two handles in one process are two marks, and closing another descriptor of the
//! same file releases nothing (a POSIX record lock would be released by any close in the
//! process, which is why the other Unixes are not served: see [`LivenessMark::take`]).

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The byte of mark `id` is `MARK_BASE + id`: past any file pounds makes (2^62 bytes), and
/// locks there neither block nor are blocked by any I/O.
const MARK_BASE: u64 = 1 << 62;

/// How many ids [`LivenessMark::take`] tries before it gives up (each taken by another live
/// handle only by a one-in-two-billion chance).
const TAKE_ATTEMPTS: u32 = 64;

/// A held liveness mark: one id, unique among the live marks on its file, held until this is
/// dropped (or the process dies).
///
/// A copy inherited by a forked child shares the parent's open file description, and so its
/// lock: dropping it there releases nothing (the parent's mark stays held while the parent's
/// handle lives, and while the child's copy of the descriptor stays open).
#[derive(Debug)]
pub struct LivenessMark {
    file: File,
    path: PathBuf,
    id: u32,
    /// The process that took it: the only one whose drop releases it.
    taken_in: u32,
}

impl LivenessMark {
    /// Takes a mark with a fresh id, from 1 to `2^31 - 1`, on the file at `path` (through a
    /// read-only open of its own). `Ok(None)` where the platform has no per-open byte-range
    /// lock (every system but Linux, for now): callers fall back to a lock the kernel holds
    /// for them.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened or locked (`ENOLCK`: a file system without
    /// locks); [`Error::Unsupported`] if every id tried was taken.
    pub fn take(path: impl AsRef<Path>) -> Result<Option<LivenessMark>> {
        let path = path.as_ref();
        if !crate::os::HAS_MARKS {
            return Ok(None);
        }
        let file = File::open(path).map_err(io_error("open", path))?;
        LivenessMark::on_file(file, path)
    }

    /// [`LivenessMark::take`] through `file` (a handle of its own: the mark lives on its open
    /// file description).
    ///
    /// [`Self::taken_here`] tells a copy inherited through `fork` from the mark itself.
    pub(crate) fn on_file(file: File, path: &Path) -> Result<Option<LivenessMark>> {
        if !crate::os::HAS_MARKS {
            return Ok(None);
        }
        let io = |op| io_error(op, path);
        let random = std::collections::hash_map::RandomState::new();
        for attempt in 0..TAKE_ATTEMPTS {
            let mut hasher = random.build_hasher();
            hasher.write_u32(std::process::id());
            hasher.write_u32(attempt);
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            let id = (hasher.finish() as u32 & 0x7fff_ffff).max(1);
            crate::os::hold_mark(&file, MARK_BASE + u64::from(id)).map_err(io("lock"))?;
            // Two handles that chose the same id at once both see the other and both try again.
            if !crate::os::mark_held_elsewhere(&file, MARK_BASE + u64::from(id))
                .map_err(io("lock"))?
            {
                return Ok(Some(LivenessMark {
                    file,
                    path: path.to_path_buf(),
                    id,
                    taken_in: crate::current_pid(),
                }));
            }
            crate::os::release_mark(&file, MARK_BASE + u64::from(id)).map_err(io("unlock"))?;
        }
        Err(Error::Unsupported {
            path: path.to_path_buf(),
            op: "take a liveness mark",
            reason: "every id tried is held by another handle",
        })
    }

    /// Whether this process took the mark: false in a forked child, whose copy stands for the
    /// parent's mark, which dies with the parent's handle (a process that writes a mark's id
    /// into a shared word takes a mark of its own first).
    #[must_use]
    pub fn taken_here(&self) -> bool {
        crate::current_pid() == self.taken_in
    }

    /// This mark's id: never 0, below `2^31`.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether some other handle, in any process, holds mark `id` on this mark's file: `false`
    /// means that whoever wrote `id` anywhere is gone (its handle was closed or its process
    /// died). One system call.
    ///
    /// # Errors
    /// [`Error::Io`] when the kernel cannot answer.
    pub fn is_held(&self, id: u32) -> Result<bool> {
        crate::os::mark_held_elsewhere(&self.file, MARK_BASE + u64::from(id)).map_err(|source| {
            Error::Io {
                op: "test lock",
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// The byte of [`ShareLock`]s: just below the liveness marks, as far past any data.
const SHARE_BYTE: u64 = MARK_BASE - 1;

/// How a handle shares its file, held as a lock on one byte past any data for the handle's
/// life: [`crate::Lock::Shared`] by every handle that shares the file with others,
/// [`crate::Lock::Exclusive`] by one that must be alone with it (a handle reading a memory copy
/// of the file, [`crate::MapOptions::memory_copy`], whose view would not see the others'
/// writes, and whose writes they would not see in order). The kernel drops it when the handle
/// closes or its process dies. Linux only, like [`LivenessMark`]; like a mark, a copy inherited
/// by a forked child releases nothing when dropped there.
#[derive(Debug)]
pub struct ShareLock {
    file: File,
    path: PathBuf,
    /// The process that took it: the only one whose drop releases it.
    taken_in: u32,
}

impl ShareLock {
    /// Takes the share lock of kind `lock` on the file at `path`, without waiting, through an
    /// open of its own (read-write for an exclusive lock). `Ok(None)` where the platform has no
    /// per-open byte-range lock (every system but Linux, for now), for [`crate::Lock::None`],
    /// and for a shared lock on a file system without locks (`ENOLCK`), where no handle can
    /// take an exclusive one.
    ///
    /// # Errors
    /// [`Error::LockContended`] when another handle holds a conflicting one (any other handle,
    /// for an exclusive lock; an exclusive holder, for a shared one); [`Error::Io`] when the
    /// file cannot be opened or locked.
    pub fn take(path: impl AsRef<Path>, lock: crate::Lock) -> Result<Option<ShareLock>> {
        let path = path.as_ref();
        if !crate::os::HAS_MARKS || lock == crate::Lock::None {
            return Ok(None);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(lock == crate::Lock::Exclusive)
            .open(path)
            .map_err(io_error("open", path))?;
        let taken = match crate::os::try_lock_byte(&file, SHARE_BYTE, lock) {
            // Where the file system has no locks, no handle can hold an exclusive share lock
            // either (taking it fails the same way): a shared one has nothing to keep out.
            Err(e) if lock == crate::Lock::Shared && crate::os::locks_unsupported(&e) => {
                return Ok(None);
            }
            other => other.map_err(io_error("lock", path))?,
        };
        if !taken {
            return Err(Error::LockContended {
                path: path.to_path_buf(),
                kind: lock,
            });
        }
        Ok(Some(ShareLock {
            file,
            path: path.to_path_buf(),
            taken_in: crate::current_pid(),
        }))
    }

    /// The file this lock was taken on, as it was named.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ShareLock {
    fn drop(&mut self) {
        // The handle is this lock's own: closing it releases the lock; this only says so first.
        // Not in a forked child, whose copy shares the parent's open file description: there
        // the unlock would release the parent's lock (the close releases nothing while the
        // parent's descriptor stays open).
        if crate::current_pid() == self.taken_in {
            let _ = crate::os::release_mark(&self.file, SHARE_BYTE);
        }
    }
}

/// The [`Error::Io`] of operation `op` on `path`.
fn io_error<'a>(op: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl Drop for LivenessMark {
    fn drop(&mut self) {
        // Closing the handle releases the mark too, unless the open file description is
        // shared (a handle cloned from a map's): release it explicitly. A failure leaves it to
        // the close. Not in a forked child: the description is the parent's too, and an unlock
        // there would release the parent's mark under it.
        if self.taken_here() {
            let _ = crate::os::release_mark(&self.file, MARK_BASE + u64::from(self.id));
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_held_while_it_lives_and_not_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marks");
        std::fs::write(&path, b"x").unwrap();
        let first = LivenessMark::take(&path).unwrap().unwrap();
        let second = LivenessMark::take(&path).unwrap().unwrap();
        assert_ne!(first.id(), second.id());
        assert!(second.is_held(first.id()).unwrap());
        assert!(first.is_held(second.id()).unwrap());
        // Never taken.
        let free = (1..100)
            .find(|id| *id != first.id() && *id != second.id())
            .unwrap();
        assert!(!first.is_held(free).unwrap());
        let gone = first.id();
        drop(first);
        assert!(!second.is_held(gone).unwrap());
    }

    /// A forked child shares its parent's open file descriptions, so an explicit unlock in the
    /// child would unlock the parent's: a child that drops its copies (returning through its
    /// destructors) must leave the parent's mark and share lock held.
    #[test]
    fn a_forked_child_dropping_its_copies_leaves_the_parents_mark_and_share_lock_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forked");
        std::fs::write(&path, b"x").unwrap();
        let mark = LivenessMark::take(&path).unwrap().unwrap();
        let share = ShareLock::take(&path, crate::Lock::Shared)
            .unwrap()
            .unwrap();
        let id = mark.id();
        let mut copies = Some((mark, share));
        let pid = crate::testing::fork_and_run(|| {
            drop(copies.take());
            0
        })
        .unwrap();
        let exit = crate::testing::wait_child(pid, std::time::Duration::from_secs(30)).unwrap();
        assert_eq!(exit, Some(crate::testing::ChildExit::Code(0)));
        let observer = LivenessMark::take(&path).unwrap().unwrap();
        assert!(
            observer.is_held(id).unwrap(),
            "the parent's mark was released"
        );
        assert!(
            matches!(
                ShareLock::take(&path, crate::Lock::Exclusive),
                Err(Error::LockContended { .. })
            ),
            "the parent's share lock was released"
        );
        // The parent's own drop still releases them.
        drop(copies);
        assert!(!observer.is_held(id).unwrap());
        assert!(
            ShareLock::take(&path, crate::Lock::Exclusive)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_exclusive_share_lock_excludes_every_other_handle_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("share");
        std::fs::write(&path, b"x").unwrap();
        let first = ShareLock::take(&path, crate::Lock::Shared)
            .unwrap()
            .unwrap();
        let second = ShareLock::take(&path, crate::Lock::Shared)
            .unwrap()
            .unwrap();
        assert!(matches!(
            ShareLock::take(&path, crate::Lock::Exclusive),
            Err(Error::LockContended { .. })
        ));
        drop((first, second));
        let alone = ShareLock::take(&path, crate::Lock::Exclusive)
            .unwrap()
            .unwrap();
        // Two handles in one thread: the second is refused, not deadlocked.
        assert!(matches!(
            ShareLock::take(&path, crate::Lock::Shared),
            Err(Error::LockContended { .. })
        ));
        assert!(matches!(
            ShareLock::take(&path, crate::Lock::Exclusive),
            Err(Error::LockContended { .. })
        ));
        drop(alone);
        assert!(
            ShareLock::take(&path, crate::Lock::Shared)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_mark_taken_through_a_map_is_released_when_dropped_while_the_map_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marks");
        let map = crate::Map::create(&path, 4096).unwrap().into_shared();
        let mark = map.take_liveness_mark().unwrap().unwrap();
        let other = LivenessMark::take(&path).unwrap().unwrap();
        let id = mark.id();
        assert!(other.is_held(id).unwrap());
        // The mark shares the map's open file description, which stays open.
        drop(mark);
        assert!(!other.is_held(id).unwrap());
        drop(map);
    }
}
