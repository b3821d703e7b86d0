//! Named persistent cursors: reader positions saved under a name in the header.
//!
//! Each of the 16 slots holds a state word (0 free, 1 being claimed, 2 in use), the position,
//! and the name (NUL-padded). A slot is claimed with a compare-and-swap of its state, so two
//! processes never write the same slot's name.
//!
//! A laned log's cursor also has a lane table in the second header page: where each lane
//! resumes, as offsets from where the position alone would start it, so that a reader resumed
//! from a cursor a reader saved re-reads nothing (docs/plog-format.md, "Lanes"). The table
//! is a seqlock: its sequence word is odd while a save writes it, and a loader uses only a
//! table it read whole, saved with the same id as the slot's position; anything else (a save
//! in progress or killed half-way, a cursor saved as a bare id, damage) resumes from the
//! position alone, which never misses a record.

use std::sync::atomic::{Ordering, fence};

use crate::format::{
    CURSOR_LANES_OFF, CURSOR_LANES_STRIDE, CURSOR_SLOT_LEN, CURSOR_SLOTS, CURSORS_OFF,
    MAX_CURSOR_NAME, MAX_LANES,
};
use crate::log::LogState;
use crate::{Error, Log, Reader, Result};

const FREE: u64 = 0;
const CLAIMING: u64 = 1;
const IN_USE: u64 = 2;

/// A lane table's saved id when it holds no lane offsets (the cursor was saved as a bare id).
const NO_LANES: u64 = u64::MAX;
/// A lane offset too large for the table's four bytes: that lane resumes from the id alone.
const FAR: u32 = u32::MAX;
/// Times a loader reads a lane table again when a save changed it meanwhile.
const TABLE_READS: usize = 4;

fn slot_off(slot: usize) -> usize {
    CURSORS_OFF + slot * CURSOR_SLOT_LEN
}

/// The offset of cursor slot `slot`'s lane table: `[sequence u64][id u64][16 x offset u32]`.
fn table_off(slot: usize) -> usize {
    CURSOR_LANES_OFF + slot * CURSOR_LANES_STRIDE
}

/// Writes the lane table of the cursor in `slot`, saved with `id`: each lane's `offsets` (a
/// reader's, [`crate::Reader::save_cursor`]), or none (a bare id, [`Log::save_cursor`]). The
/// sequence word goes odd before the other words change and even after (a seqlock's write:
/// the release fence keeps the odd value ahead of the words, the release store the words ahead
/// of the even one).
fn write_table(inner: &LogState, slot: usize, id: u64, offsets: Option<&[u64]>) -> Result<()> {
    let off = table_off(slot);
    let sequence = inner.map.atomic_u64(off)?;
    let writing = sequence.load(Ordering::Relaxed).wrapping_add(1) | 1;
    sequence.store(writing, Ordering::Relaxed);
    fence(Ordering::Release);
    let (id, offsets) = match offsets {
        Some(offsets) => (id, offsets),
        None => (NO_LANES, &[][..]),
    };
    inner.map.atomic_u64(off + 8)?.store(id, Ordering::Relaxed);
    for lane in 0..MAX_LANES as usize {
        let offset = offsets
            .get(lane)
            .map_or(0, |&offset| u32::try_from(offset).unwrap_or(FAR));
        inner
            .map
            .atomic_u32(off + 16 + 4 * lane)?
            .store(offset, Ordering::Relaxed);
    }
    sequence.store(writing.wrapping_add(1), Ordering::Release);
    Ok(())
}

/// The lane offsets of the cursor in `slot` if its table was saved whole with `id` (a
/// seqlock's read: the acquire fence keeps the words' loads ahead of the second load of the
/// sequence word). Offsets too large for the table are `None`.
fn read_table(inner: &LogState, slot: usize, id: u64, lanes: usize) -> Option<Vec<Option<u64>>> {
    let off = table_off(slot);
    let sequence = inner.map.atomic_u64(off).ok()?;
    for _ in 0..TABLE_READS {
        let before = sequence.load(Ordering::Acquire);
        if before & 1 == 1 {
            // A save is writing it, or died doing so.
            std::hint::spin_loop();
            continue;
        }
        let saved_with = inner.map.atomic_u64(off + 8).ok()?.load(Ordering::Relaxed);
        let mut offsets = Vec::with_capacity(lanes);
        for lane in 0..lanes.min(MAX_LANES as usize) {
            let offset = inner
                .map
                .atomic_u32(off + 16 + 4 * lane)
                .ok()?
                .load(Ordering::Relaxed);
            offsets.push((offset != FAR).then_some(u64::from(offset)));
        }
        fence(Ordering::Acquire);
        if sequence.load(Ordering::Relaxed) == before {
            return (saved_with == id && id != NO_LANES).then_some(offsets);
        }
    }
    None
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

/// Saves `position` under `name`, with a laned reader's lane `offsets` (see [`write_table`]);
/// a laned log's cursor saved without them resumes from `position` alone.
pub(crate) fn save(
    inner: &LogState,
    name: &str,
    position: u64,
    offsets: Option<&[u64]>,
) -> Result<()> {
    check_name(name)?;
    inner.require_writable("save_cursor")?;
    // The slots are in the header, which a file cut short may have lost.
    inner.require_whole()?;
    let laned = inner.geometry.lanes > 1;
    if let Some(slot) = find(inner, name) {
        // The table before the position: a loader that sees the new position sees the table
        // saved with it (the position's release store), one that sees the old one finds the
        // table's id different and resumes from the old position alone.
        if laned {
            write_table(inner, slot, position, offsets)?;
        }
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
            if laned {
                write_table(inner, slot, position, offsets)?;
            }
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
    ///
    /// In a laned log a cursor saved this way resumes every lane from its first record at or
    /// after `position` ([`Log::reader_from`]); one saved by [`Reader::save_cursor`] resumes
    /// each lane exactly where that reader was.
    pub fn save_cursor(&self, name: &str, position: u64) -> Result<()> {
        save(&self.inner, name, position, None)
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
    ///
    /// In a laned log, a cursor a [`Reader`] saved resumes each lane where that reader was (it
    /// re-reads nothing); a lane whose saved place is past the lane's counter (a damaged
    /// table, or a counter a power loss set back that a read-only open did not recover), or
    /// more than 2^32 positions past where the id would start it, resumes from the id alone.
    pub fn reader_from_cursor(&self, name: &str) -> Result<Reader> {
        check_name(name)?;
        self.inner.require_whole()?;
        let Some(slot) = find(&self.inner, name) else {
            return Ok(Reader::new(&self.inner, &self.lanes, None));
        };
        let position = self
            .inner
            .map
            .load_u64(slot_off(slot) + 8, Ordering::Acquire)?;
        let offsets = match self.lanes.len() {
            1 => Vec::new(),
            lanes => read_table(&self.inner, slot, position, lanes)
                .map(|offsets| {
                    offsets
                        .iter()
                        .zip(self.lanes.iter())
                        .map(|(offset, lane)| {
                            let start = lane.lane_position(position);
                            match offset {
                                Some(offset)
                                    if start.saturating_add(*offset)
                                        <= lane.next(Ordering::Acquire) =>
                                {
                                    *offset
                                }
                                _ => 0,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        Ok(Reader::resuming(
            &self.inner,
            &self.lanes,
            Some(position),
            &offsets,
        ))
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
