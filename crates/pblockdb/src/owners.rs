//! Which thread of this process holds each open file's writer lock, shared by every handle on
//! the file, so that a thread never waits for a file lock it holds itself through another
//! handle (the lock is per open file, so two handles in one process exclude each other).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// A file's identity: device and inode on Unix, so that two paths (or hard links) to one file
/// are one file; elsewhere, or when the file cannot be examined, its canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileId {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

impl FileId {
    /// The identity of the file at `path` (which the caller has just opened).
    pub(crate) fn of(path: &Path) -> FileId {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if let Ok(meta) = std::fs::metadata(path) {
                return FileId::Inode(meta.dev(), meta.ino());
            }
        }
        FileId::Path(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
    }
}

/// Every file a live handle has open, with its owner word. Dead entries are pruned at each
/// lookup, so the list stays as long as the number of files open.
static FILES: Mutex<Vec<(FileId, Weak<AtomicUsize>)>> = Mutex::new(Vec::new());

/// The owner word shared by every handle of this process on `file`: the
/// [`crate::db::thread_token`] of the thread holding its writer lock, 0 when none.
pub(crate) fn owner_of(file: FileId) -> Arc<AtomicUsize> {
    // The list is never left half-updated by a panic: each change is one push or retain.
    let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
    files.retain(|(_, owner)| owner.strong_count() > 0);
    if let Some(owner) = files
        .iter()
        .find(|(id, _)| *id == file)
        .and_then(|(_, owner)| owner.upgrade())
    {
        return owner;
    }
    let owner = Arc::new(AtomicUsize::new(0));
    files.push((file, Arc::downgrade(&owner)));
    owner
}
