//! crc32c (Castagnoli) of short buffers at the speed of the hardware instruction, for the
//! record checksums of the crates above, which may not use `unsafe` to reach it.
//!
//! The `crc32c` crate runs one serial chain of the SSE 4.2 `crc32` instruction (3 cycles of
//! latency each) for buffers under 768 bytes, so a 112-byte record costs 14 dependent steps.
//! [`crc32c_append`] splits such a buffer into three streams computed side by side and combines
//! them (the later streams' registers shifted by table, see [`shift`]): the same crc value,
//! 1.1-1.2x faster for a 112-byte image on the project's machines (`crc_ab` in
//! `benches/benches/plog.rs`; the call's fixed work is most of the cost at that size). Other
//! lengths and other CPUs go to the `crc32c` crate.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// The crc32c of `data` appended to `crc`, the crc of the bytes before it (0 for none): the
/// value of `crc32c::crc32c_append(crc, data)`, computed in three interleaved streams for
/// buffers of 96 to 767 bytes on x86-64 CPUs with SSE 4.2.
///
/// ```
/// let data = [7u8; 112];
/// assert_eq!(pmap::crc32c_append(0, &data), crc32c::crc32c(&data));
/// ```
#[inline]
#[must_use]
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if (INTERLEAVED_MIN..INTERLEAVED_MAX).contains(&data.len())
        && std::arch::is_x86_feature_detected!("sse4.2")
    {
        // SAFETY: `interleaved` requires only that the CPU supports SSE 4.2, checked just above
        // (the detection is cached after the first call).
        return unsafe { x86::interleaved(crc, data) };
    }
    #[cfg(target_arch = "x86_64")]
    if data.len() < INTERLEAVED_MIN && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: as above, SSE 4.2 was detected.
        return unsafe { serial(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

/// The crc32c of `data` appended to `crc`, in one chain of the hardware instruction (x86-64
/// with SSE 4.2; elsewhere the `crc32c` crate): for a caller that checksums many independent
/// buffers one after another, such as a reader validating a batch of records. One chain has
/// three times the latency of [`crc32c_append`]'s three streams but none of their combination
/// work, and the chains of consecutive buffers do not depend on each other, so the processor
/// runs them side by side: measured 5.5-7.6 ns against 7.8-10.9 ns a 112-byte buffer over 32
/// buffers in a row (2-core Xeon guest, 2026-12-02). A single buffer whose crc is awaited
/// (a writer's record) is faster through [`crc32c_append`].
///
/// ```
/// let data = [7u8; 112];
/// assert_eq!(pmap::crc32c_append_chained(0, &data), crc32c::crc32c(&data));
/// ```
#[inline]
#[must_use]
pub fn crc32c_append_chained(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `serial` requires only that the CPU supports SSE 4.2, checked just above.
        return unsafe { serial(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

/// The crc32c of `parts` laid end to end, appended to `crc`: the value of
/// [`crc32c_append`] over their concatenation, with the CPU check done once and no staging
/// copy (a record checksummed over its header, key and value, which lie apart in memory).
///
/// ```
/// let (a, b) = ([1u8; 28], [2u8; 80]);
/// let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
/// assert_eq!(pmap::crc32c_append_parts(0, &[&a, &b]), crc32c::crc32c(&whole));
/// ```
#[inline]
#[must_use]
pub fn crc32c_append_parts(crc: u32, parts: &[&[u8]]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        let mut crc = crc;
        for part in parts {
            crc = if part.len() < INTERLEAVED_MIN {
                // SAFETY: SSE 4.2 was detected just above.
                unsafe { serial(crc, part) }
            } else if part.len() < INTERLEAVED_MAX {
                // SAFETY: as above.
                unsafe { x86::interleaved(crc, part) }
            } else {
                crc32c::crc32c_append(crc, part)
            };
        }
        return crc;
    }
    parts
        .iter()
        .fold(crc, |crc, part| crc32c::crc32c_append(crc, part))
}

/// Shorter buffers are not worth three streams.
const INTERLEAVED_MIN: usize = 96;
/// From here on the `crc32c` crate interleaves itself (three 256-byte streams).
const INTERLEAVED_MAX: usize = 768;

/// The crc register after `bytes` zero bytes from `register` (raw, reflected: no inversions).
const fn zeros(mut register: u32, bytes: usize) -> u32 {
    let mut i = 0;
    while i < bytes * 8 {
        register = if register & 1 != 0 {
            (register >> 1) ^ POLY
        } else {
            register >> 1
        };
        i += 1;
    }
    register
}

/// The table that advances a register by `bytes` zero bytes, a byte of the register at a time:
/// the advance is linear, so `table[i][b]` is the advance of `b << 8 i`, built from the 32 bits'
/// advances.
const fn shift_table(bytes: usize) -> [[u32; 256]; 4] {
    let mut bits = [0u32; 32];
    let mut k = 0;
    while k < 32 {
        bits[k] = zeros(1 << k, bytes);
        k += 1;
    }
    let mut table = [[0u32; 256]; 4];
    let mut i = 0;
    while i < 4 {
        let mut b = 0;
        while b < 256 {
            let mut value = 0;
            let mut j = 0;
            while j < 8 {
                if b & (1 << j) != 0 {
                    value ^= bits[8 * i + j];
                }
                j += 1;
            }
            table[i][b] = value;
            b += 1;
        }
        i += 1;
    }
    table
}

/// Advance tables by 32, 64, 128 and 256 bytes: the lengths of the later streams (4, 8 or 16
/// words) and twice them.
static SHIFTS: [[[u32; 256]; 4]; 4] = [
    shift_table(32),
    shift_table(64),
    shift_table(128),
    shift_table(256),
];

/// `register` advanced by `SHIFTS[which]`'s length in zero bytes.
#[inline]
fn shift(which: usize, register: u32) -> u32 {
    let t = &SHIFTS[which];
    t[0][(register & 0xff) as usize]
        ^ t[1][((register >> 8) & 0xff) as usize]
        ^ t[2][((register >> 16) & 0xff) as usize]
        ^ t[3][(register >> 24) as usize]
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};

    use super::four_word_lanes;

    /// Three streams over `data` (96..768 bytes): the later two of `lanes` words each (4, 8 or
    /// 16, the largest that leaves the first at least as long), the first the rest of the whole
    /// words; then the bytes after the last whole word, serially.
    ///
    /// # Safety
    /// The CPU must support SSE 4.2.
    #[target_feature(enable = "sse4.2")]
    #[allow(unused_unsafe)] // The intrinsics are safe here from Rust 1.87, unsafe before.
    pub(super) unsafe fn interleaved(crc: u32, data: &[u8]) -> u32 {
        let words = data.len() / 8;
        if words < 24 {
            // SAFETY: SSE 4.2 as this function's contract; `words` is `data.len() / 8`, and
            // at least 12 (96..768 bytes here).
            return unsafe { four_word_lanes(crc, data, words) };
        }
        let (lanes, which) = if words >= 48 {
            (16, 2)
        } else if words >= 24 {
            (8, 1)
        } else {
            (4, 0)
        };
        let first = words - 2 * lanes;
        let word = |i: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&data[8 * i..8 * i + 8]);
            u64::from_le_bytes(raw)
        };
        let (mut a, mut b, mut c) = (u64::from(!crc), 0u64, 0u64);
        let mut i = 0;
        while i < lanes {
            // SAFETY: the CPU supports SSE 4.2 (this function's contract).
            unsafe {
                a = _mm_crc32_u64(a, word(i));
                b = _mm_crc32_u64(b, word(first + i));
                c = _mm_crc32_u64(c, word(first + lanes + i));
            }
            i += 1;
        }
        while i < first {
            // SAFETY: as above.
            a = unsafe { _mm_crc32_u64(a, word(i)) };
            i += 1;
        }
        // a is `2 lanes` words ahead of the end, b `lanes` words: advance them by as many zero
        // bytes and add (the crc is linear).
        let mut register =
            super::shift(which + 1, a as u32) ^ super::shift(which, b as u32) ^ c as u32;
        for &byte in &data[8 * words..] {
            // SAFETY: as above.
            register = unsafe { _mm_crc32_u8(register, byte) };
        }
        !register
    }
}

/// [`x86::interleaved`] for 12..24 words: the later two streams four words each, the first
/// stream the rest; each word read straight from `data` (one unaligned load, no bounds check or
/// staging copy: the indices are below `words <= data.len() / 8`), so a 112-byte image costs
/// about one load and one `crc32` a word plus the combination. The streams are those of
/// earlier versions, so the value is unchanged (and is the `crc32c` crate's, tested at every
/// length).
///
/// # Safety
/// The CPU must support SSE 4.2, and `words` must be `data.len() / 8`, at least 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
#[allow(unused_unsafe)] // The intrinsics are safe here from Rust 1.87, unsafe before.
unsafe fn four_word_lanes(crc: u32, data: &[u8], words: usize) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
    debug_assert!(words >= 8 && words == data.len() / 8);
    let first = words - 8;
    let base = data.as_ptr();
    let word = |i: usize| -> u64 {
        debug_assert!(i < words);
        // SAFETY: every caller below passes `i < words`, and `words * 8 <= data.len()` (this
        // function's contract), so the 8 bytes at `8 i` lie in `data`; `read_unaligned` needs
        // no alignment.
        u64::from_le(unsafe { base.add(8 * i).cast::<u64>().read_unaligned() })
    };
    let mut a = u64::from(!crc);
    let (mut b, mut c) = (0u64, 0u64);
    for i in 0..4 {
        // SAFETY: the CPU supports SSE 4.2 (this function's contract). Indices: `i < 4 <=
        // first`, `first + i < first + 4` and `first + 4 + i < first + 8 = words`.
        unsafe {
            a = _mm_crc32_u64(a, word(i));
            b = _mm_crc32_u64(b, word(first + i));
            c = _mm_crc32_u64(c, word(first + 4 + i));
        }
    }
    for i in 4..first {
        // SAFETY: as above; `i < first < words`.
        a = unsafe { _mm_crc32_u64(a, word(i)) };
    }
    let mut register = shift(1, a as u32) ^ shift(0, b as u32) ^ c as u32;
    for &byte in &data[8 * words..] {
        // SAFETY: as above.
        register = unsafe { _mm_crc32_u8(register, byte) };
    }
    !register
}

/// One chain of `crc32` over a buffer (short ones for [`crc32c_append`], any for
/// [`crc32c_append_chained`]): a word at a time, read unaligned
/// straight from `data`, then a four-byte, two-byte and one-byte step for the rest. The `crc32c`
/// crate computes the same value but first steps byte by byte to an aligned address and goes
/// through its dispatch, which is most of the cost at these lengths (a slot's 28-byte header
/// and 80-byte key and value: 290 instructions through the crate against about 40 here).
///
/// # Safety
/// The CPU must support SSE 4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
#[allow(unused_unsafe)] // The intrinsics are safe here from Rust 1.87, unsafe before.
unsafe fn serial(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64};
    let words = data.len() / 8;
    let base = data.as_ptr();
    let mut register = u64::from(!crc);
    for i in 0..words {
        // SAFETY: `i < words = data.len() / 8`, so the 8 bytes at `8 i` lie in `data`;
        // `read_unaligned` needs no alignment. (A load a word, with no bounds check or staging
        // copy: the chunked form cost three more instructions a word.)
        let word = u64::from_le(unsafe { base.add(8 * i).cast::<u64>().read_unaligned() });
        // SAFETY: the CPU supports SSE 4.2 (this function's contract).
        register = unsafe { _mm_crc32_u64(register, word) };
    }
    let mut register = register as u32;
    let mut rest = &data[8 * words..];
    if let Some((four, tail)) = rest.split_first_chunk::<4>() {
        // SAFETY: as above.
        register = unsafe { _mm_crc32_u32(register, u32::from_le_bytes(*four)) };
        rest = tail;
    }
    if let Some((two, tail)) = rest.split_first_chunk::<2>() {
        // SAFETY: as above.
        register = unsafe { _mm_crc32_u16(register, u16::from_le_bytes(*two)) };
        rest = tail;
    }
    if let Some(&byte) = rest.first() {
        // SAFETY: as above.
        register = unsafe { _mm_crc32_u8(register, byte) };
    }
    !register
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_crc32c_crate_at_every_length_alignment_and_start() {
        let data: Vec<u8> = (0..1100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..900 {
            for skew in [0, 1, 3, 7] {
                let bytes = &data[skew..skew + len];
                for crc in [0, 1, 0xdead_beef, u32::MAX] {
                    assert_eq!(
                        crc32c_append(crc, bytes),
                        crc32c::crc32c_append(crc, bytes),
                        "len {len} skew {skew} crc {crc:#x}"
                    );
                    assert_eq!(
                        crc32c_append_chained(crc, bytes),
                        crc32c::crc32c_append(crc, bytes),
                        "chained: len {len} skew {skew} crc {crc:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn parts_equal_the_crc32c_crate_over_their_concatenation() {
        let data: Vec<u8> = (0..2000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for first in [0, 1, 7, 28, 95, 96, 300, 767, 768, 900] {
            for second in [0, 3, 8, 80, 96, 200, 800] {
                for third in [0, 5, 64] {
                    let (a, rest) = data.split_at(first);
                    let (b, rest) = rest[1..].split_at(second);
                    let c = &rest[..third];
                    let whole: Vec<u8> = a.iter().chain(b).chain(c).copied().collect();
                    for crc in [0, 0xdead_beef] {
                        assert_eq!(
                            crc32c_append_parts(crc, &[a, b, c]),
                            crc32c::crc32c_append(crc, &whole),
                            "parts {first} {second} {third} crc {crc:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_table_advances_like_zero_bytes() {
        let zero = [0u8; 256];
        for (which, bytes) in [32usize, 64, 128, 256].into_iter().enumerate() {
            for register in [1u32, 0x8000_0000, 0x1234_5678, u32::MAX] {
                // The crate's append of zero bytes to crc c starts from !c and ends inverted.
                let expected = !crc32c::crc32c_append(!register, &zero[..bytes]);
                assert_eq!(shift(which, register), expected, "{bytes} bytes");
            }
        }
    }
}
