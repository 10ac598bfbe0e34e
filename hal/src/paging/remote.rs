//! Pages whose contents are not here yet.
//!
//! After a post-copy migration a process runs at its new cluster before all its pages came:
//! the ones still at the cluster it left are *remote*. They have no frame and no mapping, so
//! touching one faults (or fails a kernel copy); the kernel then waits for the page instead of
//! zero-filling it, and maps it when it arrives. The set lives with the address space, so
//! unmapping a range forgets its remote pages too.

use super::AddressSpace;

impl AddressSpace {
    /// Marks `pages` (page-aligned user addresses, not mapped) as remote.
    pub fn set_remote(&mut self, pages: impl IntoIterator<Item = u64>) {
        self.remote.extend(pages);
    }

    /// True if the page holding `address` is remote.
    pub fn is_remote(&self, address: u64) -> bool {
        self.remote.contains(&(address & !0xFFF))
    }

    /// The page is here now (or needed no more): it is no longer remote. True if it was.
    pub fn arrived(&mut self, page: u64) -> bool {
        self.remote.remove(&page)
    }

    /// How many pages are still remote.
    pub fn remote_count(&self) -> usize {
        self.remote.len()
    }

    /// Forgets the remote pages in `[start, end)` (they were unmapped). Work is bounded by
    /// the remote pages there.
    pub(super) fn forget_remote(&mut self, start: u64, end: u64) {
        let gone: alloc::vec::Vec<u64> = self.remote.range(start..end).copied().collect();
        for page in gone {
            self.remote.remove(&page);
        }
    }
}

impl AddressSpace {
    /// The remote pages, in address order.
    pub fn remote_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.remote.iter().copied()
    }
}
