//! [`Advice`]: what a caller can tell the kernel about how it will use a range of a view.

/// How a range of a view will be used, for [`Map::advise`](crate::Map::advise) and
/// [`SharedMap::advise`](crate::SharedMap::advise) (`madvise` on Unix). Advice is a hint: it
/// never changes a byte of a file mapping, and where the platform has no such advice the call
/// is a portable no-op that returns `Ok(false)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Advice {
    /// No special treatment: the default read-ahead (`MADV_NORMAL`).
    Normal,
    /// The range will be read in order: read ahead aggressively, free pages soon after
    /// (`MADV_SEQUENTIAL`).
    Sequential,
    /// The range will be read in no particular order: read-ahead is wasted (`MADV_RANDOM`).
    Random,
    /// The range will be needed soon: start reading it in now (`MADV_WILLNEED`).
    WillNeed,
    /// The range is not needed for now: drop its pages from this process's page tables
    /// (`MADV_DONTNEED`). On a file mapping the data stays in the file and the page cache and
    /// the next access reads it back, unchanged. On an anonymous mapping it would zero the
    /// memory, so pmap refuses it there with [`Error::Unsupported`](crate::Error::Unsupported).
    DontNeed,
    /// Back the range with transparent huge pages where possible (`MADV_HUGEPAGE`, Linux).
    /// They apply to anonymous and shmem memory; a kernel that refuses it for a file mapping
    /// or was built without them makes this `Ok(false)`.
    HugePage,
    /// Never back the range with transparent huge pages (`MADV_NOHUGEPAGE`, Linux); like
    /// [`Advice::HugePage`], `Ok(false)` where the kernel refuses it.
    NoHugePage,
}

impl Advice {
    /// Every advice, in declaration order (for tests and tools that try them all).
    pub const ALL: [Advice; 7] = [
        Advice::Normal,
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::DontNeed,
        Advice::HugePage,
        Advice::NoHugePage,
    ];

    /// Whether this is one of the transparent-huge-page advices, which kernels refuse on
    /// mappings they cannot back with huge pages.
    pub(crate) fn is_huge_page(self) -> bool {
        matches!(self, Advice::HugePage | Advice::NoHugePage)
    }
}
