//! The one error type of plog: every failure, typed, with the path and the field or value it concerns.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `plog`. Errors about a file carry its path; errors about a
/// field carry the field's name and the value found, so a damaged file can be diagnosed from
/// the message alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mapping layer failed (the file is missing, a directory, read-only, ...).
    #[error(transparent)]
    Map(#[from] pmap::Error),
    /// The file does not start with the plog magic: it is not a plog file, or its first bytes
    /// were damaged (a text-mode transfer turns the `\r\n` or `\n` of the magic into something
    /// else).
    #[error("{path} is not a plog file (bad magic: {found})")]
    BadMagic {
        /// The file concerned.
        path: PathBuf,
        /// The first bytes found, in hex.
        found: String,
    },
    /// The file was written by a newer, incompatible version of plog.
    #[error(
        "{path}: plog format version {found} (readable by version {compat} and later) is not supported; this build reads up to version {supported}"
    )]
    UnsupportedVersion {
        /// The file concerned.
        path: PathBuf,
        /// The version that wrote the file.
        found: u32,
        /// The oldest format version able to read the file.
        compat: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The file is a format 1 log (before claim words). This build neither reads nor writes
    /// it: a format 1 writer and a format 2 writer on one file would damage each other's
    /// records. Dump it with the build that wrote it, or move it aside and let a new log be
    /// created.
    #[error(
        "{path} is a plog format {found} log; this build reads and writes format {supported} only (dump it with the plog that wrote it, or move it aside)"
    )]
    OldFormat {
        /// The file concerned.
        path: PathBuf,
        /// The version that wrote the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The header page is lost (all zero, as a power loss can leave a young file) while the ring
    /// holds data that no geometry explains: the file is left alone rather than initialised
    /// over it.
    #[error(
        "{path}: the header is all zero but the ring holds data, and no geometry makes a valid record of it; the file was left untouched"
    )]
    HeaderLost {
        /// The file concerned.
        path: PathBuf,
    },
    /// A header field holds a value no valid plog file can hold.
    #[error("{path}: corrupt header field `{field}` = {value}")]
    CorruptHeader {
        /// The file concerned.
        path: PathBuf,
        /// The field's name, as in `docs/plog-format.md`.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The file is shorter than its header says it must be: at open, or found by a reader,
    /// a follower or a cursor operation after another program truncated it under the open
    /// log (see [`crate::Reader::try_next_ref`]).
    #[error("{path} is truncated: {found} bytes, the header needs {expected}")]
    Truncated {
        /// The file concerned.
        path: PathBuf,
        /// The length the header requires.
        expected: u64,
        /// The file's actual length.
        found: u64,
    },
    /// An existing log has a different geometry from the one explicitly asked for.
    #[error(
        "{path}: asked for {asked_blocks} blocks of {asked_block_size} bytes in {asked_lanes} lane(s), the file has {found_blocks} blocks of {found_block_size} bytes in {found_lanes}"
    )]
    GeometryMismatch {
        /// The file concerned.
        path: PathBuf,
        /// Block count asked for.
        asked_blocks: u64,
        /// Block size asked for.
        asked_block_size: u32,
        /// Block count in the file.
        found_blocks: u64,
        /// Block size in the file.
        found_block_size: u32,
        /// Writer lanes asked for (1 when not asked).
        asked_lanes: u32,
        /// Writer lanes in the file.
        found_lanes: u32,
    },
    /// The geometry asked for is not allowed (see [`crate::LogOptions`]).
    #[error("{path}: invalid geometry: {field} = {value} ({rule})")]
    InvalidGeometry {
        /// The path given.
        path: PathBuf,
        /// `blocks`, `block_size` or `lanes`.
        field: &'static str,
        /// The value asked for.
        value: u64,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The message can never fit in this log: a record may take at most half the ring.
    #[error(
        "message of {size} bytes is too large for this log (at most {max} bytes with this tag)"
    )]
    MessageTooLarge {
        /// The payload's length.
        size: usize,
        /// The largest payload this log accepts with the same tag.
        max: usize,
    },
    /// The tag is longer than [`crate::MAX_TAG_LEN`] bytes.
    #[error("tag of {len} bytes is too long (at most {max})")]
    TagTooLong {
        /// The tag's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A write was attempted through a log opened read-only.
    #[error("{path} is open read-only; {op} needs a read-write log")]
    ReadOnly {
        /// The file concerned.
        path: PathBuf,
        /// The refused operation.
        op: &'static str,
    },
    /// The 64-bit reservation counter reached its limit (2^62 - 2^33 blocks); the log cannot
    /// take more records, and the refused write reserved nothing. At ten billion blocks a
    /// second that takes fourteen years.
    #[error("{path}: the record counter is exhausted (ids stop below 2^62 - 2^33)")]
    CounterExhausted {
        /// The file concerned.
        path: PathBuf,
    },
    /// Every place this write reserved met a block still held by an older writer that is
    /// stalled (or whose process id is alive); the write gave up rather than wait, and wrote
    /// nothing. Only a ring with several blocks held by stalled writers, or a record of nearly
    /// half the ring, meets this.
    #[error(
        "{path}: no free place for the record after {attempts} reservations (blocks held by stalled writers)"
    )]
    NoFreeBlocks {
        /// The file concerned.
        path: PathBuf,
        /// How many reservations the write tried.
        attempts: u64,
    },
    /// A cursor name is empty, too long, or holds a NUL byte.
    #[error("invalid cursor name {name:?}: {reason}")]
    CursorName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Every cursor slot in the header is taken.
    #[error("all {max} cursor slots are taken")]
    CursorsFull {
        /// The number of slots.
        max: usize,
    },
    /// An access to the user area falls outside it.
    #[error("user area access of {len} bytes at offset {offset} is outside the {size}-byte area")]
    UserArea {
        /// Offset asked for.
        offset: usize,
        /// Length asked for.
        len: usize,
        /// The area's size.
        size: usize,
    },
    /// Writing a dump or a followed record to its destination failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
