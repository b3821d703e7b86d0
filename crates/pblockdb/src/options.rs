//! Creating and opening: the builder, header initialisation and validation on open.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, RwLock};

use pmap::{Lock, MapOptions, SharedMap};

use crate::db::{Mapped, read_table, thread_token};
use crate::format::{
    self, GEOMETRY_LEN, Geometry, MAGIC, OFF_CHANGES, OFF_COUNT, OFF_DESC, OFF_GENERATION,
    OFF_GEOMETRY_CRC, OFF_JOURNAL_IMAGE, OFF_JOURNAL_STATE, OFF_USED, OFF_USER_VERSION,
};
use crate::owners::{self, FileId};
use crate::{Db, Error, Result};

/// Default room, in records, of a new database before its first growth.
pub const DEFAULT_CAPACITY: u64 = 1024;

/// Builder for creating or opening a database with a given geometry.
///
/// ```
/// # fn main() -> Result<(), pblockdb::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("sessions.db");
/// let db = pblockdb::DbOptions::new(16, 64).capacity(10_000).open(&path)?;
/// assert_eq!((db.key_size(), db.value_size()), (16, 64));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DbOptions {
    key_size: usize,
    value_size: usize,
    capacity: u64,
    sync_on_write: bool,
}

impl DbOptions {
    /// Keys of `key_size` bytes (1 ..= 1024) and values of `value_size` bytes (0 ..= 1 MiB).
    pub fn new(key_size: usize, value_size: usize) -> Self {
        DbOptions {
            key_size,
            value_size,
            capacity: DEFAULT_CAPACITY,
            sync_on_write: false,
        }
    }

    /// Room for `records` records before the first growth, when creating (an existing file
    /// keeps its own capacity).
    pub fn capacity(mut self, records: u64) -> Self {
        self.capacity = records;
        self
    }

    /// Flush every write to disk before it returns (`msync` + data sync of the journal, then of
    /// the slot): durable against power loss, and about a thousand times slower.
    pub fn sync_on_write(mut self, sync: bool) -> Self {
        self.sync_on_write = sync;
        self
    }

    /// Creates the database, or opens an existing one; an existing file must have this key
    /// and value size ([`Error::GeometryMismatch`] otherwise) and keeps its capacity.
    ///
    /// # Errors
    /// [`Error::InvalidGeometry`], [`Error::GeometryMismatch`], the validation errors of
    /// `docs/pblockdb-format.md`, or a mapping error (a directory, a read-only file, ...).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Db> {
        let path = path.as_ref();
        let geo = Geometry::new(self.key_size, self.value_size)?;
        let slots = slots_for(self.capacity)?;
        let existing = std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.len() > 0);
        let map = if existing {
            MapOptions::new().must_exist().open(path)?
        } else {
            let size = geo
                .table_bytes(slots)
                .and_then(|bytes| bytes.checked_add(geo.header_size))
                .ok_or(Error::InvalidGeometry {
                    what: "capacity",
                    value: self.capacity,
                    min: 0,
                    max: format::MAX_CAPACITY,
                })?;
            MapOptions::new().size(size).open(path)?
        };
        let mut map = map.into_shared();
        let file_owner = unless_held_here(path)?;
        map.lock(Lock::Exclusive)?;
        let result = setup(&mut map, path, Some((geo, slots, !existing)), false);
        let unlocked = map.unlock();
        let (geo, table) = result?;
        unlocked?;
        finish(map, path, geo, table, false, self.sync_on_write, file_owner)
    }
}

/// Table slots for room for `records` records below the 3/4 load limit.
fn slots_for(records: u64) -> Result<u64> {
    let too_big = || Error::InvalidGeometry {
        what: "capacity",
        value: records,
        min: 0,
        max: format::MAX_CAPACITY / 4 * 3,
    };
    let wanted = records
        .checked_mul(4)
        .map(|n| n / 3 + 1)
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

pub(crate) fn open_existing(path: &Path, read_only: bool) -> Result<Db> {
    let options = if read_only {
        MapOptions::new().read_only()
    } else {
        MapOptions::new().must_exist()
    };
    let mut map = options.open(path)?.into_shared();
    let file_owner = unless_held_here(path)?;
    map.lock(if read_only {
        Lock::Shared
    } else {
        Lock::Exclusive
    })?;
    let result = setup(&mut map, path, None, read_only);
    let unlocked = map.unlock();
    let (geo, table) = result?;
    unlocked?;
    finish(map, path, geo, table, read_only, false, file_owner)
}

/// The owner word of the file just opened at `path`, unless this thread holds its writer lock
/// through another handle: then taking the file lock to open it would wait forever.
fn unless_held_here(path: &Path) -> Result<Arc<AtomicUsize>> {
    let owner = owners::owner_of(FileId::of(path));
    if owner.load(Ordering::Relaxed) == thread_token() {
        return Err(Error::WouldDeadlock {
            path: path.to_path_buf(),
        });
    }
    Ok(owner)
}

fn finish(
    map: SharedMap,
    path: &Path,
    geo: Geometry,
    table: crate::db::Table,
    read_only: bool,
    sync_on_write: bool,
    file_owner: Arc<AtomicUsize>,
) -> Result<Db> {
    let locker = MapOptions::new()
        .read_only()
        .len(format::MIN_FILE_LEN as usize)
        .open(path)?;
    Ok(Db {
        path: path.to_path_buf(),
        geo,
        read_only,
        sync_on_write,
        mapped: RwLock::new(Mapped { map, table }),
        writer: Mutex::new(()),
        locker: locker.into_shared(),
        owner: AtomicUsize::new(0),
        file_owner,
    })
}

/// Under the file lock: initialise a new file, or validate an existing one and recover it.
/// `create` carries the geometry asked for, the initial slots and whether this open created the
/// file (`None`: adopt the file's geometry).
fn setup(
    map: &mut SharedMap,
    path: &Path,
    create: Option<(Geometry, u64, bool)>,
    read_only: bool,
) -> Result<(Geometry, crate::db::Table)> {
    // The file was mapped before the lock was taken; a writer may have grown it meanwhile.
    map.refresh()?;
    let len = map.len() as u64;
    if len < format::MIN_FILE_LEN {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            len,
            needed: format::MIN_FILE_LEN,
        });
    }
    let mut head = [0u8; OFF_JOURNAL_IMAGE];
    map.read_at(0, &mut head)?;
    if head[..8] != MAGIC {
        if unfinished(&head) {
            if let Some((geo, slots, fresh)) = create {
                initialise(map, &geo, slots, fresh)?;
                let table = read_table(map, &geo, path)?;
                return Ok((geo, table));
            }
            return Err(Error::Uninitialized {
                path: path.to_path_buf(),
            });
        }
        let mut found = [0u8; 8];
        found.copy_from_slice(&head[..8]);
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            found,
        });
    }
    let geo = validate_geometry(&head, path, len)?;
    if let Some((asked, _, _)) = create {
        if asked != geo {
            return Err(Error::GeometryMismatch {
                path: path.to_path_buf(),
                asked_key: asked.key_size,
                asked_value: asked.value_size,
                found_key: geo.key_size,
                found_value: geo.value_size,
            });
        }
    }
    let table = read_table(map, &geo, path)?;
    let journal = map.load_u64(OFF_JOURNAL_STATE, Ordering::Acquire)?;
    let count = map.load_u64(OFF_COUNT, Ordering::Acquire)?;
    let used = map.load_u64(OFF_USED, Ordering::Acquire)?;
    let counts_ok = count <= used && used <= table.capacity;
    if read_only {
        if journal != 0 {
            return Err(Error::NeedsRecovery {
                path: path.to_path_buf(),
            });
        }
        if !counts_ok {
            let (field, value) = if count > used {
                ("count", count)
            } else {
                ("used", used)
            };
            return Err(Error::CorruptHeader {
                path: path.to_path_buf(),
                field,
                value,
            });
        }
        return Ok((geo, table));
    }
    crate::writer::recover(map, &geo, &table)?;
    Ok((geo, table))
}

fn validate_geometry(head: &[u8], path: &Path, len: u64) -> Result<Geometry> {
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
    if u64::from(header_size) != geo.header_size {
        return Err(corrupt("header_size", u64::from(header_size)));
    }
    if len < geo.header_size {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            len,
            needed: geo.header_size,
        });
    }
    Ok(geo)
}

/// Whether `head` (the first [`OFF_JOURNAL_IMAGE`] bytes) is a header [`initialise`] has not
/// finished: the magic still zero, and nothing but zeros outside the fields it writes before
/// the magic (geometry and its crc, descriptor 0). A file that was ever written to has a
/// non-zero change counter, so a database that lost its magic is not mistaken for one.
fn unfinished(head: &[u8]) -> bool {
    const WRITTEN: [std::ops::Range<usize>; 2] =
        [8..OFF_GEOMETRY_CRC + 4, OFF_DESC[0]..OFF_DESC[1]];
    head[..8] == [0; 8]
        && head
            .iter()
            .enumerate()
            .all(|(at, &b)| b == 0 || WRITTEN.iter().any(|range| range.contains(&at)))
}

/// Writes a fresh header (the magic last, so a creator that dies leaves a zero magic that
/// [`unfinished`] recognises). A file this open did not create (`fresh` false) may hold old
/// bytes where the header and first table go, so those are zeroed first.
fn initialise(map: &mut SharedMap, geo: &Geometry, slots: u64, fresh: bool) -> Result<()> {
    let needed = geo
        .table_bytes(slots)
        .and_then(|bytes| bytes.checked_add(geo.header_size))
        .ok_or(pmap::Error::TooLarge {
            requested: u64::MAX,
        })?;
    let needed =
        usize::try_from(needed).map_err(|_| pmap::Error::TooLarge { requested: needed })?;
    map.grow(needed)?;
    if !fresh {
        let zeros = vec![0u8; 1 << 16];
        for at in (8..needed).step_by(zeros.len()) {
            map.write_at(at, &zeros[..zeros.len().min(needed - at)])?;
        }
    }
    let mut bytes = geo.header_bytes();
    bytes[..8].fill(0);
    map.write_at(8, &bytes[8..])?;
    let crc = crc32c::crc32c(&geo.header_bytes());
    map.write_at(OFF_GEOMETRY_CRC, &crc.to_le_bytes())?;
    let offset = geo.header_size;
    map.write(OFF_DESC[0], &offset)?;
    map.write(OFF_DESC[0] + 8, &slots)?;
    map.write(OFF_DESC[0] + 16, &format::descriptor_crc(offset, slots, 0))?;
    for word in [
        OFF_GENERATION,
        OFF_COUNT,
        OFF_USED,
        OFF_CHANGES,
        OFF_JOURNAL_STATE,
        OFF_USER_VERSION,
    ] {
        map.write(word, &0u64)?;
    }
    fence(Ordering::Release);
    map.write_at(0, &MAGIC)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_leave_room_below_three_quarters() {
        assert_eq!(slots_for(0).unwrap(), 16);
        assert_eq!(slots_for(12).unwrap(), 32);
        assert_eq!(slots_for(100_000).unwrap(), 262_144);
        assert!(slots_for(u64::MAX).is_err());
        assert!(slots_for(format::MAX_CAPACITY).is_err());
    }
}
