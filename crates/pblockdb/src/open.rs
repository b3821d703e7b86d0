//! Creating and opening: the builder, header initialisation and validation on open.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, RwLock};

use pmap::{Lock, MapOptions, SharedMap};

use crate::format::{
    self, Counts, GEOMETRY_LEN, Geometry, MAGIC, OFF_COMMIT, OFF_COUNTS, OFF_GEOMETRY_CRC,
    OFF_HISTORY_HEAD, OFF_USER_VERSION, RingDescriptor,
};
use crate::lock::thread_token;
use crate::owners::{self, FileId};
use crate::storage::{Backend, Storage};
use crate::view::{Table, View};
use crate::{Db, Error, Result};

/// Default room, in records, of a new database before its first growth.
pub const DEFAULT_CAPACITY: u64 = 1024;
/// Default size of the history ring, in bytes: the number of versions kept for older
/// snapshots is this divided by the size of one (a slot plus 32 bytes), rounded down to a power
/// of two, and at least [`crate::MIN_HISTORY`].
pub const DEFAULT_HISTORY_BYTES: u64 = 1 << 20;

/// How a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The commit is in the page cache when it returns: it survives the crash of any process
    /// (kill -9 at any instruction), not an operating-system crash or power loss, after which
    /// the file may be damaged. The default, as LMDB's `MDB_NOSYNC`.
    #[default]
    Buffered,
    /// The history, then the slots and the count record are flushed (a data sync each) in
    /// that order before the commit returns: it survives power loss, whatever order the pages
    /// reach the disk in otherwise (the commit word follows with the next sync; recovery and
    /// readers take a commit whose slots are all on disk as published). Hundreds of times
    /// slower.
    Synced,
}

/// Builder for creating or opening a database.
///
/// ```
/// # fn main() -> Result<(), pblockdb::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("sessions.db");
/// use pblockdb::{DbOptions, Durability};
/// let db = DbOptions::new(16, 64)
///     .capacity(10_000)
///     .durability(Durability::Buffered)
///     .open(&path)?;
/// assert_eq!((db.key_size(), db.value_size()), (16, 64));
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct DbOptions {
    key_size: usize,
    value_size: usize,
    capacity: u64,
    /// Entries asked for; `None`: [`DEFAULT_HISTORY_BYTES`] worth.
    history: Option<u64>,
    durability: Durability,
    storage: Storage,
    recorder: Option<Arc<crate::testing::Recorder>>,
    /// Sizes from the file ([`DbOptions::existing`]) rather than from `key_size`/`value_size`.
    adopt: bool,
}

/// How [`open_existing`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    ReadOnly,
}

impl DbOptions {
    /// Keys of up to `key_size` bytes (1 ..= 1024) and values of up to `value_size` bytes
    /// (0 ..= 1 MiB); each is stored with its length.
    pub fn new(key_size: usize, value_size: usize) -> Self {
        DbOptions {
            key_size,
            value_size,
            capacity: DEFAULT_CAPACITY,
            history: None,
            durability: Durability::default(),
            storage: Storage::default(),
            recorder: None,
            adopt: false,
        }
    }

    /// Options for a database that exists already, whose key and value sizes (and capacity
    /// and history) are the file's own: for tools that open databases they did not create.
    /// [`DbOptions::open`] then fails with [`pmap::Error::NotFound`] (in [`Error::Map`]) when
    /// there is no file, instead of creating one.
    pub fn existing() -> Self {
        DbOptions {
            adopt: true,
            ..DbOptions::new(1, 0)
        }
    }

    /// Room for `records` records before the first growth, when creating (an existing file
    /// keeps its own capacity).
    pub fn capacity(mut self, records: u64) -> Self {
        self.capacity = records;
        self
    }

    /// The versions kept for older snapshots, at least (rounded up to a power of two, at least
    /// 64): a read transaction can read on while fewer slot changes than this were committed
    /// since it began. A commit larger than half the history grows it (the file grows;
    /// readers never make it grow). An existing file keeps at least its own.
    pub fn history(mut self, entries: u64) -> Self {
        self.history = Some(entries);
        self
    }

    /// How this handle's commits reach the disk (each transaction may choose otherwise).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Notes every write and sync this handle makes in `recorder`, as well as making them (the
    /// crash tests build the files a power loss could leave from the record). Not part of the
    /// API.
    #[doc(hidden)]
    pub fn record_to(mut self, recorder: std::sync::Arc<crate::testing::Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// How this handle reads the file and puts its commits into it: through the writable
    /// mapping ([`Storage::Mapped`], the default), by positioned writes beside a read-only data
    /// mapping ([`Storage::Write`]), or without any mapping, through a memory copy
    /// ([`Storage::Unmapped`], which is alone with the file while it lives). The format does
    /// not depend on it: handles of the first two share a file, and any handle opens a file
    /// any other wrote.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Creates the database, or opens an existing one; an existing file must have these key
    /// and value sizes ([`Error::GeometryMismatch`] otherwise) and keeps its capacity.
    ///
    /// # Errors
    /// [`Error::InvalidGeometry`], [`Error::GeometryMismatch`], the validation errors of
    /// `docs/pblockdb-format.md`, or a mapping error (a directory, a read-only file, ...).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Db> {
        let path = path.as_ref();
        if self.adopt {
            return open_existing(path, Access::ReadWrite, self.writes(None));
        }
        let geo = Geometry::new(self.key_size, self.value_size)?;
        let slots = slots_for(self.capacity)?;
        let history = history_for(self.history.unwrap_or_else(|| default_history(&geo)))?;
        let existing = std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.len() > 0);
        // A handle without a mapping is alone with the file before it reads a byte of it.
        let alone = match self.storage {
            Storage::Unmapped => {
                if !existing {
                    create_empty(path)?;
                }
                take_share_lock(path, Storage::Unmapped)?
            }
            Storage::Mapped | Storage::Write => None,
        };
        let options = match self.storage {
            Storage::Unmapped => MapOptions::new().memory_copy(),
            Storage::Mapped | Storage::Write => MapOptions::new(),
        };
        let map = if existing {
            options.must_exist().open(path)?
        } else {
            options.size(format::MIN_FILE_LEN).open(path)?
        };
        let mut map = map.into_shared();
        // Any other handle takes its (shared) lock before it looks at the file, so that a
        // handle without a mapping cannot read a file this one is initialising.
        let share = match alone {
            Some(lock) => Some(lock),
            None => take_share_lock(path, self.storage)?,
        };
        let create = Create {
            geo,
            slots,
            history,
            fresh: !existing,
        };
        let file_owner = owners::owner_of(FileId::of(path));
        // A file whose magic is in place is complete (the magic is written last): it is
        // validated without any lock, so opening never waits for a writer. Anything else is
        // created or checked under the exclusive lock, which a creator holds throughout.
        let geo = match setup(&mut map, path, Some(create), Access::ReadWrite, Locked::No) {
            Err(NeedsLock) => {
                unless_held_here(&file_owner, path)?;
                map.lock(Lock::Exclusive)?;
                let result = setup(&mut map, path, Some(create), Access::ReadWrite, Locked::Yes);
                let unlocked = map.unlock();
                let geo = result.map_err(SetupError::into_error(path))?;
                unlocked?;
                geo
            }
            Ok(geo) => geo,
            Err(Failed(e)) => return Err(e),
        };
        build_db(
            map,
            path,
            geo,
            Access::ReadWrite,
            self.writes(Some(history)),
            file_owner,
            share,
        )
    }

    /// Opens an existing database read-only, through this storage ([`Storage::Write`] reads as
    /// [`Storage::Mapped`] does); unless the options are [`DbOptions::existing`], its sizes must
    /// be these. As [`Db::open_read_only`] otherwise.
    ///
    /// # Errors
    /// As [`Db::open_read_only`], [`Error::GeometryMismatch`], and [`Error::InUse`] as for
    /// [`DbOptions::open`].
    pub fn open_read_only(&self, path: impl AsRef<Path>) -> Result<Db> {
        let db = open_existing(path.as_ref(), Access::ReadOnly, self.writes(None))?;
        self.check_sizes(&db)?;
        Ok(db)
    }

    /// An existing file's sizes against the ones asked for (none for [`DbOptions::existing`]).
    fn check_sizes(&self, db: &Db) -> Result<()> {
        if self.adopt || (db.geo.key_size, db.geo.value_size) == (self.key_size, self.value_size) {
            return Ok(());
        }
        Err(Error::GeometryMismatch {
            path: db.path.clone(),
            asked_key: self.key_size,
            asked_value: self.value_size,
            found_key: db.geo.key_size,
            found_value: db.geo.value_size,
        })
    }

    /// How this handle writes; `history`: the ring its commits keep at least (`None`: the
    /// default for the file's geometry).
    fn writes(&self, history: Option<u64>) -> Writes {
        Writes {
            durability: self.durability,
            storage: self.storage,
            recorder: self.recorder.clone(),
            history_min: history,
        }
    }
}

/// Creates `path` as an empty file if there is none (for the share lock of a handle without a
/// mapping, which is taken before anything else touches the file).
fn create_empty(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|source| {
            Error::Map(pmap::Error::Io {
                op: "create",
                path: path.to_path_buf(),
                source,
            })
        })
}

/// The share lock a handle of `storage` holds while it lives ([`pmap::ShareLock`]): exclusive
/// for one without a mapping, which no other handle may meet, shared for every other.
fn take_share_lock(path: &Path, storage: Storage) -> Result<Option<pmap::ShareLock>> {
    let lock = match storage {
        Storage::Unmapped => Lock::Exclusive,
        Storage::Mapped | Storage::Write => Lock::Shared,
    };
    match pmap::ShareLock::take(path, lock) {
        Ok(None) if storage == Storage::Unmapped => Err(Error::Map(pmap::Error::Unsupported {
            path: path.to_path_buf(),
            op: "open without a mapping",
            reason: "keeping every other handle out needs per-open byte-range locks \
                     (Linux only, for now)",
        })),
        Ok(held) => Ok(held),
        Err(pmap::Error::LockContended { .. }) => Err(Error::InUse {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// What creating a file needs.
#[derive(Debug, Clone, Copy)]
struct Create {
    geo: Geometry,
    slots: u64,
    history: u64,
    /// Whether this open created the file (else its bytes may be old and are zeroed first).
    fresh: bool,
}

/// Table slots for room for `records` records below the load limit (`format::MAX_LOAD`).
fn slots_for(records: u64) -> Result<u64> {
    let too_big = || Error::InvalidGeometry {
        what: "capacity",
        value: records,
        min: 0,
        max: format::MAX_CAPACITY / format::MAX_LOAD.1 * format::MAX_LOAD.0,
    };
    let wanted = records
        .checked_mul(format::MAX_LOAD.1)
        .map(|n| n / format::MAX_LOAD.0 + 1)
        .ok_or_else(too_big)?;
    let slots = wanted
        .max(format::MIN_CAPACITY)
        .checked_next_power_of_two()
        .ok_or_else(too_big)?;
    if slots > format::MAX_CAPACITY {
        return Err(too_big());
    }
    Ok(slots)
}

/// The entries of [`DEFAULT_HISTORY_BYTES`] for this geometry (a power of two).
pub(crate) fn default_history(geo: &Geometry) -> u64 {
    let entries = (DEFAULT_HISTORY_BYTES / geo.entry_size() as u64).max(format::MIN_HISTORY);
    1 << entries.ilog2()
}

fn history_for(entries: u64) -> Result<u64> {
    let entries = entries
        .max(format::MIN_HISTORY)
        .checked_next_power_of_two()
        .filter(|&n| n <= format::MAX_HISTORY);
    entries.ok_or(Error::InvalidGeometry {
        what: "history",
        value: entries.unwrap_or(u64::MAX),
        min: format::MIN_HISTORY,
        max: format::MAX_HISTORY,
    })
}

pub(crate) fn open_existing(path: &Path, access: Access, writes: Writes) -> Result<Db> {
    let alone = match writes.storage {
        Storage::Unmapped => take_share_lock(path, Storage::Unmapped)?,
        Storage::Mapped | Storage::Write => None,
    };
    let options = match access {
        Access::ReadOnly => MapOptions::new().read_only(),
        Access::ReadWrite => MapOptions::new().must_exist(),
    };
    let options = match writes.storage {
        Storage::Unmapped => options.memory_copy(),
        Storage::Mapped | Storage::Write => options,
    };
    let mut map = options.open(path)?.into_shared();
    let share = match alone {
        Some(lock) => Some(lock),
        None => take_share_lock(path, writes.storage)?,
    };
    let file_owner = owners::owner_of(FileId::of(path));
    let geo = match setup(&mut map, path, None, access, Locked::No) {
        Ok(geo) => geo,
        // No magic yet: a creator may be initialising it; its lock says when it is done.
        Err(NeedsLock) => {
            unless_held_here(&file_owner, path)?;
            map.lock(Lock::Shared)?;
            let result = setup(&mut map, path, None, access, Locked::Yes);
            let unlocked = map.unlock();
            let geo = result.map_err(SetupError::into_error(path))?;
            unlocked?;
            geo
        }
        Err(Failed(e)) => return Err(e),
    };
    build_db(map, path, geo, access, writes, file_owner, share)
}

/// Refuses to wait for the file lock when this thread holds it through another handle: that
/// wait would never end.
fn unless_held_here(owner: &AtomicUsize, path: &Path) -> Result<()> {
    if owner.load(Ordering::Relaxed) == thread_token() {
        return Err(Error::WouldDeadlock {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether [`setup`] runs under the file lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Locked {
    Yes,
    No,
}

/// Why [`setup`] did not finish.
enum SetupError {
    /// The file has no magic: it must be looked at (or created) under the lock.
    NeedsLock,
    Failed(Error),
}

use SetupError::{Failed, NeedsLock};

impl From<Error> for SetupError {
    fn from(e: Error) -> Self {
        Failed(e)
    }
}

impl From<pmap::Error> for SetupError {
    fn from(e: pmap::Error) -> Self {
        Failed(e.into())
    }
}

impl SetupError {
    /// Under the lock there is no one left to wait for: a missing magic is final.
    fn into_error(path: &Path) -> impl Fn(SetupError) -> Error + '_ {
        move |e| match e {
            Failed(e) => e,
            NeedsLock => Error::Uninitialized {
                path: path.to_path_buf(),
            },
        }
    }
}

/// How a handle reads and its commits write: chosen by [`DbOptions`].
pub(crate) struct Writes {
    durability: crate::Durability,
    storage: Storage,
    recorder: Option<Arc<crate::testing::Recorder>>,
    /// The smallest history ring its commits keep (entries); `None`: the default for the
    /// file's geometry.
    history_min: Option<u64>,
}

impl Writes {
    /// A plain handle's: [`DbOptions`]' defaults.
    pub(crate) fn plain() -> Writes {
        Writes {
            durability: crate::Durability::default(),
            storage: Storage::default(),
            recorder: None,
            history_min: None,
        }
    }
}

/// The last step of every open: maps the header page that holds the lock and the writer word
/// (a read-write handle takes its liveness mark there), reads the view and makes the handle.
fn build_db(
    map: SharedMap,
    path: &Path,
    geo: Geometry,
    access: Access,
    writes: Writes,
    file_owner: Arc<AtomicUsize>,
    share: Option<pmap::ShareLock>,
) -> Result<Db> {
    let Writes {
        durability,
        storage,
        recorder,
        history_min,
    } = writes;
    let history_min = history_min.unwrap_or_else(|| default_history(&geo));
    let locker = match (storage, access) {
        // Alone with the file: the writer word lives in this process's memory, and the
        // in-process mutex and owner words are all the exclusion there is to have. The mark
        // is still taken on the file, so that the writer word holds a real id.
        (Storage::Unmapped, _) => pmap::Map::anonymous(format::MIN_FILE_LEN as usize)?,
        (_, Access::ReadOnly) => MapOptions::new()
            .read_only()
            .len(format::MIN_FILE_LEN as usize)
            .open(path)?,
        (_, Access::ReadWrite) => MapOptions::new()
            .must_exist()
            .len(format::MIN_FILE_LEN as usize)
            .open(path)?,
    };
    let locker = locker.into_shared();
    // The locker must map the file `map` maps (its path may name another by now), or its
    // writer word would be another file's.
    if storage != Storage::Unmapped && locker.same_file_as(&map) == Some(false) {
        return Err(replaced(path));
    }
    let mark = match (storage, access) {
        (_, Access::ReadOnly) => None,
        (Storage::Unmapped, Access::ReadWrite) => map.take_liveness_mark()?,
        (_, Access::ReadWrite) => locker.take_liveness_mark()?,
    };
    // A `Storage::Write` handle reads through a read-only mapping; the writable one it was
    // opened (and perhaps created) through is kept for the coordination words alone.
    let (map, words) = match (storage, access) {
        (Storage::Write, Access::ReadWrite) => {
            let data = MapOptions::new().read_only().open(path)?.into_shared();
            if data.same_file_as(&map) == Some(false) {
                return Err(replaced(path));
            }
            (data, Some(map))
        }
        _ => (map, None),
    };
    let backend = Backend::new(&map, words, recorder);
    let view = View::read(map, backend, &geo, path)?;
    let finished = {
        let commit = view.map.load_u64(OFF_COMMIT, Ordering::Acquire)?;
        let head = view.map.load_u64(OFF_HISTORY_HEAD, Ordering::Acquire)?;
        crate::commit::finished_commit(&view, &geo, &view.active, commit, head)?
            .map(|_| (commit, head))
    };
    Ok(Db {
        path: path.to_path_buf(),
        geo,
        read_only: access == Access::ReadOnly,
        durability,
        history_min,
        view: RwLock::new(view),
        writer: crate::lock::WriterMutex::new(),
        checked: Mutex::new(crate::checked::CheckedChunks::default()),
        locker,
        mark: mark.map(Mutex::new),
        owner: AtomicUsize::new(0),
        file_owner,
        finished,
        _share: share,
    })
}

/// The error of a path that names another file than the one an open began with.
fn replaced(path: &Path) -> Error {
    Error::Map(pmap::Error::Io {
        op: "open",
        path: path.to_path_buf(),
        source: std::io::Error::other("the file was replaced while it was being opened"),
    })
}

/// Under the file lock: initialise a new file, or validate an existing one. `create` carries
/// what creating needs (`None`: adopt the file's geometry).
fn setup(
    map: &mut SharedMap,
    path: &Path,
    create: Option<Create>,
    access: Access,
    locked: Locked,
) -> std::result::Result<Geometry, SetupError> {
    // The file was mapped before the lock was taken; a writer may have grown it meanwhile.
    map.refresh()?;
    let len = map.len() as u64;
    if len < format::MIN_FILE_LEN {
        if len == 0 && locked == Locked::No {
            return Err(NeedsLock);
        }
        return Err(Failed(Error::Truncated {
            path: path.to_path_buf(),
            len,
            needed: format::MIN_FILE_LEN,
        }));
    }
    let mut head = vec![0u8; format::HEADER_FIELDS_END];
    map.read_at(0, &mut head)?;
    if head[..8] != MAGIC {
        if unfinished(&head) {
            if locked == Locked::No {
                return Err(NeedsLock);
            }
            if let Some(create) = create {
                initialise(map, &create)?;
                return Ok(create.geo);
            }
            return Err(Failed(Error::Uninitialized {
                path: path.to_path_buf(),
            }));
        }
        let mut found = [0u8; 8];
        found.copy_from_slice(&head[..8]);
        return Err(Failed(Error::BadMagic {
            path: path.to_path_buf(),
            found,
        }));
    }
    let geo = validate_geometry(&head, path)?;
    if let Some(asked) = create {
        if asked.geo != geo {
            return Err(Failed(Error::GeometryMismatch {
                path: path.to_path_buf(),
                asked_key: asked.geo.key_size,
                asked_value: asked.geo.value_size,
                found_key: geo.key_size,
                found_value: geo.value_size,
            }));
        }
    }
    let corrupt = |field, value| Error::CorruptHeader {
        path: path.to_path_buf(),
        field,
        value,
    };
    let commit = format::get_u64(&head, OFF_COMMIT);
    let history_head = format::get_u64(&head, OFF_HISTORY_HEAD);
    if commit == 0 || history_head < commit {
        return Err(Failed(corrupt("history_head", history_head)));
    }
    // Every descriptor is checked against the file before anything is read through it.
    let (_, active, _, _, ring, _) = crate::view::read_regions_of_whole_file(map, &geo, path)?;
    if history_head - commit > ring.entries {
        return Err(Failed(corrupt("history_head", history_head)));
    }
    if access == Access::ReadOnly {
        check_counts(map, &geo, path, commit, active.capacity)?;
    }
    Ok(geo)
}

/// How many times a read-only open reads the clock, the regions and the counts again while a
/// writer keeps committing under it (each try is a few hundred nanoseconds; a commit takes a
/// microsecond or more, and two are needed to replace a counts record).
const COUNT_CHECK_TRIES: u32 = 1_000;

/// A read-only open's check of the counts record of commit `commit` (read from the header
/// copy), without the writer lock: a writer may commit meanwhile, and two commits replace both
/// records (they alternate), or a rebuild may change the table. So a mismatch is damage only
/// when the clock did not move while it was read; otherwise the clock, the regions and the
/// counts are read again.
fn check_counts(
    map: &SharedMap,
    geo: &Geometry,
    path: &Path,
    mut commit: u64,
    mut capacity: u64,
) -> std::result::Result<(), SetupError> {
    let corrupt = |field, value| Error::CorruptHeader {
        path: path.to_path_buf(),
        field,
        value,
    };
    let mut tries = 0;
    loop {
        let problem = match crate::commit::counts_at(map, commit)? {
            Some((_, c)) if c.count <= c.used && c.used <= capacity => return Ok(()),
            Some((_, c)) if c.count > c.used => corrupt("count", c.count),
            Some((_, c)) => corrupt("used", c.used),
            None => corrupt("counts", commit),
        };
        let now = map.load_u64(OFF_COMMIT, std::sync::atomic::Ordering::Acquire)?;
        tries += 1;
        if now == commit || tries >= COUNT_CHECK_TRIES {
            return Err(Failed(problem));
        }
        commit = now;
        capacity = crate::view::read_regions(map, geo, path)?.1.capacity;
    }
}

fn validate_geometry(head: &[u8], path: &Path) -> Result<Geometry> {
    let corrupt = |field, value: u64| Error::CorruptHeader {
        path: path.to_path_buf(),
        field,
        value,
    };
    let version = format::get_u32(head, format::OFF_VERSION);
    if version != format::FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: format::FORMAT_VERSION,
        });
    }
    let crc = format::get_u32(head, OFF_GEOMETRY_CRC);
    if crc != crc32c::crc32c(&head[..GEOMETRY_LEN]) {
        return Err(corrupt("geometry_crc", u64::from(crc)));
    }
    let key_size = format::get_u32(head, format::OFF_KEY_SIZE);
    let value_size = format::get_u32(head, format::OFF_VALUE_SIZE);
    let geo = Geometry::new(key_size as usize, value_size as usize).map_err(|e| match e {
        Error::InvalidGeometry { what, value, .. } => corrupt(what, value),
        other => other,
    })?;
    let slot_size = format::get_u32(head, format::OFF_SLOT_SIZE);
    if slot_size as usize != geo.slot_size {
        return Err(corrupt("slot_size", u64::from(slot_size)));
    }
    let user = format::get_u32(head, format::OFF_USER_AREA_SIZE);
    if user as usize != format::USER_AREA_SIZE {
        return Err(corrupt("user_area_size", u64::from(user)));
    }
    let header_size = format::get_u32(head, format::OFF_HEADER_SIZE);
    if u64::from(header_size) != format::HEADER_SIZE {
        return Err(corrupt("header_size", u64::from(header_size)));
    }
    Ok(geo)
}

/// Whether `head` is a header [`initialise`] has not finished: the magic still zero, and no
/// sign of use: the clock and history head at most their initial 1 and the user area never
/// written. A database ever committed to has a larger clock, so one that lost its magic is
/// not mistaken for a new file.
fn unfinished(head: &[u8]) -> bool {
    head[..8] == [0; 8]
        && format::get_u64(head, OFF_COMMIT) <= 1
        && format::get_u64(head, OFF_HISTORY_HEAD) <= 1
        && format::get_u64(head, OFF_USER_VERSION) == 0
}

/// Writes a fresh header, table and history ring (the magic last, so a creator that dies
/// leaves a zero magic that [`unfinished`] recognises). A file this open did not create may
/// hold old bytes, so everything it lays out is zeroed first.
fn initialise(map: &mut SharedMap, create: &Create) -> Result<()> {
    let geo = &create.geo;
    let path = map.path().to_path_buf();
    let too_big = |requested| pmap::Error::TooLarge {
        path: path.clone(),
        requested,
    };
    let table_bytes = geo.table_bytes(create.slots).ok_or(too_big(u64::MAX))?;
    let ring_offset = format::round_up(format::HEADER_SIZE + table_bytes, format::PAGE)
        .ok_or(too_big(u64::MAX))?;
    let ring_bytes = geo.ring_bytes(create.history).ok_or(too_big(u64::MAX))?;
    let needed = ring_offset
        .checked_add(ring_bytes)
        .ok_or(too_big(u64::MAX))?;
    let needed = usize::try_from(needed).map_err(|_| too_big(needed))?;
    map.grow(needed)?;
    if !create.fresh {
        let zeros = vec![0u8; 1 << 16];
        for at in (8..needed).step_by(zeros.len()) {
            map.write_at(at, &zeros[..zeros.len().min(needed - at)])?;
        }
    }
    map.write_at(0, &[0u8; 8])?;
    let mut bytes = geo.header_bytes();
    let crc = crc32c::crc32c(&bytes);
    bytes[..8].fill(0);
    map.write_at(8, &bytes[8..])?;
    map.write_at(OFF_GEOMETRY_CRC, &crc.to_le_bytes())?;
    // The clock starts at 1, so a zeroed entry (number 0) is never taken for a real one.
    let table = Table {
        generation: 0,
        offset: format::HEADER_SIZE as usize,
        slots: 0,
        capacity: create.slots,
        since: 1,
        bytes: table_bytes,
    };
    let ring = RingDescriptor {
        generation: 0,
        offset: ring_offset,
        entries: create.history,
        base: 1,
    };
    map.write(OFF_COMMIT, &1u64)?;
    map.write(OFF_HISTORY_HEAD, &1u64)?;
    let counts = Counts {
        clock: 1,
        ..Counts::default()
    };
    map.write_at(OFF_COUNTS[0], &counts.encode())?;
    // Creation writes through the mapping whatever storage the handle will use: it runs under
    // the exclusive lock, before the magic tells any other handle the file is there.
    crate::commit::write_table_descriptor(&Backend::default(), map, &table)?;
    crate::commit::write_ring_descriptor(&Backend::default(), map, &ring)?;
    fence(Ordering::Release);
    map.write_at(0, &MAGIC)?;
    if map.is_memory_copy() {
        // A copy's stores are in memory only: into the file with the magic last, after a sync,
        // so that a creator killed or cut off by a power loss leaves a zero magic there too.
        map.write_back(8, needed - 8)?;
        map.flush()?;
        map.write_back(0, 8)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_leave_room_below_the_load_limit() {
        assert_eq!(slots_for(0).unwrap(), 16);
        assert_eq!(slots_for(13).unwrap(), 16);
        assert_eq!(slots_for(14).unwrap(), 32);
        assert_eq!(slots_for(100_000).unwrap(), 131_072);
        assert!(slots_for(u64::MAX).is_err());
        assert!(slots_for(format::MAX_CAPACITY).is_err());
    }

    #[test]
    fn history_rounds_up_within_range() {
        assert_eq!(history_for(0).unwrap(), format::MIN_HISTORY);
        assert_eq!(history_for(1000).unwrap(), 1024);
        assert!(history_for(u64::MAX).is_err());
    }
}
