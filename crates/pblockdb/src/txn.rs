//! Transactions: a read transaction is a snapshot clock; a write transaction is the writer
//! lock plus the changes it has made so far, in memory, in one layer per nesting level.

use crate::buf::Buf;
use crate::commit::{self, Found};
use crate::lock::WriteLock;
use crate::staged::{Change, Staged};
use crate::{Db, Durability, Error, Result, format};

/// A consistent snapshot of the database: every read through it sees the state of one commit,
/// whatever writers do meanwhile. It takes no lock and registers nowhere, so it never blocks a
/// writer, a writer never blocks it, and a reader that dies leaves nothing behind.
///
/// Versions that commits replace are kept in the file's history ring for readers like this
/// one; a snapshot that outlives them (the ring lapped it, or two rebuilds passed) gets
/// [`Error::SnapshotTooOld`] from its next read, never a mixed view. The history's size is
/// [`crate::DbOptions::history`].
///
/// ```
/// # fn main() -> Result<(), pblockdb::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("accounts.db");
/// let db = pblockdb::DbOptions::new(16, 8).open(&path)?;
/// db.write(|txn| {
///     txn.put(b"alice", &50u64.to_le_bytes())?;
///     txn.put(b"bob", &50u64.to_le_bytes())
/// })?;
/// let before = db.begin_read()?;
/// db.write(|txn| {
///     txn.put(b"alice", &20u64.to_le_bytes())?;
///     txn.put(b"bob", &80u64.to_le_bytes())
/// })?;
/// // The snapshot still sees the state before the transfer.
/// assert_eq!(before.get(b"alice")?, Some(50u64.to_le_bytes().to_vec()));
/// assert_eq!(db.get(b"alice")?, Some(20u64.to_le_bytes().to_vec()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReadTxn<'db> {
    db: &'db Db,
    clock: u64,
}

impl<'db> ReadTxn<'db> {
    pub(crate) fn new(db: &'db Db) -> Result<Self> {
        let clock = db.read_clock(&db.read_view().map)?;
        Ok(ReadTxn { db, clock })
    }

    /// The commit clock this snapshot reads.
    #[must_use]
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The value stored under `key` in this snapshot.
    ///
    /// # Errors
    /// [`Error::KeySize`], [`Error::SnapshotTooOld`], [`Error::CorruptSlot`], mapping errors.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, <[u8]>::to_vec)
    }

    /// Calls `f` with the value stored under `key` in this snapshot, borrowed from a scratch
    /// buffer (no allocation for slots up to 256 bytes).
    ///
    /// # Errors
    /// As [`ReadTxn::get`].
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.db.get_at(Some(self.clock), key, f)
    }

    /// Whether `key` is stored in this snapshot.
    ///
    /// # Errors
    /// As [`ReadTxn::get`].
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get_with(key, |_| ())?.is_some())
    }

    /// Every record of this snapshot, each live key exactly once, as owned pairs in table
    /// order, read a chunk at a time ([`crate::Iter`]).
    ///
    /// # Errors
    /// None when it is made; the iterator's items carry [`Error::SnapshotTooOld`],
    /// [`Error::CorruptSlot`] and mapping errors.
    pub fn iter(&self) -> Result<crate::Iter<'db>> {
        Ok(crate::Iter::new(self.db, self.clock))
    }

    /// Calls `f` with every record of this snapshot, borrowed from one buffer.
    ///
    /// # Errors
    /// As [`ReadTxn::iter`].
    pub fn for_each(&self, f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        self.db.for_each_at(self.clock, f)
    }

    /// Records in this snapshot (counted by a scan when the snapshot is no longer the
    /// newest).
    ///
    /// # Errors
    /// As [`ReadTxn::iter`].
    pub fn len(&self) -> Result<u64> {
        if let Some(count) = self.db.count_at(self.clock)? {
            return Ok(count);
        }
        self.db.count_by_scan(self.clock)
    }

    /// Whether this snapshot holds no record.
    ///
    /// # Errors
    /// As [`ReadTxn::iter`].
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// A write transaction: the writer lock (one writer at a time, across threads and processes)
/// and the changes made so far. Reads through it see its own changes. Nothing is visible to
/// anyone else until [`WriteTxn::commit`], which applies all of it atomically, across a crash
/// at any instruction too; dropping it, or [`WriteTxn::abort`], discards all of it.
///
/// [`WriteTxn::nested`] starts a child transaction, as LMDB's nested transactions: it sees its
/// parent's changes; committing it makes its changes part of the parent; aborting it discards
/// only its own.
///
/// ```
/// # fn main() -> Result<(), pblockdb::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("nested.db");
/// let db = pblockdb::DbOptions::new(8, 8).open(&path)?;
/// let mut txn = db.begin_write()?;
/// txn.put(b"a", b"1")?;
/// let mut child = txn.nested();
/// child.put(b"b", b"2")?;
/// assert_eq!(child.get(b"a")?, Some(b"1".to_vec()));
/// child.abort();
/// assert_eq!(txn.get(b"b")?, None);
/// txn.commit()?;
/// assert_eq!(db.get(b"a")?, Some(b"1".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WriteTxn<'db> {
    lock: WriteLock<'db>,
    /// The changes of each open level: the transaction itself, then each nested child.
    levels: Vec<Staged>,
    durability: Durability,
    /// A slot's bytes, for probes.
    scratch: Buf,
}

impl<'db> WriteTxn<'db> {
    pub(crate) fn new(db: &'db Db) -> Result<Self> {
        let mut lock = db.lock_writer()?;
        let generation = db.read_view().active.generation;
        // The last transaction's buffers, so that a small one allocates nothing.
        let mut levels = std::mem::take(&mut *lock.spare);
        levels.truncate(1);
        match levels.first_mut() {
            Some(level) => level.reset(generation),
            None => levels.push(Staged::new(db.geo.key_size, db.geo.value_size, generation)),
        }
        Ok(WriteTxn {
            lock,
            levels,
            durability: db.durability,
            scratch: Buf::zeroed(db.geo.slot_size),
        })
    }

    fn db(&self) -> &'db Db {
        self.lock.db
    }

    /// Sets how this transaction's commit reaches the disk (the database's default otherwise).
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    fn check(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let geo = self.db().geo;
        if key.len() > geo.key_size {
            return Err(Error::KeySize {
                given: key.len(),
                expected: geo.key_size,
            });
        }
        if let Some(value) = value.filter(|v| v.len() > geo.value_size) {
            return Err(Error::ValueSize {
                given: value.len(),
                expected: geo.value_size,
            });
        }
        Ok(())
    }

    /// The innermost level's change of `key` (hashed to `hash`), if any level has one.
    fn pending(&self, key: &[u8], hash: u64) -> Option<Change<'_>> {
        self.levels
            .iter()
            .rev()
            .find_map(|level| level.get(key, hash))
    }

    /// Where `key` is in the committed state, or where an insert of it would go; an error when
    /// its record fails its checksum (as a read of it would).
    fn probe(&mut self, key: &[u8], hash: u64) -> Result<Found> {
        let db = self.db();
        let view = db.read_view();
        let found = commit::probe(db, &view, key, hash, &mut self.scratch)?;
        if let Found::Existing(slot) = found {
            if !format::image_is_sound(&self.scratch, &db.geo) {
                return Err(db.corrupt(slot, "checksum mismatch"));
            }
        }
        Ok(found)
    }

    /// Stages `value` (`None`: a deletion) for `key` in the innermost level; returns whether
    /// the key held a value before.
    fn stage(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<bool> {
        let hash = format::hash_key(key);
        let (existed, probe) = match self.pending(key, hash) {
            Some(change) => (change.value.is_some(), change.probe),
            None => {
                let probe = self.probe(key, hash)?;
                (matches!(probe, Found::Existing(_)), probe)
            }
        };
        if value.is_some() || existed {
            self.top().set(key, hash, value, probe);
        }
        Ok(existed)
    }

    /// The value of `key` as this transaction sees it: its own changes over the committed
    /// state.
    ///
    /// # Errors
    /// [`Error::KeySize`], [`Error::CorruptSlot`], mapping errors.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check(key, None)?;
        if let Some(change) = self.pending(key, format::hash_key(key)) {
            return Ok(change.value.map(<[u8]>::to_vec));
        }
        self.db().get(key)
    }

    /// Whether `key` is stored, as this transaction sees it.
    ///
    /// # Errors
    /// As [`WriteTxn::get`].
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        self.check(key, None)?;
        if let Some(change) = self.pending(key, format::hash_key(key)) {
            return Ok(change.value.is_some());
        }
        self.db().contains(key)
    }

    /// Stores `value` under `key` (both exactly as given, up to the database's key and value
    /// sizes); returns whether it replaced a value.
    ///
    /// # Errors
    /// [`Error::KeySize`], [`Error::ValueSize`], as [`WriteTxn::get`].
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool> {
        self.check(key, Some(value))?;
        self.stage(key, Some(value))
    }

    /// Deletes `key`; returns whether it was stored.
    ///
    /// # Errors
    /// As [`WriteTxn::get`].
    pub fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.check(key, None)?;
        self.stage(key, None)
    }

    fn top(&mut self) -> &mut Staged {
        // `levels` always holds the transaction's own level.
        let last = self.levels.len() - 1;
        &mut self.levels[last]
    }

    /// Every record as this transaction sees it (the last commit with this transaction's
    /// changes, its open nested levels' included), as owned pairs, each key once: the committed
    /// records are read a chunk at a time (as [`ReadTxn::iter`] reads them) and each that this
    /// transaction changed is passed over, then the records this transaction put follow. The
    /// iterator copies this transaction's changes when it is made and borrows nothing of the
    /// transaction, so the loop may change it (`for r in txn.iter()? { let (k, v) = r?;
    /// txn.put(&k, ..)?; }`) and sees none of those changes.
    ///
    /// # Errors
    /// As [`ReadTxn::iter`]: the items carry the errors of the reads ([`Error::CorruptSlot`]
    /// for a record that fails its checksum). Iterated after this transaction commits, the
    /// snapshot ages as any other and may end in [`Error::SnapshotTooOld`].
    pub fn iter(&self) -> Result<WriteIter<'db>> {
        let db = self.db();
        let mut staged = self.levels[0].clone();
        for level in &self.levels[1..] {
            staged.absorb(level);
        }
        Ok(WriteIter {
            committed: crate::Iter::new(db, db.clock()?),
            staged,
            next_staged: 0,
            scanning: true,
        })
    }

    /// Starts a nested transaction. It borrows this one, which is usable again once the child
    /// is committed or aborted (dropping it aborts it).
    pub fn nested(&mut self) -> Nested<'_, 'db> {
        let top = &self.levels[0];
        let child = Staged::new(
            self.db().geo.key_size,
            self.db().geo.value_size,
            top.generation(),
        );
        self.levels.push(child);
        Nested {
            txn: self,
            open: true,
        }
    }

    /// Runs `f` in a nested transaction, committed into this one when `f` returns `Ok` and
    /// aborted when it returns `Err`.
    ///
    /// # Errors
    /// What `f` returned.
    pub fn nested_with<R>(&mut self, f: impl FnOnce(&mut WriteTxn<'db>) -> Result<R>) -> Result<R> {
        let mut child = self.nested();
        let result = f(&mut child);
        match result {
            Ok(value) => {
                child.commit();
                Ok(value)
            }
            Err(e) => {
                child.abort();
                Err(e)
            }
        }
    }

    /// Applies every change atomically and releases the writer lock. After a crash at any
    /// point, the database holds all of this transaction or none of it.
    ///
    /// # Errors
    /// [`Error::Full`] when the table or history must grow and the file cannot (nothing was
    /// applied); [`Error::CorruptSlot`] on a damaged probe path; mapping errors.
    pub fn commit(self) -> Result<()> {
        // Only the transaction's own level is open: a child borrows the transaction.
        commit::commit(&self.lock, &self.levels[0], self.durability)
    }

    /// Discards every change and releases the writer lock.
    pub fn abort(self) {}
}

impl Drop for WriteTxn<'_> {
    fn drop(&mut self) {
        // The buffers go back to the writer mutex (still held: the lock is dropped after this).
        *self.lock.spare = std::mem::take(&mut self.levels);
    }
}

/// A nested transaction (from [`WriteTxn::nested`]): a [`WriteTxn`] whose changes, on
/// [`Nested::commit`], join its parent's instead of the file. Dropping it aborts it.
#[derive(Debug)]
pub struct Nested<'p, 'db> {
    txn: &'p mut WriteTxn<'db>,
    open: bool,
}

impl Nested<'_, '_> {
    /// Makes this child's changes part of its parent.
    pub fn commit(mut self) {
        self.open = false;
        if let Some(child) = self.txn.levels.pop() {
            self.txn.top().absorb(&child);
        }
    }

    /// Discards this child's changes only.
    pub fn abort(self) {}
}

impl Drop for Nested<'_, '_> {
    fn drop(&mut self) {
        if self.open {
            self.txn.levels.pop();
        }
    }
}

impl<'db> std::ops::Deref for Nested<'_, 'db> {
    type Target = WriteTxn<'db>;
    fn deref(&self) -> &WriteTxn<'db> {
        self.txn
    }
}

impl<'db> std::ops::DerefMut for Nested<'_, 'db> {
    fn deref_mut(&mut self) -> &mut WriteTxn<'db> {
        self.txn
    }
}

/// The records as a write transaction saw them when [`WriteTxn::iter`] made this: the committed
/// records it did not change, read a chunk at a time, then the ones it put. Memory: a chunk of
/// the table and a copy of the transaction's changes, whatever the table's size.
#[derive(Debug)]
pub struct WriteIter<'db> {
    committed: crate::Iter<'db>,
    /// The transaction's changes, its levels merged (the innermost change of a key wins).
    staged: Staged,
    /// The next change of `staged` to hand out, once `committed` is done.
    next_staged: usize,
    /// Still in `committed`; false after it ended or failed.
    scanning: bool,
}

impl Iterator for WriteIter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.scanning {
            match self.committed.next() {
                Some(Ok((key, value))) => {
                    let changed = self.staged.len() > 0
                        && self.staged.get(&key, format::hash_key(&key)).is_some();
                    if !changed {
                        return Some(Ok((key, value)));
                    }
                }
                Some(Err(e)) => {
                    // An error ends the iteration: nothing of the staged records either.
                    self.scanning = false;
                    self.next_staged = self.staged.len();
                    return Some(Err(e));
                }
                None => self.scanning = false,
            }
        }
        while let Some(change) = self.staged.change_at(self.next_staged) {
            self.next_staged += 1;
            if let Some(value) = change.value {
                return Some(Ok((change.key.to_vec(), value.to_vec())));
            }
        }
        None
    }
}
