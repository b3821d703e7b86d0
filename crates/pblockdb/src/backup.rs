//! Hot backup: a consistent copy of one commit, written while writers run.

use std::path::Path;

use crate::buf::Buf;
use crate::db::ChunkCursor;
use crate::snapshot::Scanned;
use crate::{Db, DbOptions, Durability, Error, Result};

impl Db {
    /// Writes the records of one snapshot (the last commit) to a new database file at `dest`,
    /// while other threads and processes go on writing, as LMDB's `mdb_env_copy` with
    /// compaction: the copy holds exactly that commit's records, in a fresh table sized for
    /// them, synced to disk, and appears at `dest` only when complete (written beside it, then
    /// renamed). The snapshot is read, and the copy written, a chunk of the table at a time, so
    /// memory stays bounded whatever the database's size. Returns the number of records copied.
    ///
    /// A plain file copy of a live database is not a backup: it mixes pages from before and
    /// after concurrent commits.
    ///
    /// # Errors
    /// [`Error::BackupExists`] when `dest` exists; [`Error::SnapshotTooOld`] if writers
    /// outran the history during the copy (retry, or give the database more history); I/O
    /// errors.
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<u64> {
        let dest = dest.as_ref();
        if dest.exists() {
            return Err(Error::BackupExists {
                path: dest.to_path_buf(),
            });
        }
        let txn = self.begin_read()?;
        let records = txn.len()?;
        // The copy keeps the source's room for old snapshots; it is written a chunk of the
        // source's table a transaction (the file is not the backup until it is renamed), so
        // neither side holds more than a chunk in memory.
        let history = self.read_view().ring.entries;
        let mut partial = dest.as_os_str().to_owned();
        partial.push(format!(".partial-{}", std::process::id()));
        let partial = std::path::PathBuf::from(partial);
        let _ = std::fs::remove_file(&partial);
        let copy = DbOptions::new(self.geo.key_size, self.geo.value_size)
            .capacity(records)
            .history(history)
            .durability(Durability::Buffered)
            .open(&partial)?;
        let mut image = Buf::zeroed(self.geo.slot_size);
        let mut chunk = Scanned::new(self.geo);
        let mut cursor = ChunkCursor::default();
        let mut copied = 0u64;
        while self.read_chunk(txn.clock(), &mut cursor, &mut image, &mut chunk)? {
            copy.write(|out| {
                for (key, value) in chunk.records() {
                    out.put(key, value)?;
                }
                Ok(())
            })?;
            copied += chunk.len() as u64;
        }
        copy.flush()?;
        drop(copy);
        std::fs::rename(&partial, dest).map_err(|source| pmap::Error::Io {
            op: "rename",
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(copied)
    }
}
