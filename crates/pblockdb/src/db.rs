//! The database handle: transactions, the single-operation shortcuts, and the read loops
//! that catch up with other processes' rebuilds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use pmap::SharedMap;

use crate::buf::Buf;
use crate::checked::CheckedChunks;
use crate::format::{self, Geometry, OFF_COMMIT, OFF_USER_AREA, OFF_USER_VERSION, USER_AREA_SIZE};
use crate::snapshot::{self, Checksums, ScanOf, ScanPath, Scanned, SlotFailure, Step};
use crate::txn::{ReadTxn, WriteTxn};
use crate::view::{Table, View};
use crate::{Durability, Error, Result};

/// How many times a single-operation read takes a fresh snapshot after its snapshot aged out
/// under it (a commit larger than the history, racing it), before it reports the error.
const FRESH_SNAPSHOT_TRIES: u32 = 64;

/// A record database in a memory-mapped file, shared between threads and processes, with
/// transactions.
///
/// Keys are 0 to [`Db::key_size`] bytes and values 0 to [`Db::value_size`] bytes, both stored
/// and returned exactly. Reads take no lock; writes are transactions ([`Db::begin_write`],
/// [`Db::write`]), one writer at a time across threads and processes; [`Db::put`] and
/// [`Db::delete`] are one-change transactions. See `docs/pblockdb-format.md` for the layout,
/// the snapshot protocol and the crash argument.
#[derive(Debug)]
pub struct Db {
    pub(crate) path: PathBuf,
    pub(crate) geo: Geometry,
    pub(crate) read_only: bool,
    pub(crate) durability: Durability,
    /// The smallest history ring commits keep (entries).
    pub(crate) history_min: u64,
    pub(crate) view: RwLock<View>,
    /// The in-process writer mutex (`lock.rs`); it keeps the buffers of the last write
    /// transaction's levels, which the next one stages into.
    pub(crate) writer: crate::lock::WriterMutex,
    /// A second, fixed view of the header (writable in a writable handle) that holds the
    /// writer word, or whose file handle carries the advisory lock where there is no writer
    /// word, so that waiting for the lock never holds `view` (readers would queue behind a
    /// remap that waits on it).
    pub(crate) locker: SharedMap,
    /// This handle's liveness mark, which it writes into the writer word (`lock.rs`): in a
    /// writable handle where the platform has marks. Behind a mutex because a process forked
    /// from the opener replaces the inherited copy with a mark of its own before it first
    /// writes.
    pub(crate) mark: Option<Mutex<pmap::LivenessMark>>,
    /// Token of the thread holding the writer lock through this handle, 0 when none.
    pub(crate) owner: AtomicUsize,
    /// Token of the thread holding the writer lock through any handle of this process on
    /// this file (shared between them, see `owners.rs`), 0 when none.
    pub(crate) file_owner: Arc<AtomicUsize>,
    /// `(commit, head)` when, at open, the file held a commit whole but for its commit word
    /// (`commit::finished_commit`: a power loss after a synced commit returned): while the
    /// words still say so, reads are at `head`, as recovery will make it.
    pub(crate) finished: Option<(u64, u64)>,
    /// The chunks of a table this handle's scans found sound at a clock, so that a scan
    /// checks a record's checksum once per state of the table (`checked.rs`).
    pub(crate) checked: Mutex<CheckedChunks>,
    /// How this handle shares the file ([`pmap::ShareLock`]): held for its life.
    pub(crate) _share: Option<pmap::ShareLock>,
}

/// What [`Db::verify`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Slots in the table.
    pub capacity: u64,
    /// Live records.
    pub live: u64,
    /// Deleted slots not yet reclaimed by a rebuild.
    pub tombstones: u64,
    /// Never-used slots.
    pub empty: u64,
    /// Versions the history ring can keep for older snapshots.
    pub history: u64,
    /// The commit clock.
    pub clock: u64,
    /// Transactions committed over the life of the file.
    pub commits: u64,
}

/// What [`Db::info`] reads from the header, without a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Info {
    /// Slots in the table.
    pub capacity: u64,
    /// Records stored.
    pub records: u64,
    /// Records plus tombstones in the table.
    pub used: u64,
    /// The commit clock.
    pub clock: u64,
    /// Transactions committed over the life of the file.
    pub commits: u64,
    /// Versions the history ring can keep for older snapshots.
    pub history: u64,
    /// Table rebuilds over the life of the file.
    pub rebuilds: u64,
}

impl Db {
    /// Opens an existing database read-write, adopting its sizes and capacity (creating one
    /// takes its sizes: [`crate::DbOptions::open`]).
    ///
    /// # Errors
    /// [`Error::Map`] with [`pmap::Error::NotFound`] when the file does not exist, the
    /// validation errors listed in `docs/pblockdb-format.md`, or an I/O error.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        crate::open::open_existing(
            path.as_ref(),
            crate::open::Access::ReadWrite,
            crate::open::Writes::plain(),
        )
    }

    /// Opens an existing database read-only: every read works, every write is
    /// [`Error::ReadOnly`]. A commit a crashed writer left unfinished is read past (its
    /// versions are in the history), so this needs no recovery and writes nothing.
    ///
    /// # Errors
    /// As [`Db::open`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Db> {
        crate::open::open_existing(
            path.as_ref(),
            crate::open::Access::ReadOnly,
            crate::open::Writes::plain(),
        )
    }

    pub(crate) fn read_view(&self) -> RwLockReadGuard<'_, View> {
        // A panic elsewhere cannot leave `View` half-updated in a way readers trust: every
        // read re-checks the descriptors it uses.
        self.view.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_view(&self) -> RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The view, once this handle has caught up with the file's table and ring generations.
    #[inline]
    fn caught_up(&self) -> Result<RwLockReadGuard<'_, View>> {
        loop {
            let guard = self.read_view();
            if guard.is_current()? {
                return Ok(guard);
            }
            drop(guard);
            self.refresh()?;
        }
    }

    /// Remaps and re-reads the descriptors after another handle rebuilt or grew something.
    pub(crate) fn refresh(&self) -> Result<()> {
        // Checked under the shared lock first: the common case (nothing moved) must not
        // exclude this handle's readers.
        if self.read_view().is_current()? {
            return Ok(());
        }
        let mut guard = self.write_view();
        if guard.is_current()? {
            return Ok(());
        }
        guard.reload(&self.geo, &self.path)
    }

    /// Re-reads the descriptors even if the generations did not move (a table this handle
    /// read was invalidated by a rebuild in progress).
    fn reload(&self) -> Result<()> {
        self.write_view().reload(&self.geo, &self.path)
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The largest key, in bytes.
    #[must_use]
    pub fn key_size(&self) -> usize {
        self.geo.key_size
    }

    /// The largest value, in bytes.
    #[must_use]
    pub fn value_size(&self) -> usize {
        self.geo.value_size
    }

    /// The table's generation: how many rebuilds the file has seen. A snapshot reads on
    /// across one rebuild; the second makes it [`Error::SnapshotTooOld`]. Not part of the API.
    #[doc(hidden)]
    pub fn table_generation(&self) -> Result<u64> {
        Ok(self.caught_up()?.generation)
    }

    /// Whether reads go through a writable mapping of the data: false for a read-only handle
    /// and for a [`crate::Storage::Write`] handle. Not part of the API.
    #[doc(hidden)]
    #[must_use]
    pub fn data_map_is_writable(&self) -> bool {
        self.read_view().map.is_writable()
    }

    /// Whether this handle was opened read-only.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// How commits through this handle reach the disk unless a transaction says otherwise.
    #[must_use]
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Slots in the current table. It is rebuilt (doubling when needed) once live records plus
    /// tombstones would pass seven eighths of it.
    ///
    /// # Errors
    /// Mapping errors while catching up with another process's rebuild.
    pub fn capacity(&self) -> Result<u64> {
        Ok(self.caught_up()?.active.capacity)
    }

    /// The commit clock: it grows with every committed change, by any process.
    ///
    /// # Errors
    /// Mapping errors.
    pub fn clock(&self) -> Result<u64> {
        self.read_clock(&self.read_view().map)
    }

    /// The clock a new read reads at: the commit word, or the head of a commit found whole but
    /// for its commit word when the handle opened, while the words still say so.
    pub(crate) fn read_clock(&self, map: &pmap::SharedMap) -> Result<u64> {
        let clock = map.load_u64(OFF_COMMIT, Ordering::Acquire)?;
        match self.finished {
            Some((commit, head))
                if clock == commit
                    && map.load_u64(format::OFF_HISTORY_HEAD, Ordering::Acquire)? == head =>
            {
                Ok(head)
            }
            _ => Ok(clock),
        }
    }

    /// Records stored now (another process may be committing).
    #[must_use]
    pub fn len(&self) -> usize {
        let count = self.begin_read().and_then(|txn| txn.len()).unwrap_or(0);
        usize::try_from(count).unwrap_or(usize::MAX)
    }

    /// Whether no record is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transactions committed over the life of the file, by any process.
    #[must_use]
    pub fn commit_count(&self) -> u64 {
        let view = self.read_view();
        crate::commit::counts_now(&view.map)
            .ok()
            .and_then(|(_, counts)| counts)
            .map_or(0, |counts| counts.commits)
    }

    /// The header's figures for the last commit, without a scan.
    ///
    /// # Errors
    /// [`Error::CorruptHeader`] when the count record of the last commit is missing; mapping
    /// errors.
    pub fn info(&self) -> Result<Info> {
        let view = self.caught_up()?;
        let (clock, counts) = crate::commit::counts_now(&view.map)?;
        let counts = counts.ok_or_else(|| self.header_error("counts", clock))?;
        Ok(Info {
            capacity: view.active.capacity,
            records: counts.count,
            used: counts.used,
            clock,
            commits: counts.commits,
            history: view.ring.entries,
            rebuilds: view.generation,
        })
    }

    /// The count of records at `clock`, while the header still holds it.
    pub(crate) fn count_at(&self, clock: u64) -> Result<Option<u64>> {
        let view = self.read_view();
        let counts = crate::commit::counts_at(&view.map, clock)?;
        Ok(counts.map(|(_, counts)| counts.count))
    }

    /// Writes every dirty page back to the file and waits for the disk.
    ///
    /// # Errors
    /// The I/O error the operating system reported.
    pub fn flush(&self) -> Result<()> {
        self.read_view().sync()
    }

    /// Starts a read transaction: a snapshot of the last commit.
    ///
    /// # Errors
    /// Mapping errors.
    pub fn begin_read(&self) -> Result<ReadTxn<'_>> {
        ReadTxn::new(self)
    }

    /// Starts a write transaction, waiting for the writer lock (other threads' and processes'
    /// transactions), and rolls back whatever a crashed writer left.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Reentrant`] from the thread that already holds this
    /// handle's write transaction; [`Error::WouldDeadlock`] when it holds one through another
    /// handle on the same file; I/O errors from locking.
    pub fn begin_write(&self) -> Result<WriteTxn<'_>> {
        WriteTxn::new(self)
    }

    /// Runs `f` in a read transaction.
    ///
    /// # Errors
    /// What `f` returned, or as [`Db::begin_read`].
    pub fn read<R>(&self, f: impl FnOnce(&ReadTxn<'_>) -> Result<R>) -> Result<R> {
        f(&self.begin_read()?)
    }

    /// Runs `f` in a write transaction, committed when `f` returns `Ok` and aborted when it
    /// returns `Err`.
    ///
    /// # Errors
    /// What `f` returned, or as [`Db::begin_write`] and [`WriteTxn::commit`].
    pub fn write<R>(&self, f: impl FnOnce(&mut WriteTxn<'_>) -> Result<R>) -> Result<R> {
        let mut txn = self.begin_write()?;
        let value = f(&mut txn)?;
        txn.commit()?;
        Ok(value)
    }

    /// Stores `value` under `key` in a transaction of its own; returns whether it replaced a
    /// value.
    ///
    /// # Errors
    /// As [`WriteTxn::put`] and [`WriteTxn::commit`].
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        self.write(|txn| txn.put(key, value))
    }

    /// Deletes `key` in a transaction of its own; returns whether it was stored.
    ///
    /// # Errors
    /// As [`Db::put`].
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.write(|txn| txn.delete(key))
    }

    /// The value stored under `key` now.
    ///
    /// # Errors
    /// [`Error::KeySize`]; [`Error::CorruptSlot`] when the record fails its checksum; mapping
    /// errors.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, <[u8]>::to_vec)
    }

    /// Calls `f` with the value stored under `key` now, borrowed from a scratch buffer (no
    /// allocation for slots up to 256 bytes).
    ///
    /// # Errors
    /// As [`Db::get`].
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        let mut f = Some(f);
        for _ in 0..FRESH_SNAPSHOT_TRIES {
            match self.get_at(None, key, |value| f.take().map(|f| f(value))) {
                Err(Error::SnapshotTooOld { .. }) => continue,
                other => return other.map(Option::flatten),
            }
        }
        Err(Error::SnapshotTooOld {
            path: self.path.clone(),
        })
    }

    /// Whether `key` is stored now.
    ///
    /// # Errors
    /// As [`Db::get`].
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get_with(key, |_| ())?.is_some())
    }

    /// Looks `key` up as of clock `clock` (`None`: the last commit, read under the same view
    /// guard as the lookup).
    pub(crate) fn get_at<R>(
        &self,
        clock: Option<u64>,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        if key.len() > self.geo.key_size {
            return Err(Error::KeySize {
                given: key.len(),
                expected: self.geo.key_size,
            });
        }
        let mut image = Buf::zeroed(self.geo.slot_size);
        let found = self.at_snapshot(clock, |view, table, clock| {
            snapshot::lookup(view, &self.geo, table, key, clock, &mut image)
        })?;
        Ok(found.then(|| f(format::value_of(&image, &self.geo).unwrap_or(&[]))))
    }

    /// Calls `f` with every record live at `clock`, in table order, a chunk of slots at a time:
    /// each chunk is read as of the snapshot and handed out once the table is known to have
    /// been intact while it was read, with no lock of this handle held (so `f` may use the
    /// handle). The table cannot change under a snapshot except by being reused, which makes
    /// the snapshot too old: so a chunk that must be read again is read again from the same
    /// table, and a snapshot whose table went away after some records were handed out ends in
    /// [`Error::SnapshotTooOld`] rather than starting over (which would hand records out twice).
    pub(crate) fn for_each_at(&self, clock: u64, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let mut image = Buf::zeroed(self.geo.slot_size);
        let mut out = Scanned::new(self.geo);
        let mut cursor = ChunkCursor::default();
        while self.read_chunk(clock, &mut cursor, &mut image, &mut out)? {
            for (key, value) in out.records() {
                f(key, value);
            }
        }
        Ok(())
    }

    /// The records live at `clock`, counted a chunk at a time.
    pub(crate) fn count_by_scan(&self, clock: u64) -> Result<u64> {
        let mut image = Buf::zeroed(self.geo.slot_size);
        let mut out = Scanned::new(self.geo);
        let mut cursor = ChunkCursor::default();
        let mut count = 0u64;
        while self.read_chunk(clock, &mut cursor, &mut image, &mut out)? {
            count += out.len() as u64;
        }
        Ok(count)
    }

    /// Reads the next chunk of the snapshot at `clock` after `cursor` into `out` (cleared
    /// first) and moves the cursor past it, as [`Db::for_each_at`] describes; `false`, and
    /// nothing read, once the cursor is past the table's end.
    pub(crate) fn read_chunk(
        &self,
        clock: u64,
        cursor: &mut ChunkCursor,
        image: &mut [u8],
        out: &mut Scanned,
    ) -> Result<bool> {
        /// Slots a chunk covers: its records fit a few hundred KB, and the view is taken
        /// again between chunks.
        const CHUNK: u64 = crate::checked::CHUNK_SLOTS;
        loop {
            let view = self.caught_up()?;
            // Once records were handed out, go on in the table they came from: a rebuild since
            // then left it as it was at the rebuild's clock, which is at least this snapshot's.
            let table = match cursor.generation {
                Some(g) => [Some(view.active), view.previous]
                    .into_iter()
                    .flatten()
                    .find(|table| table.generation == g),
                None => view.table_for(clock),
            };
            let Some(table) = table else {
                return Err(self.too_old());
            };
            out.clear();
            if cursor.next >= table.capacity {
                return Ok(false);
            }
            let end = cursor.next.saturating_add(CHUNK).min(table.capacity);
            let chunk = cursor.next / CHUNK;
            let checksums = {
                let mut checked = self.checked_chunks();
                checked.advance(&view, &self.geo, table.generation, clock)?;
                if checked.holds(table.generation, clock, chunk) {
                    Checksums::Trust
                } else {
                    Checksums::Check
                }
            };
            let of = ScanOf {
                view: &view,
                geo: &self.geo,
                table: &table,
                snapshot: clock,
            };
            let step = snapshot::scan_range(&of, cursor.next..end, checksums, image, out);
            if let Some(path) = self.resolve_step(view, self.slot_step(step)?)? {
                if path == ScanPath::Unchanged && checksums == Checksums::Check {
                    self.checked_chunks().mark(table.generation, clock, chunk);
                }
                cursor.next = end;
                cursor.generation = Some(table.generation);
                return Ok(true);
            }
        }
    }

    /// The value of a finished read step, with the view guard released; or `None` after
    /// catching up for another try (a table being reused: reload; a version gone while the
    /// view was stale: refresh); or the error when the snapshot is too old.
    fn resolve_step<T>(&self, view: RwLockReadGuard<'_, View>, step: Step<T>) -> Result<Option<T>> {
        match step {
            Step::Done(value) => Ok(Some(value)),
            Step::Retry => {
                drop(view);
                self.reload()?;
                Ok(None)
            }
            Step::TooOld if view.is_current()? => Err(self.too_old()),
            Step::TooOld => {
                drop(view);
                self.refresh()?;
                Ok(None)
            }
        }
    }

    /// Runs the read `step` as of `clock` (`None`: the last commit, read under the same view
    /// guard) on the table that holds it, starting again when the table was being reused or
    /// the view was stale, until it is done or the snapshot is too old.
    fn at_snapshot<T>(
        &self,
        clock: Option<u64>,
        mut step: impl FnMut(&View, &Table, u64) -> snapshot::SlotResult<Step<T>>,
    ) -> Result<T> {
        loop {
            let view = self.caught_up()?;
            let clock = match clock {
                Some(clock) => clock,
                None => self.read_clock(&view.map)?,
            };
            let Some(table) = view.table_for(clock) else {
                return Err(self.too_old());
            };
            let done = self.slot_step(step(&view, &table, clock))?;
            if let Some(value) = self.resolve_step(view, done)? {
                return Ok(value);
            }
        }
    }

    fn slot_step<T>(&self, step: snapshot::SlotResult<Step<T>>) -> Result<Step<T>> {
        step.map_err(|failure| match failure {
            SlotFailure::Slot(problem) => self.corrupt(problem.slot, problem.reason),
            SlotFailure::Other(e) => e,
        })
    }

    /// The chunks this handle's scans found sound (`checked.rs`), locked.
    fn checked_chunks(&self) -> std::sync::MutexGuard<'_, CheckedChunks> {
        self.checked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn too_old(&self) -> Error {
        Error::SnapshotTooOld {
            path: self.path.clone(),
        }
    }

    /// Every record now, as owned pairs, each live key exactly once (one snapshot), read a
    /// chunk at a time ([`Iter`]).
    ///
    /// # Errors
    /// Mapping errors when the snapshot is taken; the iterator's items carry the errors of
    /// the reads ([`Error::CorruptSlot`] for a record that fails its checksum).
    pub fn iter(&self) -> Result<Iter<'_>> {
        self.begin_read()?.iter()
    }

    /// Calls `f` with every record now (one snapshot), borrowed from one buffer.
    ///
    /// # Errors
    /// As [`Db::iter`].
    pub fn for_each(&self, f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        self.begin_read()?.for_each(f)
    }

    /// The first record (in table order) for which `predicate(key, value)` holds.
    ///
    /// # Errors
    /// As [`Db::iter`].
    pub fn find(
        &self,
        mut predicate: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        // A chunk at a time, stopping at the first match.
        let clock = self.clock()?;
        let mut image = Buf::zeroed(self.geo.slot_size);
        let mut out = Scanned::new(self.geo);
        let mut cursor = ChunkCursor::default();
        while self.read_chunk(clock, &mut cursor, &mut image, &mut out)? {
            if let Some((key, value)) = out.records().find(|(key, value)| predicate(key, value)) {
                return Ok(Some((key.to_vec(), value.to_vec())));
            }
        }
        Ok(None)
    }

    /// The user area: [`USER_AREA_SIZE`] bytes in the header, free for the application (not
    /// part of transactions).
    ///
    /// # Errors
    /// Mapping errors.
    pub fn user_area(&self) -> Result<Vec<u8>> {
        let guard = self.read_view();
        let mut out = vec![0u8; USER_AREA_SIZE];
        loop {
            let version = guard.map.load_u64(OFF_USER_VERSION, Ordering::Acquire)?;
            guard
                .map
                .read_at(OFF_USER_AREA[(version & 1) as usize], &mut out)?;
            fence(Ordering::Acquire);
            if guard.map.load_u64(OFF_USER_VERSION, Ordering::Relaxed)? == version {
                return Ok(out);
            }
        }
    }

    /// Replaces the user area with `data` followed by zeros, under the writer lock: the other
    /// copy is filled, then one store switches to it, so a crash leaves the old or the new.
    ///
    /// # Errors
    /// [`Error::UserAreaSize`] when `data` exceeds [`USER_AREA_SIZE`] bytes, as
    /// [`Db::begin_write`].
    pub fn set_user_area(&self, data: &[u8]) -> Result<()> {
        if data.len() > USER_AREA_SIZE {
            return Err(Error::UserAreaSize {
                given: data.len(),
                max: USER_AREA_SIZE,
            });
        }
        let _lock = self.lock_writer()?;
        let guard = self.read_view();
        let map = &guard.map;
        let version = map
            .load_u64(OFF_USER_VERSION, Ordering::Acquire)?
            .wrapping_add(1);
        let mut area = vec![0u8; USER_AREA_SIZE];
        area[..data.len()].copy_from_slice(data);
        guard.put(OFF_USER_AREA[(version & 1) as usize], &area)?;
        guard.store_word(OFF_USER_VERSION, version, Ordering::Release)?;
        if self.durability == Durability::Synced {
            guard.storage.sync_range(map, 0, format::PAGE as usize)?;
        }
        Ok(())
    }

    pub(crate) fn corrupt(&self, slot: u64, reason: &'static str) -> Error {
        Error::CorruptSlot {
            path: self.path.clone(),
            slot,
            reason,
        }
    }

    pub(crate) fn header_error(&self, field: &'static str, value: u64) -> Error {
        Error::CorruptHeader {
            path: self.path.clone(),
            field,
            value,
        }
    }
}

/// Where a read of one snapshot a chunk at a time is: the next slot, and once records were
/// read, the generation of the table they came from.
#[derive(Debug, Default)]
pub(crate) struct ChunkCursor {
    next: u64,
    generation: Option<u64>,
}

/// Owned `(key, value)` pairs of one snapshot, from [`Db::iter`] or [`ReadTxn::iter`], read a
/// chunk of the table at a time (as [`Db::for_each`] reads it), so that memory stays bounded
/// whatever the table's size. Each live key comes exactly once. An error ends the iteration:
/// a damaged record ([`Error::CorruptSlot`]), or a snapshot that writers left behind while it
/// was read ([`Error::SnapshotTooOld`], as for any read of an old snapshot).
#[derive(Debug)]
pub struct Iter<'db> {
    db: &'db Db,
    clock: u64,
    cursor: ChunkCursor,
    image: Buf,
    scanned: Scanned,
    /// The number of the next record of `scanned`.
    at: usize,
    finished: bool,
}

impl<'db> Iter<'db> {
    pub(crate) fn new(db: &'db Db, clock: u64) -> Self {
        Iter {
            db,
            clock,
            cursor: ChunkCursor::default(),
            image: Buf::zeroed(db.geo.slot_size),
            scanned: Scanned::new(db.geo),
            at: 0,
            finished: false,
        }
    }
}

impl Iterator for Iter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((key, value)) = self.scanned.records_from(self.at).next() {
                self.at += 1;
                return Some(Ok((key.to_vec(), value.to_vec())));
            }
            if self.finished {
                return None;
            }
            self.at = 0;
            match self.db.read_chunk(
                self.clock,
                &mut self.cursor,
                &mut self.image,
                &mut self.scanned,
            ) {
                Ok(true) => {}
                Ok(false) => self.finished = true,
                Err(e) => {
                    self.finished = true;
                    self.scanned.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}
