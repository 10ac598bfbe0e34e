//! Page-table helpers: a mapping is visible through both its virtual and physical addresses,
//! unmapping removes it, and device memory is mapped uncached.

use alloc::string::String;
use x86_64::structures::paging::{Page, PageTableFlags};
use x86_64::{PhysAddr, VirtAddr};

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    map_write_translate_unmap,
    double_map_is_refused,
    mmio_is_uncached
];

const SCRATCH: u64 = 0x0000_7100_0000_0000;
const FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE);

fn map_write_translate_unmap() -> Result<(), String> {
    let address = VirtAddr::new(SCRATCH);
    hal::paging::map_fresh(address, 2, FLAGS).map_err(|e| alloc::format!("{e:?}"))?;
    // SAFETY: the two pages were just mapped writable for this test.
    unsafe { core::ptr::write_volatile(address.as_mut_ptr::<u64>().add(512), 0xFEED) };
    let (phys, flags) =
        hal::paging::translate(address + 4096u64).ok_or("second page not mapped")?;
    ensure!(flags.contains(PageTableFlags::WRITABLE));
    // SAFETY: reading the same frame through the physical-memory map.
    let through_phys =
        unsafe { core::ptr::read_volatile(hal::paging::phys_to_virt(phys).as_ptr::<u64>()) };
    ensure_eq!(through_phys, 0xFEED);
    for i in 0..2u64 {
        let frame = hal::paging::unmap(Page::containing_address(address + i * 4096))
            .map_err(|e| alloc::format!("{e:?}"))?;
        hal::frames::free(frame).map_err(|e| alloc::format!("{e:?}"))?;
    }
    ensure!(hal::paging::translate(address).is_none());
    ensure!(hal::fault::read_u64(address.as_u64()).is_err());
    Ok(())
}

fn double_map_is_refused() -> Result<(), String> {
    let address = VirtAddr::new(SCRATCH + 0x10_0000);
    hal::paging::map_fresh(address, 1, FLAGS).map_err(|e| alloc::format!("{e:?}"))?;
    let again = hal::paging::map_fresh(address, 1, FLAGS);
    let frame = hal::paging::unmap(Page::containing_address(address))
        .map_err(|e| alloc::format!("{e:?}"))?;
    let _ = hal::frames::free(frame);
    ensure_eq!(again, Err(hal::paging::MapError::AlreadyMapped));
    Ok(())
}

fn mmio_is_uncached() -> Result<(), String> {
    // The local APIC page, already in use by the timer; a second mapping is harmless.
    let virt = hal::paging::map_mmio(PhysAddr::new(0xFEE0_0000), 4096)
        .map_err(|e| alloc::format!("{e:?}"))?;
    let (phys, flags) = hal::paging::translate(virt).ok_or("mmio not mapped")?;
    ensure_eq!(phys.as_u64(), 0xFEE0_0000);
    ensure!(flags.contains(PageTableFlags::NO_CACHE));
    ensure!(flags.contains(PageTableFlags::NO_EXECUTE));
    Ok(())
}
