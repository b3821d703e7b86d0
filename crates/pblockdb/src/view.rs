//! A handle's view of the file: the mapping and the table and history-ring descriptors it last
//! read, each checked before any offset computed from it is used.

use std::path::Path;
use std::sync::atomic::{Ordering, fence};

use pmap::SharedMap;

use crate::format::{
    self, DESCRIPTOR_LEN, Geometry, OFF_GENERATION, OFF_RING_GENERATION, OFF_RINGS, OFF_TABLES,
    RING_LEN, RingDescriptor, TableDescriptor,
};
use crate::storage::Backend;
use crate::{Error, Result};

/// A table region whose descriptor was checked to lie in the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    pub generation: u64,
    /// Start of the region: the hint array.
    pub offset: usize,
    /// Start of the slots, after the hint array.
    pub slots: usize,
    pub capacity: u64,
    /// Snapshots from this commit clock on read this table.
    pub since: u64,
    /// Bytes of the whole region.
    pub bytes: u64,
}

impl Table {
    pub(crate) fn mask(&self) -> u64 {
        self.capacity - 1
    }

    /// Byte offset of slot `idx` (`idx < capacity`).
    pub(crate) fn slot_at(&self, geo: &Geometry, idx: u64) -> usize {
        self.slots + idx as usize * geo.slot_size
    }

    /// Byte offset of slot `idx`'s hint.
    pub(crate) fn hint_at(&self, idx: u64) -> usize {
        self.offset + idx as usize * 4
    }

    /// Whether this table's region is still what it was when its descriptor was read: a writer
    /// invalidates the descriptor (and fences) before it reuses the region, so a reader that
    /// copied any byte of the reuse sees the invalidation here. Call after an acquire fence.
    pub(crate) fn still_valid(&self, map: &SharedMap) -> Result<bool> {
        let word = OFF_TABLES[(self.generation & 1) as usize];
        Ok(map.load_u64(word, Ordering::Relaxed)? == self.generation)
    }
}

/// A history ring whose descriptor was checked to lie in the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ring {
    pub generation: u64,
    pub offset: usize,
    pub entries: u64,
    pub base: u64,
    pub bytes: u64,
}

impl Ring {
    /// Byte offset of entry `number`'s position.
    pub(crate) fn entry_at(&self, geo: &Geometry, number: u64) -> usize {
        self.offset + (number & (self.entries - 1)) as usize * geo.entry_size()
    }

    /// As [`Table::still_valid`], for the ring.
    pub(crate) fn still_valid(&self, map: &SharedMap) -> Result<bool> {
        let word = OFF_RINGS[(self.generation & 1) as usize];
        Ok(map.load_u64(word, Ordering::Relaxed)? == self.generation)
    }
}

/// The mapping and the regions it holds, as this handle last read them.
#[derive(Debug)]
pub(crate) struct View {
    pub map: SharedMap,
    /// How this handle's writes and syncs reach the file (`storage.rs`).
    pub storage: Backend,
    /// The table generation the descriptors below were read at.
    pub generation: u64,
    pub active: Table,
    /// The table before it, while its region is intact (old snapshots read it).
    pub previous: Option<Table>,
    pub ring_generation: u64,
    pub ring: Ring,
    /// The ring before it, while its region is intact.
    pub previous_ring: Option<Ring>,
}

/// What a view read from the descriptors.
pub(crate) type Regions = (u64, Table, Option<Table>, u64, Ring, Option<Ring>);

impl View {
    /// Reads and checks every descriptor of `map`.
    pub(crate) fn read(
        map: SharedMap,
        storage: Backend,
        geo: &Geometry,
        path: &Path,
    ) -> Result<View> {
        let mut map = map;
        let (generation, active, previous, ring_generation, ring, previous_ring) =
            read_regions_of_whole_file(&mut map, geo, path)?;
        Ok(View {
            map,
            storage,
            generation,
            active,
            previous,
            ring_generation,
            ring,
            previous_ring,
        })
    }

    /// Remaps (the file may have grown) and reads every descriptor again.
    pub(crate) fn reload(&mut self, geo: &Geometry, path: &Path) -> Result<()> {
        self.map.refresh()?;
        let (generation, active, previous, ring_generation, ring, previous_ring) =
            read_regions_of_whole_file(&mut self.map, geo, path)?;
        self.generation = generation;
        self.active = active;
        self.previous = previous;
        self.ring_generation = ring_generation;
        self.ring = ring;
        self.previous_ring = previous_ring;
        Ok(())
    }

    /// Copies record bytes into the file through the storage.
    #[inline]
    pub(crate) fn put(&self, at: usize, bytes: &[u8]) -> Result<()> {
        self.storage.write(&self.map, at, bytes)
    }

    /// Stores a coordination word through the storage.
    #[inline]
    pub(crate) fn store_word(&self, at: usize, value: u64, order: Ordering) -> Result<()> {
        self.storage.store_u64(&self.map, at, value, order)
    }

    /// Stores a hint (release) through the storage.
    #[inline]
    pub(crate) fn store_hint(&self, at: usize, hint: u32) -> Result<()> {
        self.storage
            .store_u32(&self.map, at, hint, Ordering::Release)
    }

    /// Makes everything written so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        self.storage.sync(&self.map)
    }

    /// Whether the file's table and ring generations are the ones this view read.
    pub(crate) fn is_current(&self) -> Result<bool> {
        Ok(
            self.map.load_u64(OFF_GENERATION, Ordering::Acquire)? == self.generation
                && self.map.load_u64(OFF_RING_GENERATION, Ordering::Acquire)?
                    == self.ring_generation,
        )
    }

    /// The table a snapshot at clock `snapshot` reads, if this view still holds it.
    pub(crate) fn table_for(&self, snapshot: u64) -> Option<Table> {
        if self.active.since <= snapshot {
            return Some(self.active);
        }
        self.previous.filter(|table| table.since <= snapshot)
    }

    /// The ring that holds entry `number`, if this view knows one.
    pub(crate) fn ring_for(&self, number: u64) -> Option<Ring> {
        if number >= self.ring.base {
            return Some(self.ring);
        }
        self.previous_ring.filter(|ring| number >= ring.base)
    }
}

/// [`read_regions`], mapping the file again and reading again when a region lies past the
/// mapped length but the file has grown since it was mapped: another process grew it (a
/// rebuild or a history growth) and published a region there between the mapping and the read.
/// Each retry needs the file to have grown, so this ends.
pub(crate) fn read_regions_of_whole_file(
    map: &mut SharedMap,
    geo: &Geometry,
    path: &Path,
) -> Result<Regions> {
    loop {
        match read_regions(map, geo, path) {
            Err(Error::Truncated { .. }) if map.refresh()? => {}
            other => return other,
        }
    }
}

/// Reads the table and ring descriptors, again while a rebuild or growth races the reads.
pub(crate) fn read_regions(map: &SharedMap, geo: &Geometry, path: &Path) -> Result<Regions> {
    loop {
        let generation = map.load_u64(OFF_GENERATION, Ordering::Acquire)?;
        let ring_generation = map.load_u64(OFF_RING_GENERATION, Ordering::Acquire)?;
        let active = read_table(map, geo, path, generation);
        let ring = read_ring(map, geo, path, ring_generation);
        fence(Ordering::Acquire);
        if map.load_u64(OFF_GENERATION, Ordering::Relaxed)? != generation
            || map.load_u64(OFF_RING_GENERATION, Ordering::Relaxed)? != ring_generation
        {
            continue;
        }
        let previous = match generation.checked_sub(1) {
            Some(older) => read_table(map, geo, path, older).ok(),
            None => None,
        };
        let previous_ring = match ring_generation.checked_sub(1) {
            Some(older) => read_ring(map, geo, path, older).ok(),
            None => None,
        };
        return Ok((
            generation,
            active?,
            previous,
            ring_generation,
            ring?,
            previous_ring,
        ));
    }
}

/// Reads descriptor `generation & 1` as a seqlock reader (its generation word, the fields, an
/// acquire fence, the word again) and checks it: its checksum, a power-of-two capacity in
/// range, a page-aligned offset after the header, and a region inside the file.
fn read_table(map: &SharedMap, geo: &Geometry, path: &Path, generation: u64) -> Result<Table> {
    let at = OFF_TABLES[(generation & 1) as usize];
    let corrupt = |field, value| Error::CorruptHeader {
        path: path.to_path_buf(),
        field,
        value,
    };
    let mut bytes = [0u8; DESCRIPTOR_LEN];
    let word = map.load_u64(at, Ordering::Acquire)?;
    map.read_at(at, &mut bytes)?;
    fence(Ordering::Acquire);
    if word != generation || map.load_u64(at, Ordering::Relaxed)? != generation {
        return Err(corrupt("table_generation", word));
    }
    let desc = TableDescriptor {
        generation,
        offset: format::get_u64(&bytes, 8),
        capacity: format::get_u64(&bytes, 16),
        since: format::get_u64(&bytes, 24),
    };
    let crc = format::get_u64(&bytes, 32);
    if crc != desc.crc() {
        return Err(corrupt("table_crc", crc));
    }
    if !desc.capacity.is_power_of_two()
        || !(format::MIN_CAPACITY..=format::MAX_CAPACITY).contains(&desc.capacity)
    {
        return Err(corrupt("table_capacity", desc.capacity));
    }
    if desc.offset < format::HEADER_SIZE || desc.offset % format::PAGE != 0 {
        return Err(corrupt("table_offset", desc.offset));
    }
    let region = geo.table_bytes(desc.capacity);
    let offset = in_file(map, path, desc.offset, region)?;
    let hints = format::hint_bytes(desc.capacity).unwrap_or(0) as usize;
    Ok(Table {
        generation,
        offset,
        slots: offset + hints,
        capacity: desc.capacity,
        since: desc.since,
        bytes: region.unwrap_or(0),
    })
}

/// As [`read_table`], for ring descriptor `generation & 1`.
fn read_ring(map: &SharedMap, geo: &Geometry, path: &Path, generation: u64) -> Result<Ring> {
    let at = OFF_RINGS[(generation & 1) as usize];
    let corrupt = |field, value| Error::CorruptHeader {
        path: path.to_path_buf(),
        field,
        value,
    };
    let mut bytes = [0u8; RING_LEN];
    let word = map.load_u64(at, Ordering::Acquire)?;
    map.read_at(at, &mut bytes)?;
    fence(Ordering::Acquire);
    if word != generation || map.load_u64(at, Ordering::Relaxed)? != generation {
        return Err(corrupt("ring_generation", word));
    }
    let desc = RingDescriptor {
        generation,
        offset: format::get_u64(&bytes, 8),
        entries: format::get_u64(&bytes, 16),
        base: format::get_u64(&bytes, 24),
    };
    let crc = format::get_u64(&bytes, 32);
    if crc != desc.crc() {
        return Err(corrupt("ring_crc", crc));
    }
    if !desc.entries.is_power_of_two()
        || !(format::MIN_HISTORY..=format::MAX_HISTORY).contains(&desc.entries)
    {
        return Err(corrupt("ring_entries", desc.entries));
    }
    if desc.offset < format::HEADER_SIZE || desc.offset % format::PAGE != 0 {
        return Err(corrupt("ring_offset", desc.offset));
    }
    let region = geo.ring_bytes(desc.entries);
    let offset = in_file(map, path, desc.offset, region)?;
    Ok(Ring {
        generation,
        offset,
        entries: desc.entries,
        base: desc.base,
        bytes: region.unwrap_or(0),
    })
}

/// `offset` as a `usize` when the region of `bytes` from it lies inside the mapped file.
fn in_file(map: &SharedMap, path: &Path, offset: u64, bytes: Option<u64>) -> Result<usize> {
    let end = bytes.and_then(|bytes| offset.checked_add(bytes));
    let len = map.len() as u64;
    match end {
        Some(end) if end <= len => Ok(offset as usize),
        _ => Err(Error::Truncated {
            path: path.to_path_buf(),
            len,
            needed: end.unwrap_or(u64::MAX),
        }),
    }
}
