//! CPU exceptions the kernel survives: a breakpoint is reported and resumed; a fault inside a
//! probe (the mechanism system calls use on user pointers) is recovered and described.

use alloc::string::String;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    breakpoint_is_reported_and_resumed,
    null_read_page_faults,
    unmapped_read_page_faults,
    write_to_read_only_page_faults,
    non_canonical_read_is_general_protection,
    copy_stops_at_first_unmapped_page,
];

const PAGE_FAULT: u8 = 14;
const GENERAL_PROTECTION: u8 = 13;
/// Lower-half addresses the kernel never maps (user space is empty in the test kernel).
const SCRATCH: u64 = 0x0000_7000_0000_0000;

fn breakpoint_is_reported_and_resumed() -> Result<(), String> {
    let (before, _) = hal::trap::breakpoint_stats();
    hal::cpu::breakpoint();
    hal::cpu::breakpoint();
    let (after, rip) = hal::trap::breakpoint_stats();
    ensure_eq!(after, before + 2);
    ensure!(rip != 0);
    Ok(())
}

fn null_read_page_faults() -> Result<(), String> {
    let fault = hal::fault::read_u64(0)
        .err()
        .ok_or("reading address 0 succeeded")?;
    ensure_eq!(fault.vector, PAGE_FAULT);
    ensure_eq!(fault.address, Some(0));
    Ok(())
}

fn unmapped_read_page_faults() -> Result<(), String> {
    let address = SCRATCH + 0x1238;
    let fault = hal::fault::read_u64(address)
        .err()
        .ok_or("read of unmapped page succeeded")?;
    ensure_eq!(fault.vector, PAGE_FAULT);
    ensure_eq!(fault.address, Some(address));
    // Error code: not present (bit 0 clear), read (bit 1 clear), supervisor (bit 2 clear).
    ensure_eq!(fault.error_code & 0b111, 0);
    Ok(())
}

fn write_to_read_only_page_faults() -> Result<(), String> {
    let page = VirtAddr::new(SCRATCH + 0x10_0000);
    let read_only = PageTableFlags::PRESENT | PageTableFlags::NO_EXECUTE;
    hal::paging::map_fresh(page, 1, read_only).map_err(|e| alloc::format!("map: {e:?}"))?;
    let readable = hal::fault::read_u64(page.as_u64());
    // SAFETY: the page was mapped above for this test alone.
    let written = unsafe { hal::fault::write_u64(page.as_u64() + 8, 42) };
    let frame = hal::paging::unmap(x86_64::structures::paging::Page::containing_address(page));
    if let Ok(frame) = frame {
        let _ = hal::frames::free(frame);
    }
    ensure_eq!(readable, Ok(0));
    let fault = written.err().ok_or("write to a read-only page succeeded")?;
    ensure_eq!(fault.vector, PAGE_FAULT);
    // Error code: protection violation (bit 0) on a write (bit 1).
    ensure_eq!(fault.error_code & 0b11, 0b11);
    Ok(())
}

fn non_canonical_read_is_general_protection() -> Result<(), String> {
    let fault = hal::fault::read_u64(0x8000_0000_0000_0000)
        .err()
        .ok_or("read of a non-canonical address succeeded")?;
    ensure_eq!(fault.vector, GENERAL_PROTECTION);
    Ok(())
}

fn copy_stops_at_first_unmapped_page() -> Result<(), String> {
    let source = VirtAddr::new(SCRATCH + 0x20_0000);
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    hal::paging::map_fresh(source, 1, flags).map_err(|e| alloc::format!("map: {e:?}"))?;
    // SAFETY: the page was mapped above, writable, for this test alone.
    unsafe { core::ptr::write_bytes(source.as_mut_ptr::<u8>(), 0xA5, 4096) };
    let mut destination = alloc::vec![0u8; 8192];
    // SAFETY: the destination is our own buffer of the copied length.
    let result = unsafe { hal::fault::copy(destination.as_mut_ptr(), source.as_ptr(), 8192) };
    if let Ok(frame) =
        hal::paging::unmap(x86_64::structures::paging::Page::containing_address(source))
    {
        let _ = hal::frames::free(frame);
    }
    let (fault, copied) = result
        .err()
        .ok_or("copy across an unmapped page succeeded")?;
    ensure_eq!(copied, 4096);
    ensure_eq!(fault.address, Some(source.as_u64() + 4096));
    ensure!(
        destination[..4096].iter().all(|&b| b == 0xA5),
        "copied bytes are wrong"
    );
    ensure!(
        destination[4096..].iter().all(|&b| b == 0),
        "bytes past the fault were written"
    );
    Ok(())
}
