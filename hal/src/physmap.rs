//! The kernel's window onto physical memory: the bootloader maps all of it at one offset.
//!
//! A leaf, so that both the frame allocator (zeroing a frame) and the page-table code reach
//! physical memory without depending on each other.

use spin::Once;
use x86_64::{PhysAddr, VirtAddr};

static PHYS_OFFSET: Once<VirtAddr> = Once::new();

/// Records where the bootloader mapped physical memory (once, from `paging::init`).
pub(crate) fn init(offset: VirtAddr) {
    PHYS_OFFSET.call_once(|| offset);
}

/// The offset of the physical-memory mapping.
pub(crate) fn offset() -> VirtAddr {
    *PHYS_OFFSET.get().expect("paging::init not called")
}

/// Virtual address at which the kernel sees a physical address.
pub fn phys_to_virt(phys: PhysAddr) -> VirtAddr {
    offset() + phys.as_u64()
}
