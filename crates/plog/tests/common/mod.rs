//! What the integration tests share.

/// Bitwise crc32c (Castagnoli, reflected), so that tests forging headers and records do not
/// trust the code under test.
#[allow(dead_code)]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
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
