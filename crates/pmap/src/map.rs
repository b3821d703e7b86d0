//! [`Map`]: a mapping owned by one handle, reached through slices and typed views.

use std::path::Path;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::common::common_methods;
use crate::core::Core;
use crate::{Error, Lock, MapOptions, Result, SharedMap};

/// A mapped view of a file (or of anonymous memory) owned by one handle.
///
/// Bytes are reached as slices: `&self` gives `&[u8]`, `&mut self` gives `&mut [u8]`. Because
/// growth and refresh take `&mut self`, the borrow checker forbids holding a slice across a
/// remap. For memory that other threads write at the same time, convert into a [`SharedMap`].
///
/// # Safety of the view
/// The slices are only as stable as the file: another *process* that writes the file changes
/// bytes under them, and one that truncates it makes reads past its new end raise `SIGBUS` (a
/// crash, not an error). pounds never truncates a mapped file itself (growth unmaps first and
/// only extends), and its shared layers use [`SharedMap`], which hands out no references to
/// bytes others may be writing. Do not map files that other programs truncate.
///
/// ```
/// # fn main() -> Result<(), pmap::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("data.bin");
/// let mut map = pmap::Map::create(&path, 4096)?;
/// map.as_mut_slice()?[..5].copy_from_slice(b"hello");
/// map.write(8, &42u64)?;
/// map.grow(1 << 20)?;
/// assert_eq!(&map.as_slice()[..5], b"hello");
/// assert_eq!(map.read::<u64>(8)?, 42);
/// map.flush()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Map {
    core: Core,
}

impl Map {
    pub(crate) fn from_core(core: Core) -> Self {
        Map { core }
    }

    /// Opens an existing file read-write, the view covering the whole file. See
    /// [`MapOptions`] for everything else.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::IsDirectory`], [`Error::ReadOnlyFile`],
    /// [`Error::PermissionDenied`], [`Error::ZeroLength`] for an empty file, or an I/O error.
    pub fn open(path: impl AsRef<Path>) -> Result<Map> {
        MapOptions::new().must_exist().open(path)
    }

    /// Opens `path` read-write, creating it if absent and extending it to at least `size`
    /// bytes; unlike [`std::fs::File::create`] it never truncates: existing contents are kept
    /// and a larger file is never shrunk. The disk blocks of the bytes it adds are reserved
    /// before they are mapped. The view covers the whole file. Shorthand for
    /// `MapOptions::new().size(size).open(path)`.
    ///
    /// # Errors
    /// [`Error::IsDirectory`], [`Error::ReadOnlyFile`], [`Error::PermissionDenied`],
    /// [`Error::ZeroLength`] (a new file with `size` 0), [`Error::NoSpace`] when the disk has
    /// no room for the bytes to add (the file keeps its old length), or an I/O error.
    pub fn create(path: impl AsRef<Path>, size: u64) -> Result<Map> {
        MapOptions::new().size(size).open(path)
    }

    /// Opens an existing file read-only, the view covering the whole file.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::IsDirectory`], [`Error::ZeroLength`] for an empty file,
    /// or an I/O error.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Map> {
        MapOptions::new().read_only().open(path)
    }

    /// A zero-filled memory-only mapping of `len` bytes, growable, visible to this process
    /// only.
    ///
    /// # Errors
    /// [`Error::ZeroLength`], or the I/O error from `mmap`.
    pub fn anonymous(len: usize) -> Result<Map> {
        Core::anonymous(len).map(Map::from_core)
    }

    common_methods!();

    /// The whole view.
    #[inline]
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        match self.core.bounds(0, self.core.len()) {
            // SAFETY: `bounds` checked that `len` bytes from the pointer lie in the live view.
            // The view lives as long as `&self`, and every in-process write to it needs
            // `&mut self` (this type hands out no shared-write access), so the bytes do not
            // change under the slice from this process. Other processes writing the file is the
            // hazard the type-level documentation states.
            Ok(ptr) => unsafe { std::slice::from_raw_parts(ptr, self.core.len()) },
            Err(_) => &[],
        }
    }

    /// The whole view, writable.
    ///
    /// # Errors
    /// [`Error::ReadOnlyMapping`].
    #[inline]
    pub fn as_mut_slice(&mut self) -> Result<&mut [u8]> {
        self.core.require_writable("as_mut_slice")?;
        let len = self.core.len();
        match self.core.bounds(0, len) {
            // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference into the
            // view in this process. The view is mapped writable (checked above).
            Ok(ptr) => Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) }),
            Err(_) => Ok(&mut []),
        }
    }

    /// `len` bytes from `offset`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`].
    #[inline]
    pub fn slice(&self, offset: usize, len: usize) -> Result<&[u8]> {
        self.core.bounds(offset, len)?;
        Ok(&self.as_slice()[offset..offset + len])
    }

    /// `len` writable bytes from `offset`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::ReadOnlyMapping`].
    #[inline]
    pub fn slice_mut(&mut self, offset: usize, len: usize) -> Result<&mut [u8]> {
        self.core.bounds(offset, len)?;
        Ok(&mut self.as_mut_slice()?[offset..offset + len])
    }

    /// Copies a `T` out of the view at `offset` (any alignment).
    ///
    /// # Errors
    /// [`Error::OutOfBounds`].
    pub fn read<T: FromBytes>(&self, offset: usize) -> Result<T> {
        let bytes = self.slice(offset, size_of::<T>())?;
        T::read_from_bytes(bytes).map_err(|_| Error::OutOfBounds {
            offset,
            len: size_of::<T>(),
            map_len: self.len(),
        })
    }

    /// Copies `value` into the view at `offset` (any alignment).
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::ReadOnlyMapping`].
    pub fn write<T: IntoBytes + Immutable>(&mut self, offset: usize, value: &T) -> Result<()> {
        self.slice_mut(offset, size_of::<T>())?
            .copy_from_slice(value.as_bytes());
        Ok(())
    }

    /// Borrows a `T` in place at `offset`, which must be aligned for `T`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] or [`Error::Misaligned`].
    pub fn view<T: FromBytes + KnownLayout + Immutable>(&self, offset: usize) -> Result<&T> {
        self.core.aligned(offset, size_of::<T>(), align_of::<T>())?;
        T::ref_from_bytes(self.slice(offset, size_of::<T>())?).map_err(|_| Error::Misaligned {
            offset,
            align: align_of::<T>(),
        })
    }

    /// Borrows a `T` in place at `offset` for writing; `offset` must be aligned for `T`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`], [`Error::Misaligned`] or [`Error::ReadOnlyMapping`].
    pub fn view_mut<T: FromBytes + IntoBytes + KnownLayout>(
        &mut self,
        offset: usize,
    ) -> Result<&mut T> {
        self.core.aligned(offset, size_of::<T>(), align_of::<T>())?;
        T::mut_from_bytes(self.slice_mut(offset, size_of::<T>())?).map_err(|_| Error::Misaligned {
            offset,
            align: align_of::<T>(),
        })
    }

    /// Turns this handle into a [`SharedMap`], for memory that threads and processes read and
    /// write at the same time.
    pub fn into_shared(self) -> SharedMap {
        SharedMap::from_core(self.core)
    }
}
