//! Noticing that another program cut the log's file short, before a reader touches the pages
//! that are gone (which raises `SIGBUS`, not an error: docs/plog-format.md, "Limits").
//!
//! A look is one `fstat` (a few hundred nanoseconds, several records' worth of reading), so a
//! reader does not look before every read of the ring. It looks where a truncation is likely
//! to have happened since the last look: before its first read, after it returned without a
//! record (its caller may then wait any time) or slept, and before every
//! [`LENGTH_CHECK_READS`]-th read otherwise. A truncation while it reads between two looks is
//! still a `SIGBUS`.

use crate::log::LogState;
use crate::{Error, Result};

/// A reader that keeps reading without a pause looks at the file's length before at least one
/// read of the ring in this many (a read is one record for a plain reader, a batch of up to 32
/// for followers and dumps): at most a few nanoseconds a record.
pub(crate) const LENGTH_CHECK_READS: u32 = 256;

/// When a reader next looks at its file's length, and what it found once the file was short.
#[derive(Debug)]
pub(crate) struct LengthCheck {
    /// Reads of the ring left before the next look; 0: look before the next read.
    reads_left: u32,
    /// The file's length when it was found shorter than the log: the reader touches the
    /// mapping no more, and says so at every call.
    cut_to: Option<u64>,
}

impl LengthCheck {
    /// A check that looks before the first read.
    pub(crate) fn new() -> LengthCheck {
        LengthCheck {
            reads_left: 0,
            cut_to: None,
        }
    }

    /// Looks before the next read (the reader's caller may wait any time before it).
    pub(crate) fn look_next_time(&mut self) {
        self.reads_left = 0;
    }

    /// Before a read of the ring: `Err` with the file's length if the file is (or was once
    /// found) shorter than the log, looking at it if a look is due.
    pub(crate) fn before_read(&mut self, inner: &LogState) -> Result<(), u64> {
        if let Some(len) = self.cut_to {
            return Err(len);
        }
        if let Some(left) = self.reads_left.checked_sub(1) {
            self.reads_left = left;
            return Ok(());
        }
        self.reads_left = LENGTH_CHECK_READS - 1;
        match inner.cut_short() {
            Some(len) => {
                self.cut_to = Some(len);
                Err(len)
            }
            None => Ok(()),
        }
    }
}

impl LogState {
    /// The file's length if it is shorter than the log (another program truncated it since it
    /// was opened). A length the system cannot tell (a failed `fstat`) counts as whole: the
    /// reader goes on, as it did before it looked.
    pub(crate) fn cut_short(&self) -> Option<u64> {
        let len = self.map.file_len().ok()?;
        (len < self.geometry.file_len()).then_some(len)
    }

    /// [`Error::Truncated`] for a file found `len` bytes long.
    pub(crate) fn truncated(&self, len: u64) -> Error {
        Error::Truncated {
            path: self.path(),
            expected: self.geometry.file_len(),
            found: len,
        }
    }

    /// `Err(Error::Truncated)` if the file is shorter than the log: for the header's rare
    /// users (cursors), which look every time.
    pub(crate) fn require_whole(&self) -> Result<()> {
        match self.cut_short() {
            Some(len) => Err(self.truncated(len)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogOptions;

    #[test]
    fn looks_first_then_every_few_reads_and_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogOptions::new()
            .blocks(8)
            .block_size(64)
            .open(dir.path().join("t.plog"))
            .unwrap();
        let inner = &log.inner;
        let mut check = LengthCheck::new();
        assert_eq!(check.before_read(inner), Ok(()));
        assert_eq!(check.reads_left, LENGTH_CHECK_READS - 1);
        for _ in 1..LENGTH_CHECK_READS {
            assert_eq!(check.before_read(inner), Ok(()));
        }
        assert_eq!(check.reads_left, 0, "the next read looks");
        check.before_read(inner).unwrap();
        check.look_next_time();
        assert_eq!(check.reads_left, 0);
    }
}
