//! A scratch buffer that lives on the stack for the common small slot, so that a lookup does
//! not allocate. Stack buffers are 8-aligned (built from `u64`s) so that checksums over slot
//! bytes run on aligned words.

const INLINE: usize = 256;

#[allow(clippy::large_enum_variant)] // On the stack on purpose: a lookup must not allocate.
pub(crate) enum Buf {
    Inline([u64; INLINE / 8], usize),
    Heap(Vec<u8>),
}

impl Buf {
    pub(crate) fn zeroed(len: usize) -> Self {
        if len <= INLINE {
            Buf::Inline([0; INLINE / 8], len)
        } else {
            Buf::Heap(vec![0; len])
        }
    }

    /// `bytes` followed by zeros up to `len` (the caller checked `bytes.len() <= len`).
    pub(crate) fn padded(bytes: &[u8], len: usize) -> Self {
        let mut buf = Buf::zeroed(len);
        buf[..bytes.len()].copy_from_slice(bytes);
        buf
    }
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buf::Inline(words, len) => &bytemuck::cast_slice(words)[..*len],
            Buf::Heap(bytes) => bytes,
        }
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Buf::Inline(words, len) => &mut bytemuck::cast_slice_mut(words)[..*len],
            Buf::Heap(bytes) => bytes,
        }
    }
}

/// `len` zeroed bytes: the front of `stack` when it is long enough (no allocation), else
/// `heap`. The caller declares both in its own frame, so nothing large is moved.
pub(crate) fn scratch<'a>(stack: &'a mut [u8], heap: &'a mut Vec<u8>, len: usize) -> &'a mut [u8] {
    if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        heap
    }
}
