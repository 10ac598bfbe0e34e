//! Kernel page tables.
//!
//! The bootloader leaves all physical memory mapped at a fixed offset in the upper half, and
//! places its own mappings (kernel image, boot stack, boot info) between
//! [`BOOTLOADER_RANGE_START`] and [`BOOTLOADER_RANGE_END`]. The HAL owns two more windows there:
//! the kernel heap and device memory (MMIO). The lower half stays empty for user processes,
//! which are linked at fixed addresses so that a migrated process lands at the same addresses
//! on any cluster.

use core::sync::atomic::{AtomicU64, Ordering};
use spin::{Mutex, Once};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{MapToError, TranslateResult, UnmapError};
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::frames::{self, GlobalFrames};

/// Start of the range the bootloader may use for its dynamic mappings (set in the kernel's
/// `BootloaderConfig`).
pub const BOOTLOADER_RANGE_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the bootloader's dynamic range.
pub const BOOTLOADER_RANGE_END: u64 = 0xFFFF_A000_0000_0000;
/// Kernel heap window.
pub const HEAP_START: u64 = 0xFFFF_C000_0000_0000;
/// Device memory window, handed out by [`map_mmio`].
pub const MMIO_START: u64 = 0xFFFF_D000_0000_0000;
const MMIO_END: u64 = 0xFFFF_E000_0000_0000;

static PHYS_OFFSET: Once<VirtAddr> = Once::new();
static MAPPER: Mutex<Option<OffsetPageTable<'static>>> = Mutex::new(None);
static NEXT_MMIO: AtomicU64 = AtomicU64::new(MMIO_START);

/// Why a mapping request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    OutOfMemory,
    AlreadyMapped,
    NotMapped,
    OutOfAddressSpace,
}

impl From<MapToError<Size4KiB>> for MapError {
    fn from(error: MapToError<Size4KiB>) -> Self {
        match error {
            MapToError::FrameAllocationFailed => MapError::OutOfMemory,
            MapToError::ParentEntryHugePage | MapToError::PageAlreadyMapped(_) => {
                MapError::AlreadyMapped
            }
        }
    }
}

/// Takes over the bootloader's page table.
///
/// # Safety
/// All physical memory must be mapped at `phys_offset`; call once.
pub unsafe fn init(phys_offset: u64) {
    let offset = VirtAddr::new(phys_offset);
    PHYS_OFFSET.call_once(|| offset);
    let (level4, _) = Cr3::read();
    let table = phys_to_virt(level4.start_address()).as_mut_ptr::<PageTable>();
    // SAFETY: CR3 points at the live level-4 table, reachable through the physical map; the
    // caller guarantees this is the only mapper created over it.
    let mapper = unsafe { OffsetPageTable::new(&mut *table, offset) };
    *MAPPER.lock() = Some(mapper);
}

/// Virtual address at which the kernel sees a physical address.
pub fn phys_to_virt(phys: PhysAddr) -> VirtAddr {
    *PHYS_OFFSET.get().expect("paging::init not called") + phys.as_u64()
}

fn with_mapper<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut guard = MAPPER.lock();
        f(guard.as_mut().expect("paging::init not called"))
    })
}

/// Maps one page to `frame` in the active address space.
///
/// # Safety
/// The caller must own `frame` and the virtual page, and the flags must not expose kernel
/// memory to user mode.
pub unsafe fn map(page: Page, frame: PhysFrame, flags: PageTableFlags) -> Result<(), MapError> {
    with_mapper(|mapper| {
        // SAFETY: guaranteed by the caller.
        let flush = unsafe { mapper.map_to(page, frame, flags, &mut GlobalFrames) }?;
        flush.flush();
        Ok(())
    })
}

/// Unmaps one page and returns the frame it pointed to.
pub fn unmap(page: Page) -> Result<PhysFrame, MapError> {
    with_mapper(|mapper| match mapper.unmap(page) {
        Ok((frame, flush)) => {
            flush.flush();
            Ok(frame)
        }
        Err(UnmapError::PageNotMapped) => Err(MapError::NotMapped),
        Err(_) => Err(MapError::AlreadyMapped),
    })
}

/// Physical address and flags behind a virtual address, if it is mapped.
pub fn translate(address: VirtAddr) -> Option<(PhysAddr, PageTableFlags)> {
    with_mapper(|mapper| match mapper.translate(address) {
        TranslateResult::Mapped {
            frame,
            offset,
            flags,
        } => Some((frame.start_address() + offset, flags)),
        _ => None,
    })
}

/// Maps `pages` fresh zeroed frames at `start`. On failure, undoes what it mapped.
pub fn map_fresh(start: VirtAddr, pages: u64, flags: PageTableFlags) -> Result<(), MapError> {
    let first = Page::<Size4KiB>::containing_address(start);
    for i in 0..pages {
        let page = first + i;
        let result = frames::alloc_zeroed()
            .map_err(|_| MapError::OutOfMemory)
            .and_then(|frame| {
                // SAFETY: the frame is freshly allocated and the page is in a window the HAL owns.
                unsafe { map(page, frame, flags) }.inspect_err(|_| {
                    let _ = frames::free(frame);
                })
            });
        if let Err(error) = result {
            for j in 0..i {
                if let Ok(frame) = unmap(first + j) {
                    let _ = frames::free(frame);
                }
            }
            return Err(error);
        }
    }
    Ok(())
}

/// Maps device memory (uncached, not executable) and returns its virtual address.
pub fn map_mmio(phys: PhysAddr, len: u64) -> Result<VirtAddr, MapError> {
    let first = PhysFrame::<Size4KiB>::containing_address(phys);
    let last = PhysFrame::<Size4KiB>::containing_address(phys + (len.max(1) - 1));
    let pages = (last - first) + 1;
    let base = NEXT_MMIO.fetch_add(pages * 4096, Ordering::SeqCst);
    if base + pages * 4096 > MMIO_END {
        return Err(MapError::OutOfAddressSpace);
    }
    let flags = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | PageTableFlags::NO_CACHE
        | PageTableFlags::WRITE_THROUGH
        | PageTableFlags::NO_EXECUTE;
    let start = Page::<Size4KiB>::containing_address(VirtAddr::new(base));
    for i in 0..pages {
        // SAFETY: device frames are not RAM the frame allocator hands out, and the MMIO
        // window addresses come from a bump pointer, so each page is mapped once.
        unsafe { map(start + i, first + i, flags) }?;
    }
    Ok(VirtAddr::new(
        base + (phys.as_u64() - first.start_address().as_u64()),
    ))
}
