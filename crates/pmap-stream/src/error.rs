//! [`Error`]: what can go wrong in a stream, and how it travels inside `io::Error`.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `pmap-stream`. Inside the standard I/O traits these travel as
/// the inner error of an [`io::Error`] (get them back with [`Error::from_io`]); the other methods
/// return them directly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mapping layer refused: opening, growing, flushing or trimming the file. A full disk
    /// is [`pmap::Error::NoSpace`] (a growable stream reserves the blocks it grows into, so it
    /// gets this from `write` rather than dying of `SIGBUS`), which the I/O traits carry as
    /// [`io::ErrorKind::StorageFull`].
    #[error(transparent)]
    Map(#[from] pmap::Error),
    /// A write through a stream whose mapping is read-only.
    #[error("{path} is mapped read-only; the stream refuses writes")]
    ReadOnly {
        /// The mapped file.
        path: PathBuf,
    },
    /// A write that does not fit in a fixed-size stream; nothing was written.
    #[error(
        "write of {len} bytes at position {pos} does not fit the fixed {end}-byte stream over \
         {path}; nothing was written"
    )]
    NoRoom {
        /// The mapped file.
        path: PathBuf,
        /// Where the write would have started.
        pos: u64,
        /// Bytes asked to write.
        len: usize,
        /// The stream's fixed end.
        end: u64,
    },
    /// A seek whose target lies before byte 0 or beyond `u64::MAX`; the position is unchanged.
    #[error("seek by {offset} from byte {base} lands outside 0..=u64::MAX")]
    SeekOutOfRange {
        /// The position the seek was relative to.
        base: u64,
        /// The signed distance asked for.
        offset: i64,
    },
    /// A position plus a length that does not fit this platform's address space.
    #[error("a write of {len} bytes at position {pos} does not fit the address space")]
    TooLarge {
        /// Where the write would have started.
        pos: u64,
        /// Bytes asked to write.
        len: usize,
    },
    /// An append writer was asked for zero bytes of capacity.
    #[error("{path}: an append writer needs a capacity of at least one byte")]
    ZeroCapacity {
        /// The file concerned.
        path: PathBuf,
    },
    /// A [`LineSink`](crate::LineSink) was asked to roll at a size of zero bytes.
    #[error("{path}: a sink rolling by size needs a size of at least one byte")]
    ZeroRollSize {
        /// The sink's file.
        path: PathBuf,
    },
    /// [`LineSink::roll`](crate::LineSink::roll) on a sink opened without rolling: such a
    /// sink reaches its one file without a load per line, so it cannot swap it. Open it with
    /// [`Roll::OnRequest`](crate::Roll::OnRequest) (or a size or a period) to roll it.
    #[error("{path}: the sink was opened without rolling (Roll::OnRequest lets it roll)")]
    NotRolling {
        /// The sink's file.
        path: PathBuf,
    },
    /// A rolling [`LineSink`](crate::LineSink) was given a path with no file name (`/`, `..`),
    /// so its rolled files would have no name to take.
    #[error("{path}: a rolling sink needs a path that ends in a file name")]
    NoFileName {
        /// The path given.
        path: PathBuf,
    },
    /// An operating-system call outside the mapping failed, or the body of [`crate::with_stream`]
    /// returned an I/O error that carried no `pmap-stream` error.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`stream` for the body of [`crate::with_stream`]).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The [`io::ErrorKind`] this error travels under inside the I/O traits.
    #[must_use]
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Map(pmap::Error::Io { source, .. }) | Error::Io { source, .. } => source.kind(),
            Error::Map(pmap::Error::NotFound { .. }) => io::ErrorKind::NotFound,
            Error::Map(pmap::Error::PermissionDenied { .. } | pmap::Error::ReadOnlyFile { .. })
            | Error::ReadOnly { .. } => io::ErrorKind::PermissionDenied,
            Error::Map(pmap::Error::IsDirectory { .. }) => io::ErrorKind::IsADirectory,
            Error::NoRoom { .. }
            | Error::Map(pmap::Error::FixedLength { .. } | pmap::Error::NoSpace { .. }) => {
                io::ErrorKind::StorageFull
            }
            Error::SeekOutOfRange { .. }
            | Error::TooLarge { .. }
            | Error::ZeroCapacity { .. }
            | Error::ZeroRollSize { .. }
            | Error::NoFileName { .. } => io::ErrorKind::InvalidInput,
            Error::NotRolling { .. } => io::ErrorKind::Unsupported,
            Error::Map(_) => io::ErrorKind::Other,
        }
    }

    /// Takes back the typed error an I/O trait method wrapped; any other I/O error becomes
    /// [`Error::Io`] with `op` and `path`.
    pub fn from_io(error: io::Error, op: &'static str, path: impl Into<PathBuf>) -> Error {
        if !error.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Io {
                op,
                path: path.into(),
                source: error,
            };
        }
        let kind = error.kind();
        match error.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(typed)) => *typed,
            Some(Err(other)) => Error::Io {
                op,
                path: path.into(),
                source: io::Error::new(kind, other),
            },
            None => Error::Io {
                op,
                path: path.into(),
                source: io::Error::from(kind),
            },
        }
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        io::Error::new(error.kind(), error)
    }
}
