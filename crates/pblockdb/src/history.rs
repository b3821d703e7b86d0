//! The history ring: the versions a commit replaced, saved before it replaced them. Readers of
//! an older snapshot follow a slot's chain of saved versions back to the one their snapshot
//! saw; after a crash, the versions an unfinished commit replaced are put back. Each entry is
//! its own seqlock: its number word reads [`ENTRY_WRITING`] while it is rewritten.

use crate::Result;
use crate::format::{
    self, ENTRY_CRC, ENTRY_GENERATION, ENTRY_HEADER, ENTRY_NUMBER, ENTRY_SLOT, ENTRY_WRITING,
    Geometry,
};
use crate::seqlock::Seqlock;
use crate::view::{Ring, View};

/// What reading a history entry found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The entry, whole: the slot index and table generation it belongs to. Its image is in
    /// the caller's buffer.
    Found { slot: u64, generation: u64 },
    /// Overwritten since (the ring lapped it), being rewritten, or in a ring this view no
    /// longer holds.
    Gone,
    /// Read whole, but its checksum fails: damage.
    Damaged,
}

/// Copies entry `number`'s image into `image` (`slot_size` bytes) and reports it.
pub(crate) fn read_entry(
    view: &View,
    geo: &Geometry,
    number: u64,
    image: &mut [u8],
) -> Result<Entry> {
    let Some(ring) = view.ring_for(number) else {
        return Ok(Entry::Gone);
    };
    let at = ring.entry_at(geo, number);
    let map = &view.map;
    let word = map.load_word_u64(at + ENTRY_NUMBER)?;
    if Seqlock::begin_read(&word) != number {
        return Ok(Entry::Gone);
    }
    let mut head = [0u8; ENTRY_HEADER];
    map.read_at(at, &mut head)?;
    map.read_at(at + ENTRY_HEADER, image)?;
    if !Seqlock::unchanged(&word, number) || !ring.still_valid(map)? {
        return Ok(Entry::Gone);
    }
    let slot = format::get_u64(&head, ENTRY_SLOT);
    let generation = format::get_u64(&head, ENTRY_GENERATION);
    if format::get_u32(&head, ENTRY_CRC) != format::entry_crc(slot, generation, image) {
        return Ok(Entry::Damaged);
    }
    Ok(Entry::Found { slot, generation })
}

/// Writes entry `number` (the writer lock is held): the number word set to [`ENTRY_WRITING`],
/// a release fence, the fields and image, then the number with release ordering; every store
/// through the handle's storage.
pub(crate) fn write_entry(
    view: &View,
    ring: &Ring,
    geo: &Geometry,
    number: u64,
    slot: u64,
    generation: u64,
    image: &[u8],
) -> Result<()> {
    let at = ring.entry_at(geo, number);
    let mut head = [0u8; ENTRY_HEADER - 8];
    format::put_u64(&mut head, ENTRY_SLOT - 8, slot);
    format::put_u64(&mut head, ENTRY_GENERATION - 8, generation);
    format::put_u32(
        &mut head,
        ENTRY_CRC - 8,
        format::entry_crc(slot, generation, image),
    );
    view.storage.write_guarded(
        &view.map,
        at + ENTRY_NUMBER,
        (ENTRY_WRITING, number),
        &[&head, image],
        || {},
    )
}
