//! [`Rng`]: xorshift64, reproducible randomness without a dependency.

/// A small deterministic generator (Marsaglia's xorshift64, shifts 13, 7, 17): every run can be
/// replayed from its seed, in the parent test and in the children it starts, and it costs a few
/// instructions (benches use it beside a lookup).
///
/// Not for anything but tests: it is neither uniform to the last bit ([`Rng::below`] takes a
/// remainder) nor unpredictable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose state starts at `seed` exactly: the first number is one step past it.
    ///
    /// # Panics
    /// If `seed` is zero (xorshift stays at zero forever).
    #[must_use]
    #[inline]
    pub fn new(seed: u64) -> Rng {
        assert_ne!(seed, 0, "an xorshift seed must not be zero");
        Rng(seed)
    }

    /// The next number.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`: the next number modulo `n` (0 when `n` is 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Fills `out` with one draw a byte: each byte is the low byte of the next number.
    pub fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.next_u64() as u8;
        }
    }

    /// `len` bytes, as [`Rng::fill`] makes them.
    #[must_use]
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.fill(&mut out);
        out
    }
}
