//! [`TypedDb`]: a database whose keys and values go through [`Codec`]s, in transactions or
//! one operation at a time.

use std::marker::PhantomData;

use crate::codec::Codec;
use crate::{Db, Error, ReadTxn, Result, WriteTxn};

/// A [`Db`] whose keys are encoded by `K` and values by `V` (see [`crate::codec`]).
///
/// ```
/// # fn main() -> Result<(), pblockdb::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("leases.db");
/// use pblockdb::codec::{Str, U64};
/// let db = pblockdb::DbOptions::new(8, 64).open(&path)?;
/// let leases = pblockdb::TypedDb::<U64, Str>::new(db);
/// leases.put(&7, &"10.0.0.7".to_string())?;
/// assert_eq!(leases.get(&7)?, Some("10.0.0.7".to_string()));
/// leases.db().write(|txn| {
///     leases.put_in(txn, &8, &"10.0.0.8".to_string())?;
///     leases.delete_in(txn, &7)
/// })?;
/// assert_eq!(leases.get(&7)?, None);
/// # Ok(()) }
/// ```
pub struct TypedDb<K, V> {
    db: Db,
    codecs: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for TypedDb<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedDb").field("db", &self.db).finish()
    }
}

fn encode<C: Codec>(item: &C::Item) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    C::encode(item, &mut bytes).map_err(Error::Codec)?;
    Ok(bytes)
}

fn decode<C: Codec>(bytes: &[u8]) -> Result<C::Item> {
    C::decode(bytes).map_err(Error::Codec)
}

impl<K: Codec, V: Codec> TypedDb<K, V> {
    /// Wraps an open database.
    pub fn new(db: Db) -> Self {
        TypedDb {
            db,
            codecs: PhantomData,
        }
    }

    /// The byte-level database underneath.
    #[must_use]
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Unwraps the byte-level database.
    pub fn into_inner(self) -> Db {
        self.db
    }

    /// Stores `value` under `key` in a transaction of its own; returns whether it replaced.
    ///
    /// # Errors
    /// [`Error::Codec`], as [`Db::put`].
    pub fn put(&self, key: &K::Item, value: &V::Item) -> Result<bool> {
        self.db.put(&encode::<K>(key)?, &encode::<V>(value)?)
    }

    /// The value under `key` now.
    ///
    /// # Errors
    /// [`Error::Codec`] when the stored bytes do not decode, as [`Db::get`].
    pub fn get(&self, key: &K::Item) -> Result<Option<V::Item>> {
        self.db
            .get_with(&encode::<K>(key)?, decode::<V>)?
            .transpose()
    }

    /// Deletes `key` in a transaction of its own; returns whether it was stored.
    ///
    /// # Errors
    /// As [`TypedDb::put`].
    pub fn delete(&self, key: &K::Item) -> Result<bool> {
        self.db.delete(&encode::<K>(key)?)
    }

    /// As [`TypedDb::get`], in a read transaction's snapshot.
    ///
    /// # Errors
    /// As [`TypedDb::get`].
    pub fn get_in(&self, txn: &ReadTxn<'_>, key: &K::Item) -> Result<Option<V::Item>> {
        txn.get_with(&encode::<K>(key)?, decode::<V>)?.transpose()
    }

    /// As [`TypedDb::get`], as a write transaction sees it.
    ///
    /// # Errors
    /// As [`TypedDb::get`].
    pub fn get_in_write(&self, txn: &WriteTxn<'_>, key: &K::Item) -> Result<Option<V::Item>> {
        txn.get(&encode::<K>(key)?)?
            .map(|bytes| decode::<V>(&bytes))
            .transpose()
    }

    /// As [`TypedDb::put`], inside a write transaction.
    ///
    /// # Errors
    /// As [`TypedDb::put`].
    pub fn put_in(&self, txn: &mut WriteTxn<'_>, key: &K::Item, value: &V::Item) -> Result<bool> {
        txn.put(&encode::<K>(key)?, &encode::<V>(value)?)
    }

    /// As [`TypedDb::delete`], inside a write transaction.
    ///
    /// # Errors
    /// As [`TypedDb::put`].
    pub fn delete_in(&self, txn: &mut WriteTxn<'_>, key: &K::Item) -> Result<bool> {
        txn.delete(&encode::<K>(key)?)
    }

    /// Every record of one snapshot, decoded.
    ///
    /// # Errors
    /// [`Error::Codec`] for a record that does not decode, as [`Db::iter`].
    pub fn entries(&self) -> Result<Vec<(K::Item, V::Item)>> {
        self.db
            .iter()?
            .map(|record| {
                let (key, value) = record?;
                Ok((decode::<K>(&key)?, decode::<V>(&value)?))
            })
            .collect()
    }

    /// Records stored now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.db.len()
    }

    /// Whether no record is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
    }
}
