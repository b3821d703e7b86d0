//! Named persistent cursors: reader positions saved under a name in the header.
//!
//! Each of the 16 slots holds a state word (0 free, 1 being claimed, 2 in use), the position,
//! and the name (NUL-padded). A slot is claimed with a compare-and-swap of its state, so two
//! processes never write the same slot's name.

use std::sync::atomic::Ordering;

use crate::format::{CURSOR_SLOT_LEN, CURSOR_SLOTS, CURSORS_OFF, MAX_CURSOR_NAME};
use crate::log::LogState;
use crate::{Error, Log, Reader, Result};

const FREE: u64 = 0;
const CLAIMING: u64 = 1;
const IN_USE: u64 = 2;

fn slot_off(slot: usize) -> usize {
    CURSORS_OFF + slot * CURSOR_SLOT_LEN
}

fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_CURSOR_NAME {
        "longer than 47 bytes"
    } else if name.as_bytes().contains(&0) {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::CursorName {
        name: name.to_owned(),
        reason,
    })
}

/// The name in slot `slot` if the slot is in use.
fn slot_name(inner: &LogState, slot: usize) -> Option<Vec<u8>> {
    let off = slot_off(slot);
    if inner.map.load_u64(off, Ordering::Acquire).ok()? != IN_USE {
        return None;
    }
    let mut name = [0u8; MAX_CURSOR_NAME + 1];
    inner.map.read_at(off + 16, &mut name).ok()?;
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(name[..len].to_vec())
}

fn find(inner: &LogState, name: &str) -> Option<usize> {
    (0..CURSOR_SLOTS).find(|&slot| slot_name(inner, slot).is_some_and(|n| n == name.as_bytes()))
}

pub(crate) fn save(inner: &LogState, name: &str, position: u64) -> Result<()> {
    check_name(name)?;
    inner.require_writable("save_cursor")?;
    // The slots are in the header, which a file cut short may have lost.
    inner.require_whole()?;
    if let Some(slot) = find(inner, name) {
        inner
            .map
            .atomic_u64(slot_off(slot) + 8)?
            .store(position, Ordering::Release);
        return Ok(());
    }
    for slot in 0..CURSOR_SLOTS {
        let off = slot_off(slot);
        let state = inner.map.atomic_u64(off)?;
        if state
            .compare_exchange(FREE, CLAIMING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            let mut bytes = [0u8; MAX_CURSOR_NAME + 1];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            inner.map.write_at(off + 16, &bytes)?;
            inner
                .map
                .atomic_u64(off + 8)?
                .store(position, Ordering::Relaxed);
            state.store(IN_USE, Ordering::Release);
            return Ok(());
        }
    }
    Err(Error::CursorsFull { max: CURSOR_SLOTS })
}

impl Log {
    /// Saves `position` (a record id, usually [`Reader::position`]) under `name` in the file's
    /// header, creating the cursor if need be. Names are 1 to 47 bytes without NUL; a log holds
    /// 16 cursors. Saving the same new name from two processes at the same instant may create
    /// it twice; [`Log::load_cursor`] then finds the first.
    ///
    /// # Errors
    /// [`Error::CursorName`], [`Error::CursorsFull`], [`Error::ReadOnly`], or
    /// [`Error::Truncated`] when another program cut the file short.
    pub fn save_cursor(&self, name: &str, position: u64) -> Result<()> {
        save(&self.inner, name, position)
    }

    /// The position saved under `name`, if any.
    ///
    /// # Errors
    /// [`Error::CursorName`], or [`Error::Truncated`] when another program cut the file short.
    pub fn load_cursor(&self, name: &str) -> Result<Option<u64>> {
        check_name(name)?;
        self.inner.require_whole()?;
        Ok(find(&self.inner, name).and_then(|slot| {
            self.inner
                .map
                .load_u64(slot_off(slot) + 8, Ordering::Acquire)
                .ok()
        }))
    }

    /// Every saved cursor, as (name, position).
    #[must_use]
    pub fn cursors(&self) -> Vec<(String, u64)> {
        (0..CURSOR_SLOTS)
            .filter_map(|slot| {
                let name = slot_name(&self.inner, slot)?;
                let pos = self
                    .inner
                    .map
                    .load_u64(slot_off(slot) + 8, Ordering::Acquire)
                    .ok()?;
                Some((String::from_utf8_lossy(&name).into_owned(), pos))
            })
            .collect()
    }

    /// A reader resuming at the cursor `name`, or from the oldest record if there is none.
    ///
    /// # Errors
    /// As [`Log::load_cursor`].
    pub fn reader_from_cursor(&self, name: &str) -> Result<Reader> {
        let from = self.load_cursor(name)?;
        Ok(Reader::new(&self.inner, &self.lanes, from))
    }

    /// A copy of the 1024-byte user area in the header, free for the application's own use.
    #[must_use]
    pub fn user_area(&self) -> Vec<u8> {
        let mut area = vec![0u8; crate::format::USER_AREA_SIZE];
        // In bounds: the header page is mapped (checked at open).
        let _ = self
            .inner
            .map
            .read_at(crate::format::USER_AREA_OFF, &mut area);
        area
    }

    /// Writes `data` into the user area at `offset`.
    ///
    /// # Errors
    /// [`Error::UserArea`] when it does not fit, [`Error::ReadOnly`].
    pub fn write_user_area(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.inner.require_writable("write_user_area")?;
        let size = crate::format::USER_AREA_SIZE;
        if offset.checked_add(data.len()).is_none_or(|end| end > size) {
            return Err(Error::UserArea {
                offset,
                len: data.len(),
                size,
            });
        }
        Ok(self
            .inner
            .map
            .write_at(crate::format::USER_AREA_OFF + offset, data)?)
    }
}
