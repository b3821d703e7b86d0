//! [`Error`]: what can go wrong in `pblockdb`, each variant with the path and the values that
//! explain it.

use std::path::PathBuf;

/// Everything that can go wrong in `pblockdb`. File errors carry the path; size errors carry the
/// number given and the number expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mapping layer failed (I/O, permissions, a directory, a missing file, ...).
    #[error(transparent)]
    Map(#[from] pmap::Error),
    /// The file does not start with the pblockdb magic: it is some other file, or was damaged
    /// (for example by a text-mode transfer).
    #[error("{path} is not a pblockdb file (bad magic {found:02x?})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first eight bytes found.
        found: [u8; 8],
    },
    /// The file's header is all zeros: a creator died before finishing it.
    #[error("{path} is an uninitialised pblockdb file (all-zero header)")]
    Uninitialized {
        /// The file.
        path: PathBuf,
    },
    /// The file is shorter than its header says it must be.
    #[error("{path} is truncated: {len} bytes, at least {needed} needed")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The length its header requires.
        needed: u64,
    },
    /// The file was written by a format version this build does not read.
    #[error("{path}: unsupported pblockdb format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A header field is out of range or fails its check.
    #[error("{path}: corrupt header field {field} = {value}")]
    CorruptHeader {
        /// The file.
        path: PathBuf,
        /// The field's name, as in `docs/pblockdb-format.md`.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A slot holds an impossible state, fails its checksum, or its history is damaged.
    #[error("{path}: corrupt slot {slot}: {reason}")]
    CorruptSlot {
        /// The file.
        path: PathBuf,
        /// The slot index in the active table.
        slot: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The file's geometry differs from the one asked for.
    #[error(
        "{path}: geometry mismatch: asked for key size {asked_key}, value size {asked_value}; \
         the file has key size {found_key}, value size {found_value}"
    )]
    GeometryMismatch {
        /// The file.
        path: PathBuf,
        /// Key size asked for.
        asked_key: usize,
        /// Value size asked for.
        asked_value: usize,
        /// Key size in the file.
        found_key: usize,
        /// Value size in the file.
        found_value: usize,
    },
    /// A geometry asked for when creating is outside the supported range.
    #[error("invalid geometry: {what} = {value} (allowed {min} ..= {max})")]
    InvalidGeometry {
        /// Which size.
        what: &'static str,
        /// The size given.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// A key longer than the key size.
    #[error("key of {given} bytes is longer than the key size {expected}")]
    KeySize {
        /// The key's length.
        given: usize,
        /// The database's key size.
        expected: usize,
    },
    /// A value longer than the value size.
    #[error("value of {given} bytes is longer than the value size {expected}")]
    ValueSize {
        /// The value's length.
        given: usize,
        /// The database's value size.
        expected: usize,
    },
    /// User-area data longer than the user area.
    #[error("user area data of {given} bytes exceeds the {max}-byte user area")]
    UserAreaSize {
        /// The data's length.
        given: usize,
        /// The user area's size.
        max: usize,
    },
    /// The table is full and the file could not grow (disk full, size limit); nothing stored was
    /// lost.
    #[error("{path}: database full at capacity {capacity} and it cannot grow: {source}")]
    Full {
        /// The file.
        path: PathBuf,
        /// The capacity (slots) of the current table.
        capacity: u64,
        /// Why growing failed.
        #[source]
        source: Box<Error>,
    },
    /// A write through a database opened read-only.
    #[error("{path} is open read-only; {op} needs a writable database")]
    ReadOnly {
        /// The file.
        path: PathBuf,
        /// The refused operation.
        op: &'static str,
    },
    /// A write transaction begun by the thread that already holds this handle's write
    /// transaction: refused instead of deadlocking.
    #[error("{path}: write attempted by the thread already holding the writer lock")]
    Reentrant {
        /// The file.
        path: PathBuf,
    },
    /// The calling thread holds a write transaction through another handle on this file, so
    /// waiting for the file lock would never end: refused instead of deadlocking.
    #[error(
        "{path}: this thread holds the writer lock through another handle on this file; \
         waiting for it would deadlock"
    )]
    WouldDeadlock {
        /// The file.
        path: PathBuf,
    },
    /// A read transaction outlived the versions it needs: more slot changes were committed
    /// since it began than the history ring keeps, or the table it read was rebuilt twice.
    /// Start a new read transaction (or give the database a larger `DbOptions::history`).
    #[error("{path}: snapshot too old: the versions it reads are no longer kept")]
    SnapshotTooOld {
        /// The file.
        path: PathBuf,
    },
    /// A codec refused an item or the stored bytes.
    #[error("codec error: {0}")]
    Codec(crate::codec::CodecError),
    /// A handle without a mapping ([`crate::Storage::Unmapped`]) is alone with its file: this
    /// open met one, or, opening one, met another handle (in any process, this thread
    /// included). Retry after the other closes.
    #[error(
        "{path} is open by another handle, and a handle without a mapping (Storage::Unmapped) \
         shares its file with no other"
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// A write through a [`crate::Storage::Unmapped`] handle in a process forked from the one
    /// that opened it: the handle's memory copy is the parent's, so the child's writes would
    /// race the parent's unseen. Open a handle in the child instead (after the parent's closes).
    #[error("{path}: a Storage::Unmapped handle writes only in the process that opened it")]
    UnmappedForked {
        /// The database file.
        path: PathBuf,
    },
    /// A write through a handle in a process forked while another thread of the parent held
    /// the handle's write transaction: that thread does not exist in the child, so the handle's
    /// writer lock can never be released there. Reads go on; open a handle in the child to
    /// write (it waits for the parent's transaction like any other process's).
    #[error(
        "{path}: the handle's write transaction was held by a thread of the parent when this process forked"
    )]
    ForkedWhileWriting {
        /// The database file.
        path: PathBuf,
    },
    /// A backup's destination already exists.
    #[error("{path} already exists; a backup is written only to a new file")]
    BackupExists {
        /// The destination.
        path: PathBuf,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
