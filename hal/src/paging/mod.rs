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
use crate::physmap;
pub use crate::physmap::phys_to_virt;

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

/// The boot (kernel-only) level-4 table.
static KERNEL_ROOT: Once<PhysFrame> = Once::new();
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
    physmap::init(offset);
    let (level4, _) = Cr3::read();
    KERNEL_ROOT.call_once(|| level4);
    let table = phys_to_virt(level4.start_address()).as_mut_ptr::<PageTable>();
    // SAFETY: CR3 points at the live level-4 table, reachable through the physical map; the
    // caller guarantees this is the only mapper created over it.
    let mapper = unsafe { OffsetPageTable::new(&mut *table, offset) };
    *MAPPER.lock() = Some(mapper);
}

/// Switches back to the kernel's own address space (no user half).
pub fn activate_kernel() {
    let kernel = *KERNEL_ROOT.get().expect("paging::init not called");
    let (current, flags) = Cr3::read();
    if current != kernel {
        // SAFETY: the boot table maps the kernel half shared by every address space.
        unsafe { Cr3::write(kernel, flags) };
    }
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
    with_mapper(|mapper| mapped(mapper.translate(address)))
}

/// The physical address and flags of a translation that found a mapping.
fn mapped(result: TranslateResult) -> Option<(PhysAddr, PageTableFlags)> {
    match result {
        TranslateResult::Mapped {
            frame,
            offset,
            flags,
        } => Some((frame.start_address() + offset, flags)),
        _ => None,
    }
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

/// Allocates an empty level-3 table for every upper-half level-4 slot that has none.
///
/// Each process's level-4 table copies the upper half of the kernel's, so a kernel mapping
/// made later is visible in every address space only if its level-4 slot already existed.
/// Filling all 256 slots at boot (1 MiB of tables) makes that true forever.
fn share_upper_half(mapper: &mut OffsetPageTable<'static>) -> Result<(), MapError> {
    let level4 = mapper.level_4_table_mut();
    for entry in level4.iter_mut().skip(256) {
        if entry.is_unused() {
            let frame = frames::alloc_zeroed().map_err(|_| MapError::OutOfMemory)?;
            entry.set_frame(frame, PageTableFlags::PRESENT | PageTableFlags::WRITABLE);
        }
    }
    Ok(())
}

/// Prepares the kernel half for sharing with user address spaces (see [`AddressSpace`]).
pub fn init_shared_kernel_half() -> Result<(), MapError> {
    with_mapper(share_upper_half)
}

/// Flags of the intermediate tables above user pages.
const USER_TABLE_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::USER_ACCESSIBLE);

/// First address of the kernel half.
pub const KERNEL_HALF: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the user half.
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// A user address space: its own lower half, the kernel's upper half.
///
/// It owns every frame mapped in its lower half, and the page tables that map them; dropping
/// it frees them all. Pages are reached through the physical-memory map, never through the
/// active CR3, so the kernel can fill or read any process's memory from anywhere.
pub struct AddressSpace {
    level4: PhysFrame,
    /// Pages whose contents are still elsewhere (post-copy: at the cluster the process left);
    /// see `remote.rs`.
    remote: alloc::collections::BTreeSet<u64>,
}

impl AddressSpace {
    /// A new address space with an empty user half.
    pub fn new() -> Result<Self, MapError> {
        let frame = frames::alloc_zeroed().map_err(|_| MapError::OutOfMemory)?;
        let (kernel_level4, _) = Cr3::read();
        let source = phys_to_virt(kernel_level4.start_address()).as_ptr::<PageTable>();
        let target = phys_to_virt(frame.start_address()).as_mut_ptr::<PageTable>();
        // SAFETY: both are live level-4 tables reached through the physical map; the new one
        // is ours alone. Copying the upper-half entries shares the kernel's level-3 tables.
        unsafe {
            let (source, target) = (&*source, &mut *target);
            for i in 256..512 {
                target[i] = source[i].clone();
            }
        }
        Ok(AddressSpace {
            level4: frame,
            remote: alloc::collections::BTreeSet::new(),
        })
    }

    /// The level-4 table's frame (what CR3 holds while this space is active).
    pub fn root(&self) -> PhysFrame {
        self.level4
    }

    fn mapper(&self) -> OffsetPageTable<'static> {
        let table = phys_to_virt(self.level4.start_address()).as_mut_ptr::<PageTable>();
        // SAFETY: the level-4 table is owned by this address space and reachable through the
        // physical map; callers hold `&self`/`&mut self`, so uses are not concurrent.
        unsafe { OffsetPageTable::new(&mut *table, physmap::offset()) }
    }

    fn check_user(page: Page) -> Result<(), MapError> {
        if page.start_address().as_u64() >= USER_END {
            return Err(MapError::OutOfAddressSpace);
        }
        Ok(())
    }

    /// Maps `page` to `frame`, taking ownership of the frame.
    pub fn map(
        &mut self,
        page: Page,
        frame: PhysFrame,
        flags: PageTableFlags,
    ) -> Result<(), MapError> {
        Self::check_user(page)?;
        let flags = flags | PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE;
        let mut mapper = self.mapper();
        // SAFETY: the page is in the user half, which this address space owns; the frame is
        // handed over by the caller. The TLB entry is flushed (harmless if not active).
        let flush = unsafe {
            mapper.map_to_with_table_flags(page, frame, flags, USER_TABLE_FLAGS, &mut GlobalFrames)
        }?;
        flush.flush();
        Ok(())
    }

    /// Maps a fresh zeroed frame at `page`; returns the frame.
    pub fn map_zeroed(&mut self, page: Page, flags: PageTableFlags) -> Result<PhysFrame, MapError> {
        let frame = frames::alloc_zeroed().map_err(|_| MapError::OutOfMemory)?;
        if let Err(error) = self.map(page, frame, flags) {
            let _ = frames::free(frame);
            return Err(error);
        }
        Ok(frame)
    }

    /// Unmaps `page`, handing its frame back to the caller.
    pub fn unmap(&mut self, page: Page) -> Result<PhysFrame, MapError> {
        Self::check_user(page)?;
        match self.mapper().unmap(page) {
            Ok((frame, flush)) => {
                flush.flush();
                Ok(frame)
            }
            Err(UnmapError::PageNotMapped) => Err(MapError::NotMapped),
            Err(_) => Err(MapError::AlreadyMapped),
        }
    }

    /// Unmaps `page` and frees its frame.
    pub fn unmap_and_free(&mut self, page: Page) -> Result<(), MapError> {
        let frame = self.unmap(page)?;
        let _ = frames::free(frame);
        Ok(())
    }

    /// Changes the flags of a mapped page.
    pub fn set_flags(&mut self, page: Page, flags: PageTableFlags) -> Result<(), MapError> {
        Self::check_user(page)?;
        let flags = flags | PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE;
        // SAFETY: the page is in the user half of this address space.
        match unsafe { self.mapper().update_flags(page, flags) } {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(_) => Err(MapError::NotMapped),
        }
    }

    /// Physical address and flags behind a user address.
    pub fn translate(&self, address: VirtAddr) -> Option<(PhysAddr, PageTableFlags)> {
        if address.as_u64() >= USER_END {
            return None;
        }
        mapped(self.mapper().translate(address))
    }

    /// Makes this the active address space.
    pub fn activate(&self) {
        let (current, flags) = Cr3::read();
        if current != self.level4 {
            // SAFETY: the table maps the kernel half exactly like every other address space,
            // so the kernel keeps running unchanged after the switch.
            unsafe { Cr3::write(self.level4, flags) };
        }
    }

    /// True if this is the active address space.
    pub fn is_active(&self) -> bool {
        Cr3::read().0 == self.level4
    }
}

impl AddressSpace {
    /// Unmaps the whole user half, freeing every frame and page table under it.
    pub fn clear_user_half(&mut self) {
        let level4 = phys_to_virt(self.level4.start_address()).as_mut_ptr::<PageTable>();
        // SAFETY: we own the lower half of this table tree; every frame below it was mapped by
        // us and is freed once, leaves and tables alike. The upper half is shared and untouched.
        unsafe { free_tables(&mut *level4, 4, 0..256) };
        if self.is_active() {
            x86_64::instructions::tlb::flush_all();
        }
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        if self.is_active() {
            // Leave this address space before freeing its tables.
            let kernel = *KERNEL_ROOT.get().expect("paging::init");
            let (_, flags) = Cr3::read();
            // SAFETY: the kernel's own table maps the same kernel half.
            unsafe { Cr3::write(kernel, flags) };
        }
        self.clear_user_half();
        let _ = frames::free(self.level4);
    }
}

/// Frees every frame referenced below `table` (leaves and tables) in the given entries.
///
/// # Safety
/// The caller must own all of it.
unsafe fn free_tables(table: &mut PageTable, level: u8, entries: core::ops::Range<usize>) {
    for index in entries {
        let entry = &mut table[index];
        if !entry.flags().contains(PageTableFlags::PRESENT) {
            continue;
        }
        let frame = PhysFrame::containing_address(entry.addr());
        if level > 1 && !entry.flags().contains(PageTableFlags::HUGE_PAGE) {
            let child = phys_to_virt(frame.start_address()).as_mut_ptr::<PageTable>();
            // SAFETY: a present non-huge entry above level 1 points at a page table we own.
            unsafe { free_tables(&mut *child, level - 1, 0..512) };
        }
        let _ = frames::free(frame);
        entry.set_unused();
    }
}

mod remote;
mod walk;
