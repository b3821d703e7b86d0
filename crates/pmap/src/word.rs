//! The atomic-word seam: the operations a protocol kernel makes on a shared word, as traits, so
//! that one kernel runs on the words of a mapping and, under `--cfg loom`, on loom's model
//! atomics (docs/pmap.md, "Protocol kernels and loom models").
//!
//! The layers above write each protocol (plog's reservation, claims, lap check and sleeper bit,
//! pblockdb's slot seqlock) once, as small functions generic over these traits. The crates call
//! them with the `&AtomicU64`/`&AtomicU32` of a [`SharedMap`](crate::SharedMap) (or a
//! [`LoadWord64`], which also works on read-only views); the models of `cargo xtask loom` call
//! the very same functions with `loom::sync::atomic` words, whose every interleaving and
//! weak-memory outcome loom explores. Every method is `#[inline(always)]` and forwards to the
//! std method of the same name: a kernel monomorphised for std atomics compiles to the code it
//! would be without the seam. The fence belongs to the word's family (`W::fence`): std's fence
//! for std words, loom's for loom's, so that a model sees every fence the kernel makes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// A 64-bit word that can be loaded, and the fence of its memory model.
pub trait Load64 {
    /// A fence in this word's memory model ([`std::sync::atomic::fence`] for std words).
    fn fence(order: Ordering);
    /// [`AtomicU64::load`].
    fn load(&self, order: Ordering) -> u64;
}

/// A 64-bit word that can be written too.
pub trait Word64: Load64 {
    /// [`AtomicU64::store`].
    fn store(&self, value: u64, order: Ordering);
    /// [`AtomicU64::fetch_add`].
    fn fetch_add(&self, value: u64, order: Ordering) -> u64;
    /// [`AtomicU64::compare_exchange`].
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
}

/// A 32-bit word that can be loaded, and the fence of its memory model.
pub trait Load32 {
    /// A fence in this word's memory model.
    fn fence(order: Ordering);
    /// [`AtomicU32::load`].
    fn load(&self, order: Ordering) -> u32;
}

/// A 32-bit word that can be written too.
pub trait Word32: Load32 {
    /// [`AtomicU32::store`].
    fn store(&self, value: u32, order: Ordering);
    /// [`AtomicU32::fetch_or`].
    fn fetch_or(&self, value: u32, order: Ordering) -> u32;
    /// [`AtomicU32::compare_exchange`].
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
}

/// A SeqCst fence before a SeqCst access, where `$leading` (loom's words; a constant `false`
/// for std's, so nothing is emitted there).
macro_rules! leading_fence {
    ($fence:path, $leading:expr, $order:expr) => {
        if $leading && $order == Ordering::SeqCst {
            $fence(Ordering::SeqCst);
        }
    };
}

/// Implements the four traits for the words `$u64`, `$u32` of one family of atomics: each
/// method forwards to the method of the atomic (`$a64`, `$a32`) that `$inner` borrows from the
/// word, and `fence` is `$fence`. `$leading`: a SeqCst access is made as a SeqCst fence, then
/// the access (see [`SeqCstFenced`]).
macro_rules! impl_words {
    ($u64:ty, $u32:ty, $a64:ty, $a32:ty, $fence:path, $leading:expr, $inner:path) => {
        impl Load64 for $u64 {
            #[inline(always)]
            fn fence(order: Ordering) {
                $fence(order)
            }
            #[inline(always)]
            fn load(&self, order: Ordering) -> u64 {
                leading_fence!($fence, $leading, order);
                <$a64>::load($inner(self), order)
            }
        }

        impl Word64 for $u64 {
            #[inline(always)]
            fn store(&self, value: u64, order: Ordering) {
                leading_fence!($fence, $leading, order);
                <$a64>::store($inner(self), value, order)
            }
            #[inline(always)]
            fn fetch_add(&self, value: u64, order: Ordering) -> u64 {
                leading_fence!($fence, $leading, order);
                <$a64>::fetch_add($inner(self), value, order)
            }
            #[inline(always)]
            fn compare_exchange(
                &self,
                current: u64,
                new: u64,
                success: Ordering,
                failure: Ordering,
            ) -> Result<u64, u64> {
                leading_fence!($fence, $leading, success);
                <$a64>::compare_exchange($inner(self), current, new, success, failure)
            }
        }

        impl Load32 for $u32 {
            #[inline(always)]
            fn fence(order: Ordering) {
                $fence(order)
            }
            #[inline(always)]
            fn load(&self, order: Ordering) -> u32 {
                leading_fence!($fence, $leading, order);
                <$a32>::load($inner(self), order)
            }
        }

        impl Word32 for $u32 {
            #[inline(always)]
            fn store(&self, value: u32, order: Ordering) {
                leading_fence!($fence, $leading, order);
                <$a32>::store($inner(self), value, order)
            }
            #[inline(always)]
            fn fetch_or(&self, value: u32, order: Ordering) -> u32 {
                leading_fence!($fence, $leading, order);
                <$a32>::fetch_or($inner(self), value, order)
            }
            #[inline(always)]
            fn compare_exchange(
                &self,
                current: u32,
                new: u32,
                success: Ordering,
                failure: Ordering,
            ) -> Result<u32, u32> {
                leading_fence!($fence, $leading, success);
                <$a32>::compare_exchange($inner(self), current, new, success, failure)
            }
        }
    };
}

impl_words!(
    AtomicU64,
    AtomicU32,
    AtomicU64,
    AtomicU32,
    fence,
    false,
    std::convert::identity
);

#[cfg(loom)]
impl_words!(
    loom::sync::atomic::AtomicU64,
    loom::sync::atomic::AtomicU32,
    loom::sync::atomic::AtomicU64,
    loom::sync::atomic::AtomicU32,
    loom::sync::atomic::fence,
    false,
    std::convert::identity
);

/// A loom word (`loom::sync::atomic::AtomicU64` or `AtomicU32`) whose SeqCst accesses are made
/// as a SeqCst fence, then the access (`--cfg loom` builds only).
///
/// Loom regards SeqCst accesses as AcqRel (its README, "Unsupported features"): a
/// store-then-load handshake on two words, such as plog's sleeper bit, then fails in a model
/// where the C++ memory model forbids the failure. Loom does model SeqCst fences, and a SeqCst
/// fence before every SeqCst access is the "leading fence" mapping of SeqCst atomics that
/// compilers for POWER use, a correct implementation of them. That mapping is stronger than
/// SeqCst accesses in one respect: the fence also orders the thread's earlier and later
/// relaxed accesses. So a model uses these words only where its promise rests on SeqCst (the
/// sleeper handshake), and plain loom words elsewhere, where loom's weaker reading of SeqCst
/// can only make it find more.
#[cfg(loom)]
#[derive(Debug, Default)]
pub struct SeqCstFenced<A>(pub A);

#[cfg(loom)]
impl<A> SeqCstFenced<A> {
    #[inline(always)]
    fn inner(&self) -> &A {
        &self.0
    }
}

#[cfg(loom)]
impl_words!(
    SeqCstFenced<loom::sync::atomic::AtomicU64>,
    SeqCstFenced<loom::sync::atomic::AtomicU32>,
    loom::sync::atomic::AtomicU64,
    loom::sync::atomic::AtomicU32,
    loom::sync::atomic::fence,
    true,
    SeqCstFenced::inner
);

/// A checked, aligned 64-bit word of a [`SharedMap`](crate::SharedMap) that is only loaded,
/// from [`SharedMap::load_word_u64`](crate::SharedMap::load_word_u64): it works on read-only
/// views too, as [`SharedMap::load_u64`](crate::SharedMap::load_u64) does (a read-only view is
/// loaded relaxed, the ordering supplied by fences).
#[derive(Debug, Clone, Copy)]
pub struct LoadWord64<'a> {
    pub(crate) word: &'a AtomicU64,
    pub(crate) writable: bool,
}

impl Load64 for LoadWord64<'_> {
    #[inline(always)]
    fn fence(order: Ordering) {
        fence(order)
    }
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        crate::shared::load_ordered(self.writable, order, |o| self.word.load(o))
    }
}
