//! What the integration tests share: self-checking payloads, and the record forger, written
//! from docs/plog-format.md (the checksum is the test kit's bitwise CRC-32C, not pmap's).

use pounds_testkit::crc32c;

/// The fields of a forged record header (docs/plog-format.md, "Records").
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub(crate) struct Forged {
    pub(crate) commit: u64,
    pub(crate) len: u32,
    pub(crate) blocks: u32,
    pub(crate) level: u8,
    pub(crate) kind: u8,
    pub(crate) tag_len: u8,
    /// The id the crc binds.
    pub(crate) crc_id: u64,
}

/// The bytes of a record (header, `tag`, `payload`; no padding) with the header fields `f`,
/// written from docs/plog-format.md, "Records", not by plog's code: the time is
/// 1,700,000,000 s, the pid 4242, and the crc (the test kit's bitwise CRC-32C) is right for
/// `f.crc_id`, so only the reader's field checks stand between it and the caller.
#[allow(dead_code)]
pub(crate) fn forged_record(f: Forged, tag: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut rec = Vec::new();
    rec.extend_from_slice(&f.commit.to_le_bytes());
    rec.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
    rec.extend_from_slice(&f.len.to_le_bytes());
    rec.extend_from_slice(&4242u32.to_le_bytes());
    rec.extend_from_slice(&f.blocks.to_le_bytes());
    rec.extend_from_slice(&0u32.to_le_bytes());
    rec.extend_from_slice(&[f.level, f.kind, f.tag_len, 0, 0, 0, 0, 0]);
    rec.extend_from_slice(tag);
    rec.extend_from_slice(payload);
    // The checksum image: from the length on, padded to 8 bytes, then the id and the time.
    let mut image = rec[16..].to_vec();
    image.resize(image.len().div_ceil(8) * 8, 0);
    image.extend_from_slice(&f.crc_id.to_le_bytes());
    image.extend_from_slice(&rec[8..16]);
    rec[28..32].copy_from_slice(&crc32c(&image).to_le_bytes());
    rec
}

/// A payload that checks itself: writer, sequence number, then bytes derived from both.
#[allow(dead_code)]
pub(crate) fn payload(writer: u32, seq: u32, extra: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + extra);
    p.extend_from_slice(&writer.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend((0..extra).map(|i| (writer as usize * 7 + seq as usize * 13 + i) as u8));
    p
}

/// (writer, seq) of a record whose payload is intact and whose tag is `w<writer>`; panics on a
/// torn or foreign one.
#[allow(dead_code)]
pub(crate) fn check(record: &plog::Record) -> (u32, u32) {
    let p = &record.payload;
    assert!(p.len() >= 8, "short payload in record {}", record.id);
    let writer = u32::from_le_bytes(p[..4].try_into().unwrap());
    let seq = u32::from_le_bytes(p[4..8].try_into().unwrap());
    assert_eq!(
        p,
        &payload(writer, seq, p.len() - 8),
        "torn record {}",
        record.id
    );
    assert_eq!(
        record.tag,
        format!("w{writer}"),
        "tag of record {}",
        record.id
    );
    (writer, seq)
}
