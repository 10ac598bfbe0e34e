//! The I/O APIC, for the one legacy interrupt we want: COM1's IRQ 4, so that serial input
//! wakes a halted CPU (the 8259s are masked, and there is no periodic tick to poll it).
//!
//! QEMU's q35 machine has one I/O APIC at the architectural default 0xFEC00000 (its ACPI
//! MADT says so; we do not parse the MADT) with ISA IRQ 4 wired to GSI 4 (QEMU overrides
//! only IRQ 0 and the PCI lines). Registers: Intel 82093AA datasheet, section 3.2.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::PhysAddr;

use crate::frame::TrapFrame;

/// Physical address of the I/O APIC registers.
const IOAPIC_BASE: u64 = 0xFEC0_0000;
const IOREGSEL: usize = 0x00;
const IOWIN: usize = 0x10;
/// First redirection-table register; entry n is at 0x10 + 2n (low) and 0x11 + 2n (high).
const IOREDTBL: u32 = 0x10;
const REG_VERSION: u32 = 0x01;

/// GSI of COM1 (ISA IRQ 4, identity-mapped on QEMU).
const COM1_GSI: u32 = 4;
/// Vector COM1's interrupt arrives on.
pub const SERIAL_VECTOR: u8 = 0x41;

static BASE: AtomicU64 = AtomicU64::new(0);
static SERIAL_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

fn write_register(register: u32, value: u32) {
    let base = BASE.load(Ordering::Relaxed) as usize;
    // SAFETY: `base` maps the I/O APIC's register page uncached; IOREGSEL selects a register
    // and IOWIN accesses it, both 32-bit aligned; only this module touches them, with
    // interrupts off during `init`.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, register);
        core::ptr::write_volatile((base + IOWIN) as *mut u32, value);
    }
}

fn read_register(register: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed) as usize;
    // SAFETY: as in `write_register`.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, register);
        core::ptr::read_volatile((base + IOWIN) as *const u32)
    }
}

/// Routes COM1's IRQ to [`SERIAL_VECTOR`] on this CPU: fixed delivery, physical destination,
/// edge-triggered, active high (ISA defaults). Returns false if there is no I/O APIC.
pub fn init() -> bool {
    let Ok(virt) = crate::paging::map_mmio(PhysAddr::new(IOAPIC_BASE), 4096) else {
        return false;
    };
    BASE.store(virt.as_u64(), Ordering::SeqCst);
    let entries = ((read_register(REG_VERSION) >> 16) & 0xFF) + 1;
    if read_register(REG_VERSION) == u32::MAX || COM1_GSI >= entries {
        return false;
    }
    crate::vectors::set_handler(SERIAL_VECTOR, serial_interrupt);
    let entry = IOREDTBL + 2 * COM1_GSI;
    write_register(entry + 1, crate::apic::id() << 24);
    write_register(entry, SERIAL_VECTOR as u32); // unmasked, fixed, physical, edge, high
    true
}

/// COM1 interrupts taken since boot.
pub fn serial_interrupts() -> u64 {
    SERIAL_INTERRUPTS.load(Ordering::Relaxed)
}

/// Received data: nothing to do here but wake the CPU; the monitor reads the bytes (which
/// also lowers the UART's interrupt line) on its next poll.
fn serial_interrupt(_frame: &mut TrapFrame) {
    SERIAL_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
}
