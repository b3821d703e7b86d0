//! Hot backup: a consistent copy of one commit, written while writers run.

use std::path::Path;

use crate::{Db, DbOptions, Durability, Error, Result};

impl Db {
    /// Writes the records of one snapshot (the last commit) to a new database file at `dest`,
    /// while other threads and processes go on writing, as LMDB's `mdb_env_copy` with
    /// compaction: the copy holds exactly that commit's records, in a fresh table sized for
    /// them, synced to disk, and appears at `dest` only when complete (written beside it, then
    /// renamed). Returns the number of records copied.
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
        let scanned = self.scan_at(txn.clock())?;
        let records = scanned.len() as u64;
        let mut partial = dest.as_os_str().to_owned();
        partial.push(format!(".partial-{}", std::process::id()));
        let partial = std::path::PathBuf::from(partial);
        let _ = std::fs::remove_file(&partial);
        let copy = DbOptions::new(self.geo.key_size, self.geo.value_size)
            .capacity(records)
            .history(records.saturating_mul(2))
            .durability(Durability::Synced)
            .open(&partial)?;
        copy.write(|out| {
            for (key, value) in scanned.records() {
                out.put(key, value)?;
            }
            Ok(())
        })?;
        copy.flush()?;
        drop(copy);
        std::fs::rename(&partial, dest).map_err(|source| pmap::Error::Io {
            op: "rename",
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(records)
    }
}
