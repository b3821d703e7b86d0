//! [`Error`]: what can go wrong in `pmap`, with the path, or the offset, length and bound that
//! were violated.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `pmap`. File errors carry the path; access errors carry the
/// offset, length and bound that were violated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What pmap was doing (`open`, `map`, `extend`, `flush`, ...).
        op: &'static str,
        /// The file concerned (`<anonymous>` for memory-only mappings).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path names a directory, not a file.
    #[error("{path} is a directory, not a file")]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The file does not exist and the options said it must.
    #[error("{path} does not exist")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The file is read-only (by its permissions) and was opened for writing.
    #[error("{path} is read-only and cannot be opened for writing")]
    ReadOnlyFile {
        /// The path given.
        path: PathBuf,
    },
    /// The operating system refused access to the file.
    #[error("permission denied opening {path}")]
    PermissionDenied {
        /// The path given.
        path: PathBuf,
    },
    /// A write was attempted through a read-only mapping.
    #[error("{path} is mapped read-only; {op} needs a read-write mapping")]
    ReadOnlyMapping {
        /// The mapped file.
        path: PathBuf,
        /// The refused operation.
        op: &'static str,
    },
    /// A mapping of zero bytes was asked for, or the file to map read-only is empty.
    #[error("{path}: cannot map zero bytes")]
    ZeroLength {
        /// The file concerned.
        path: PathBuf,
    },
    /// The view asked for lies (partly) beyond the end of a file that may not be extended.
    #[error(
        "{path}: view at offset {offset} of {len} bytes lies past the end of the {file_len}-byte file"
    )]
    ViewPastEnd {
        /// The file concerned.
        path: PathBuf,
        /// Start of the view in the file.
        offset: u64,
        /// Length of the view (0 when the view runs to the end of the file).
        len: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// An access at `offset` of `len` bytes does not fit in the `map_len`-byte mapping.
    #[error("access of {len} bytes at offset {offset} is outside the {map_len}-byte mapping")]
    OutOfBounds {
        /// Start of the access within the mapping.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Length of the mapping.
        map_len: usize,
    },
    /// An access at `offset` needs `align`-byte alignment and the address is not aligned.
    #[error("offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// Offset within the mapping.
        offset: usize,
        /// The alignment required.
        align: usize,
    },
    /// A size does not fit this platform's address space (or overflows `u64`).
    #[error("{path}: size {requested} does not fit this platform's address space")]
    TooLarge {
        /// The file (or `<anonymous>`) the size was asked of.
        path: PathBuf,
        /// The size asked for.
        requested: u64,
    },
    /// The mapping was opened with a fixed view length, so it cannot grow or follow the file.
    #[error("{path}: the view has a fixed length of {len} bytes and cannot grow")]
    FixedLength {
        /// The file concerned.
        path: PathBuf,
        /// The fixed length.
        len: usize,
    },
    /// The file system could not reserve the blocks a creation or growth needs (`ENOSPC`, a
    /// full disk, or `EDQUOT`, a quota). Nothing was mapped over the missing space: the file
    /// keeps its old length and a growing view its old bytes.
    #[error(
        "{path}: not enough disk space to grow the file to {len} bytes: {requested} more bytes \
         needed, {}: {source}",
        available_note(*.available)
    )]
    NoSpace {
        /// The file concerned.
        path: PathBuf,
        /// The bytes the file had to grow by.
        requested: u64,
        /// The length the file was to reach.
        len: u64,
        /// The bytes the file system reports available to this user once the request was
        /// refused, when it can tell.
        available: Option<u64>,
        /// The underlying error (`ENOSPC` or `EDQUOT`).
        #[source]
        source: io::Error,
    },
    /// A non-blocking lock could not be taken because another handle holds a conflicting one.
    #[error("{path} is locked elsewhere ({kind:?} lock not available)")]
    LockContended {
        /// The file concerned.
        path: PathBuf,
        /// The lock asked for.
        kind: crate::Lock,
    },
    /// The operation does not apply to this mapping or is not available on this platform
    /// (`DontNeed` advice on an anonymous mapping, which would zero it; locking memory on a
    /// platform pmap has no call for).
    #[error("{path}: {op} is not supported here: {reason}")]
    Unsupported {
        /// The mapped file (`<anonymous>` for memory-only mappings).
        path: PathBuf,
        /// The refused operation.
        op: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Locking a range in memory (`mlock`) or unlocking it failed: `EPERM` without the
    /// privilege, `ENOMEM` past `RLIMIT_MEMLOCK`, or another error of the call.
    #[error("{path}: cannot {op} {len} bytes at offset {offset} in memory: {source}")]
    MemoryLock {
        /// `lock` or `unlock`.
        op: &'static str,
        /// The mapped file (`<anonymous>` for memory-only mappings).
        path: PathBuf,
        /// Start of the range within the view.
        offset: usize,
        /// Length of the range.
        len: usize,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not a ring this pmap can open: a wrong magic number, version or geometry,
    /// or head and tail counters further apart than the capacity.
    #[error("{path} is not a usable ring file: {reason}")]
    RingFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The end of a ring file asked for (its one producer or its one consumer) is held by a
    /// live process (this one, if it opened that end already).
    #[error("{path}: the ring's {role} end is held by process {pid}")]
    RingRoleTaken {
        /// The ring file.
        path: PathBuf,
        /// `producer` or `consumer`.
        role: &'static str,
        /// The process holding it.
        pid: u32,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn available_note(available: Option<u64>) -> String {
    match available {
        Some(bytes) => format!("{bytes} bytes available"),
        None => "free space unknown".to_owned(),
    }
}

impl Error {
    /// Classifies an I/O error from opening a file into the specific variants users match on.
    pub(crate) fn from_open(path: PathBuf, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => Error::NotFound { path },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied { path },
            io::ErrorKind::IsADirectory => Error::IsDirectory { path },
            _ => Error::Io {
                op: "open",
                path,
                source,
            },
        }
    }
}
