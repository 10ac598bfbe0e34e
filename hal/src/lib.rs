//! Tessera's hardware abstraction layer.
//!
//! Everything the microkernel needs from the machine goes through this crate, so the kernel
//! never names an x86 register, an I/O port or a QEMU device (Nanvix keeps the same HAL API on
//! every target for the same reason). Bring-up order matters and lives in [`init`].

#![no_std]

extern crate alloc;

pub mod acpi;
pub mod apic;
pub mod clock;
pub mod cpu;
pub mod fault;
pub mod frame;
pub mod frames;
pub mod fwcfg;
pub mod gdt;
pub mod heap;
pub mod ioapic;
pub mod logger;
pub mod noc;
pub mod paging;
pub mod physmap;
pub mod pit;
pub mod power;
pub mod serial;
pub mod timer;
pub mod trap;
pub mod usermode;
pub mod vectors;

use bootloader_api::BootInfo;

/// What the HAL learned about the machine while bringing it up.
#[derive(Debug, Clone, Copy)]
pub struct MachineInfo {
    /// Cluster number of this kernel (the NoC device's IVPosition; 0 without a NoC).
    pub cluster: u32,
    /// Clusters in the machine (from the NoC control block; 1 without a NoC).
    pub cluster_count: u32,
    /// Bytes of RAM the boot memory map reports as usable.
    pub usable_memory: u64,
    /// Frames still free once the HAL has taken what it needs (heap, page tables).
    pub free_frames: usize,
    /// Time-stamp-counter frequency: the chip's (host TSC, measured by the router) once the
    /// clock is synchronised, else the PIT calibration.
    pub tsc_hz: u64,
    /// Measured local APIC timer input frequency (after the divider).
    pub apic_timer_hz: u64,
    /// The local APIC timer runs in TSC-deadline mode (else one-shot).
    pub tsc_deadline: bool,
    /// The clock reads chip time (synchronised with the router).
    pub chip_time: bool,
    /// Serial input raises an interrupt (COM1 routed through the I/O APIC).
    pub serial_irq: bool,
}

/// Brings the machine up: console and log first (so everything after can report), then CPU
/// tables, memory, and finally interrupts, the timer and the NoC (which sets the chip clock).
///
/// Must be called exactly once, first thing on the boot CPU.
pub fn init(boot_info: &'static mut BootInfo) -> MachineInfo {
    serial::init();
    logger::init();
    gdt::init();
    trap::init();
    usermode::init();

    let phys_offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("bootloader config must map physical memory");
    let usable_memory = frames::init(&boot_info.memory_regions);
    // SAFETY: the bootloader mapped all physical memory at `phys_offset` and the active page
    // table is the one it built; this is the only place the mapper is created.
    unsafe { paging::init(phys_offset) };
    heap::init().expect("cannot map the kernel heap");
    paging::init_shared_kernel_half().expect("cannot allocate kernel page tables");
    acpi::init(boot_info.rsdp_addr.into_option());

    let calibration = apic::init();
    clock::init(calibration.tsc_hz);
    let serial_irq = ioapic::init();
    let noc = noc::init();
    if let Some(noc) = noc {
        logger::set_cluster(noc.cluster as u32);
    }
    cpu::enable_interrupts();

    MachineInfo {
        cluster: noc.map_or(0, |n| n.cluster as u32),
        cluster_count: noc.map_or(1, |n| n.cluster_count as u32),
        usable_memory,
        free_frames: frames::free_count(),
        tsc_hz: clock::tsc_hz(),
        apic_timer_hz: apic::timer_hz(),
        tsc_deadline: calibration.tsc_deadline,
        chip_time: clock::is_chip_time(),
        serial_irq,
    }
}
