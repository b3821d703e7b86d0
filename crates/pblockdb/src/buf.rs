//! A scratch buffer that lives on the stack for the common small slot, so that a lookup does
//! not allocate. Stack buffers are 8-aligned (built from `u64`s) so that checksums over slot
//! bytes run on aligned words.

const INLINE: usize = 256;

#[derive(Debug)]
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
