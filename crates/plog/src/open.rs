//! Opening a log's file: creating and initialising it, validating an existing header, and
//! recovering a header page a power loss left zero (docs/plog-format.md, "Creating and
//! opening").

use std::path::Path;
use std::sync::atomic::{Ordering, fence};

use pmap::{Lock, MapOptions, SharedMap};
use zerocopy::{FromBytes, IntoBytes};

use crate::claim::Claim;
use crate::clock::system_now_ns;
use crate::format::{
    COMPAT_VERSION, FORMAT_VERSION, Geometry, HEADER_SIZE, LANE_COUNTER_STRIDE, LANE_COUNTERS_OFF,
    LANED_COMPAT_VERSION, MAGIC, MAX_BLOCK_SIZE, MAX_LANES, MIN_BLOCK_SIZE, NEXT_OFF,
    POSITION_LIMIT, StaticHeader, WRITE_LIMIT,
};
use crate::log::LogState;
use crate::reader::Slot;
use crate::{Error, Result};

/// How a read-write open found the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Absent, empty, or left by a creator that died before its header was complete: it was
    /// initialised, and there is nothing to recover.
    Initialised,
    /// A valid log.
    Existing,
    /// A header page lost to a power loss (all zero) over a ring of records: the header was
    /// rewritten with the geometry the records prove, and the counter must be recovered.
    HeaderRecovered,
}

/// Maps the file read-write under an exclusive advisory lock (held only while the header is
/// checked or written, so that two processes creating the same log at once do not both
/// initialise it), creating and initialising it when it is absent or empty, or when a creator
/// died before finishing its header.
pub(crate) fn open_writable(
    path: &Path,
    geometry: Geometry,
    create: bool,
) -> Result<(SharedMap, Found)> {
    let options = if create {
        MapOptions::new()
    } else {
        MapOptions::new().must_exist()
    };
    let options = options.lock(Lock::Exclusive);
    let (map, was_empty) = match options.clone().open(path) {
        Ok(map) => (map, false),
        // A file just created (by us or a racing process) or left empty.
        Err(pmap::Error::ZeroLength { .. }) => {
            (options.size(geometry.file_len()).open(path)?, true)
        }
        Err(e) => return Err(e.into()),
    };
    let mut map = map.into_shared();
    if was_empty {
        // Nothing to recover in a file that was empty a moment ago (under the lock): skip the
        // look for a lost header, which would read every page of the new ring.
        initialise(&mut map, geometry)?;
        return Ok((map, Found::Initialised));
    }
    let mut head = [0u8; HEADER_SIZE as usize];
    let head_len = map.len().min(head.len());
    map.read_at(0, &mut head[..head_len])?;
    let head = &head[..head_len];
    if head.iter().all(|&b| b == 0) {
        if (map.len() as u64) > u64::from(HEADER_SIZE) {
            let (back, found) = recover_lost_header(map, path)?;
            map = back;
            if let Some(found) = found {
                return Ok((map, found));
            }
        }
        initialise(&mut map, geometry)?;
        return Ok((map, Found::Initialised));
    }
    if interrupted_creation(&map, head)? {
        initialise(&mut map, geometry)?;
        return Ok((map, Found::Initialised));
    }
    Ok((map, Found::Existing))
}

/// Grows the file to the ring's length (pmap reserves its blocks first: a full disk is an
/// error here, never a signal later), writes the static header, and makes it durable before
/// any record can be written, so that a power loss never keeps ring pages without the header
/// that explains them.
fn initialise(map: &mut SharedMap, geometry: Geometry) -> Result<()> {
    if (map.len() as u64) < geometry.file_len() {
        let len = usize::try_from(geometry.file_len()).map_err(|_| pmap::Error::TooLarge {
            path: map.path().to_path_buf(),
            requested: geometry.file_len(),
        })?;
        map.grow(len)?;
    }
    write_header(map, &StaticHeader::new(geometry, system_now_ns()))
}

/// Writes the static header with its crc last, in a store of its own after a fence, then makes
/// the page durable. A creator killed at any instruction of this leaves either a complete
/// header or one whose crc field is still zero, which [`interrupted_creation`] recognises.
fn write_header(map: &SharedMap, header: &StaticHeader) -> Result<()> {
    let bytes = header.as_bytes();
    map.write_at(0, &bytes[..60])?;
    fence(Ordering::SeqCst);
    map.write_at(60, &bytes[60..])?;
    map.flush_range(0, header.header_size as usize)?;
    Ok(())
}

/// Whether the file is what a creator killed while writing the 64-byte static header leaves
/// ([`write_header`] stores the crc last): a crc field still zero, every magic byte either
/// right or still zero, nothing after the static header in the header page, and no block of
/// the ring ever claimed. Such a file holds nothing to lose and is initialised again; anything
/// else (a complete header damaged since, a foreign file) is left to validation, untouched.
fn interrupted_creation(map: &SharedMap, head: &[u8]) -> Result<bool> {
    if head.len() < HEADER_SIZE as usize
        || head[60..64] != [0; 4]
        || head[64..].iter().any(|&b| b != 0)
    {
        return Ok(false);
    }
    if !head[..16].iter().zip(MAGIC).all(|(&b, m)| b == 0 || b == m) {
        return Ok(false);
    }
    if let Ok(header) = StaticHeader::read_from_bytes(&head[..64])
        && header.compute_crc() == header.crc
    {
        return Ok(false);
    }
    // The creator grows the file before it writes the header: an interrupted one left a ring
    // whose every block is still unwritten (all claim words zero at the smallest block size).
    let ring = map.len().saturating_sub(HEADER_SIZE as usize);
    let mut off = HEADER_SIZE as usize;
    while off + 8 <= HEADER_SIZE as usize + ring {
        if map.load_u64(off, Ordering::Relaxed)? != 0 {
            return Ok(false);
        }
        off += MIN_BLOCK_SIZE as usize;
    }
    Ok(true)
}

/// A file whose header page is all zero but whose ring is not: find the geometry whose blocks
/// hold a record that passes the reader's full validation (the crc binds it to its position,
/// so garbage cannot pass by chance), write the header back with it, and let the counter be
/// recovered. `None` when the ring is all zero too (an interrupted creation: initialise);
/// [`Error::HeaderLost`] when it holds data no geometry explains (leave the file alone).
fn recover_lost_header(mut map: SharedMap, path: &Path) -> Result<(SharedMap, Option<Found>)> {
    let ring_len = (map.len() as u64).saturating_sub(u64::from(HEADER_SIZE));
    let mut any_data = false;
    let mut off = HEADER_SIZE as usize;
    while off + 8 <= map.len() {
        if map.load_u64(off, Ordering::Relaxed)? != 0 {
            any_data = true;
            break;
        }
        off += MIN_BLOCK_SIZE as usize;
    }
    if !any_data {
        return Ok((map, None));
    }
    // A laned log's lost header page is not rebuilt: its ring starts a page later and is split
    // by lane, and a record of a late lap could pass validation under a one-lane geometry that
    // misplaces every other record. Left alone, as any file no geometry explains.
    if looks_like_lane_counters(&map)? {
        return Err(Error::HeaderLost {
            path: path.to_path_buf(),
        });
    }
    let mut block_size = MIN_BLOCK_SIZE;
    while block_size <= MAX_BLOCK_SIZE {
        if ring_len % u64::from(block_size) == 0
            && let Ok(geometry) = Geometry::checked(ring_len / u64::from(block_size), block_size)
        {
            let (back, oldest) = oldest_valid_record_time(map, geometry)?;
            map = back;
            if let Some(created) = oldest {
                write_header(&map, &StaticHeader::new(geometry, created))?;
                return Ok((map, Some(Found::HeaderRecovered)));
            }
        }
        block_size *= 2;
    }
    Err(Error::HeaderLost {
        path: path.to_path_buf(),
    })
}

/// Under `geometry`, the time of the oldest record the ring holds that passes full validation,
/// if any: one claim-word load per block, and a validation only where the word names a record
/// starting in that very slot.
fn oldest_valid_record_time(
    map: SharedMap,
    geometry: Geometry,
) -> Result<(SharedMap, Option<u64>)> {
    let probe = LogState::new(map, geometry, false);
    let mut oldest: Option<u64> = None;
    let mut arena = crate::reader::Arena::default();
    for slot in 0..geometry.blocks {
        let Ok(word) = probe
            .map
            .load_u64(probe.block_offset(slot), Ordering::Relaxed)
        else {
            continue;
        };
        let Claim::Start(id) = Claim::decode(word) else {
            continue;
        };
        if id >= WRITE_LIMIT || id % geometry.blocks != slot {
            continue;
        }
        if let Slot::Record(found, _) = probe.probe_slot(id, &mut arena) {
            oldest = Some(oldest.map_or(found.time, |t| t.min(found.time)));
        }
    }
    let map = probe.into_map().ok_or_else(|| Error::Io {
        op: "probe a lost header",
        source: std::io::Error::other("the probe's mapping is still shared"),
    })?;
    Ok((map, oldest))
}

/// Whether the page after the first looks like a laned log's counter page: nonzero words only
/// where lane counters sit (every [`LANE_COUNTER_STRIDE`] bytes of its first half) and at least
/// one. A ring of one lane holding records there has nonzero bytes after each claim word (a
/// record's time), so it never looks like this.
fn looks_like_lane_counters(map: &SharedMap) -> Result<bool> {
    let mut counters = 0;
    let mut off = LANE_COUNTERS_OFF;
    let end = LANE_COUNTERS_OFF + MAX_LANES as usize * LANE_COUNTER_STRIDE;
    if map.len() < end {
        return Ok(false);
    }
    while off < end {
        if map.load_u64(off, Ordering::Relaxed)? != 0 {
            if (off - LANE_COUNTERS_OFF) % LANE_COUNTER_STRIDE != 0 {
                return Ok(false);
            }
            counters += 1;
        }
        off += 8;
    }
    Ok(counters > 0)
}

/// Maps an existing log read-only, under a shared lock for the moment of the open.
pub(crate) fn open_read_only(path: &Path) -> Result<SharedMap> {
    let map = MapOptions::new().read_only().lock(Lock::Shared).open(path);
    match map {
        Err(pmap::Error::ZeroLength { .. }) => Err(Error::BadMagic {
            path: path.to_path_buf(),
            found: "empty file".into(),
        }),
        other => Ok(other?.into_shared()),
    }
}

/// Checks every header field before any arithmetic with it. The live words are read through
/// the shared map's atomic loads: other processes may be writing them.
pub(crate) fn validate(map: &SharedMap, path: &Path) -> Result<Geometry> {
    let owned = || path.to_path_buf();
    let mut head = [0u8; 64];
    let head_len = map.len().min(64);
    map.read_at(0, &mut head[..head_len])?;
    let head = &head[..head_len];
    if head.len() < 16 || head[..16] != MAGIC {
        let found = head
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        return Err(Error::BadMagic {
            path: owned(),
            found,
        });
    }
    let Ok(header) = StaticHeader::read_from_bytes(head) else {
        return Err(Error::Truncated {
            path: owned(),
            expected: HEADER_SIZE.into(),
            found: map.len() as u64,
        });
    };
    let corrupt = |field, value: u64| Error::CorruptHeader {
        path: owned(),
        field,
        value,
    };
    if header.compat_version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: owned(),
            found: header.version,
            compat: header.compat_version,
            supported: FORMAT_VERSION,
        });
    }
    if header.compat_version == 0 {
        return Err(corrupt("compat_version", header.compat_version.into()));
    }
    if header.version < header.compat_version {
        return Err(corrupt("version", header.version.into()));
    }
    if header.compute_crc() != header.crc {
        return Err(corrupt("header_crc", header.crc.into()));
    }
    if header.compat_version < COMPAT_VERSION {
        // Format 1 (compat 1) files: refused whole, see Error::OldFormat.
        return Err(Error::OldFormat {
            path: owned(),
            found: header.version,
            supported: FORMAT_VERSION,
        });
    }
    let geometry =
        Geometry::checked(header.block_count, header.block_size).map_err(|(field, value, _)| {
            corrupt(
                if field == "blocks" {
                    "block_count"
                } else {
                    "block_size"
                },
                value,
            )
        })?;
    // A laned log is version 3: a file claiming to be readable by format 2 builds while split
    // into lanes would be misread by them.
    if header.lanes > 1 && header.compat_version < LANED_COMPAT_VERSION {
        return Err(corrupt("lanes", header.lanes.into()));
    }
    let geometry = geometry
        .with_lanes(header.lanes)
        .map_err(|_| corrupt("lanes", header.lanes.into()))?;
    if header.header_size != geometry.header_size() {
        return Err(corrupt("header_size", header.header_size.into()));
    }
    if (map.len() as u64) < geometry.file_len() {
        return Err(Error::Truncated {
            path: owned(),
            expected: geometry.file_len(),
            found: map.len() as u64,
        });
    }
    for lane in 0..geometry.lanes as usize {
        let counter = if geometry.lanes > 1 {
            LANE_COUNTERS_OFF + lane * LANE_COUNTER_STRIDE
        } else {
            NEXT_OFF
        };
        let next = map.load_u64(counter, Ordering::Acquire)?;
        if next >= POSITION_LIMIT {
            return Err(corrupt("next", next));
        }
    }
    Ok(geometry)
}
