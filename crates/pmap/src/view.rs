//! [`View`]: the mapping a `Core` holds: memmap2's `MmapRaw`, or on Unix a view at the start
//! of a reserved range of address space that grows in place (`os/unix.rs` `ReservedView`).
//! Both answer the calls `core.rs` and the platform files make, under the same names.

use std::io;

use memmap2::MmapRaw;

#[derive(Debug)]
pub(crate) enum View {
    /// Mapped by memmap2, at an address of the kernel's choosing; growth maps anew.
    Plain(MmapRaw),
    /// Placed in a reservation (`MapOptions::reserve_address_space`); growth inside it keeps
    /// the address.
    #[cfg(unix)]
    Reserved(crate::os_unix::ReservedView),
}

impl From<MmapRaw> for View {
    fn from(raw: MmapRaw) -> Self {
        View::Plain(raw)
    }
}

impl View {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match self {
            View::Plain(raw) => raw.len(),
            #[cfg(unix)]
            View::Reserved(view) => view.len(),
        }
    }

    #[inline]
    pub(crate) fn as_mut_ptr(&self) -> *mut u8 {
        match self {
            View::Plain(raw) => raw.as_mut_ptr(),
            #[cfg(unix)]
            View::Reserved(view) => view.as_mut_ptr(),
        }
    }

    #[inline]
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.as_mut_ptr().cast_const()
    }

    /// The bytes the view could have without moving: its reservation, or its length.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            View::Plain(raw) => raw.len(),
            #[cfg(unix)]
            View::Reserved(view) => view.capacity(),
        }
    }

    pub(crate) fn flush(&self) -> io::Result<()> {
        self.flush_range(0, self.len())
    }

    pub(crate) fn flush_async(&self) -> io::Result<()> {
        match self {
            View::Plain(raw) => raw.flush_async(),
            #[cfg(unix)]
            View::Reserved(view) => view.sync(0, view.len(), false),
        }
    }

    /// `offset..offset + len` is in the view (the caller checked).
    pub(crate) fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        match self {
            View::Plain(raw) => raw.flush_range(offset, len),
            #[cfg(unix)]
            View::Reserved(view) => view.sync(offset, len, true),
        }
    }

    /// `offset..offset + len` is in the view (the caller checked).
    #[cfg(unix)]
    pub(crate) fn advise_range(
        &self,
        advice: memmap2::Advice,
        offset: usize,
        len: usize,
    ) -> io::Result<()> {
        match self {
            View::Plain(raw) => raw.advise_range(advice, offset, len),
            // SAFETY: `memmap2::Advice` holds only the advices memmap2 calls safe (none
            // changes a byte); its discriminants are the `MADV_*` values.
            View::Reserved(view) => unsafe { view.advise(offset, len, advice as libc::c_int) },
        }
    }

    /// `offset..offset + len` is in the view (the caller checked).
    ///
    /// # Safety
    /// As memmap2's `MmapRaw::unchecked_advise_range`: the advice may change bytes under
    /// references into the range, which the caller argues away.
    #[cfg(unix)]
    pub(crate) unsafe fn unchecked_advise_range(
        &self,
        advice: memmap2::UncheckedAdvice,
        offset: usize,
        len: usize,
    ) -> io::Result<()> {
        match self {
            // SAFETY: forwarded to the caller.
            View::Plain(raw) => unsafe { raw.unchecked_advise_range(advice, offset, len) },
            // SAFETY: forwarded to the caller; the discriminants are the `MADV_*` values.
            View::Reserved(view) => unsafe { view.advise(offset, len, advice as libc::c_int) },
        }
    }
}
