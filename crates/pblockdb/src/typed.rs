//! Records as `bytemuck::Pod` types instead of byte slices.

use std::marker::PhantomData;
use std::path::Path;

use bytemuck::Pod;

use crate::{Action, Db, DbOptions, Error, Result};

/// A [`Db`] whose keys are `K` and values are `V`: plain-old-data types stored as their bytes
/// (native byte order), with key size `size_of::<K>()` and value size `size_of::<V>()`.
///
/// ```
/// # fn main() -> Result<(), pblockdb::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("leases.db");
/// let leases = pblockdb::TypedDb::<u64, [u32; 4]>::open(&path, 100)?;
/// leases.put(&7, &[1, 2, 3, 4])?;
/// assert_eq!(leases.get(&7)?, Some([1, 2, 3, 4]));
/// assert_eq!(leases.get(&8)?, None);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TypedDb<K, V> {
    db: Db,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K: Pod, V: Pod> TypedDb<K, V> {
    /// Creates or opens the database at `path` for these types, with room for `capacity`
    /// records before the first growth (when creating).
    ///
    /// # Errors
    /// As [`DbOptions::open`]; [`Error::GeometryMismatch`] when the file holds other sizes.
    pub fn open(path: impl AsRef<Path>, capacity: u64) -> Result<Self> {
        Self::from_db(
            DbOptions::new(size_of::<K>(), size_of::<V>())
                .capacity(capacity)
                .open(path)?,
        )
    }

    /// Wraps an open [`Db`] whose sizes match `K` and `V`.
    ///
    /// # Errors
    /// [`Error::GeometryMismatch`] when they do not.
    pub fn from_db(db: Db) -> Result<Self> {
        if db.key_size() != size_of::<K>() || db.value_size() != size_of::<V>() {
            return Err(Error::GeometryMismatch {
                path: db.path().to_path_buf(),
                asked_key: size_of::<K>(),
                asked_value: size_of::<V>(),
                found_key: db.key_size(),
                found_value: db.value_size(),
            });
        }
        Ok(TypedDb {
            db,
            types: PhantomData,
        })
    }

    /// The byte-level database underneath.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Unwraps the byte-level database.
    pub fn into_inner(self) -> Db {
        self.db
    }

    /// Inserts or replaces; returns whether it replaced.
    ///
    /// # Errors
    /// As [`Db::put`].
    pub fn put(&self, key: &K, value: &V) -> Result<bool> {
        self.db
            .put(bytemuck::bytes_of(key), bytemuck::bytes_of(value))
    }

    /// The value under `key`, without allocating.
    ///
    /// # Errors
    /// As [`Db::get`].
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let mut value = V::zeroed();
        let found = self
            .db
            .get_into(bytemuck::bytes_of(key), bytemuck::bytes_of_mut(&mut value))?;
        Ok(found.then_some(value))
    }

    /// Deletes; returns whether the key was there.
    ///
    /// # Errors
    /// As [`Db::delete`].
    pub fn delete(&self, key: &K) -> Result<bool> {
        self.db.delete(bytemuck::bytes_of(key))
    }

    /// Whether `key` is stored.
    ///
    /// # Errors
    /// As [`Db::get`].
    pub fn contains(&self, key: &K) -> Result<bool> {
        self.db.contains(bytemuck::bytes_of(key))
    }

    /// Records stored.
    pub fn len(&self) -> usize {
        self.db.len()
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
    }

    /// Every record, each read consistently.
    ///
    /// # Errors
    /// As [`Db::iter`].
    pub fn entries(&self) -> Result<Vec<(K, V)>> {
        // Sized by the records read, not by the header's count (which another process could
        // have damaged since this handle opened).
        let bytes = self.db.snapshot()?;
        Ok(self
            .db
            .records(&bytes)
            .map(|(key, value)| {
                (
                    bytemuck::pod_read_unaligned(key),
                    bytemuck::pod_read_unaligned(value),
                )
            })
            .collect())
    }

    /// The first record for which `predicate` holds.
    ///
    /// # Errors
    /// As [`Db::find`].
    pub fn find(&self, mut predicate: impl FnMut(&K, &V) -> bool) -> Result<Option<(K, V)>> {
        let found = self.db.find(|key, value| {
            predicate(
                &bytemuck::pod_read_unaligned(key),
                &bytemuck::pod_read_unaligned(value),
            )
        })?;
        Ok(found.map(|(key, value)| {
            (
                bytemuck::pod_read_unaligned(&key),
                bytemuck::pod_read_unaligned(&value),
            )
        }))
    }

    /// As [`Db::update_each`], with typed records: `f` may change the value in place.
    ///
    /// # Errors
    /// As [`Db::update_each`].
    pub fn update_each(&self, mut f: impl FnMut(&K, &mut V) -> Action) -> Result<u64> {
        self.db.update_each(|key, bytes| {
            let key: K = bytemuck::pod_read_unaligned(key);
            let mut value: V = bytemuck::pod_read_unaligned(bytes);
            let action = f(&key, &mut value);
            bytes.copy_from_slice(bytemuck::bytes_of(&value));
            action
        })
    }
}
