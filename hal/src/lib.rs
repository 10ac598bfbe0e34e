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
pub mod logger;
pub mod noc;
pub mod paging;
pub mod physmap;
pub mod pit;
pub mod power;
pub mod serial;
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
    /// Local APIC timer rate in Hz.
    pub timer_hz: u32,
    /// Measured time-stamp-counter frequency.
    pub tsc_hz: u64,
    /// Measured local APIC timer input frequency (after the divider).
    pub apic_timer_hz: u64,
}

/// Boot options read from the QEMU command line (`-fw_cfg name=opt/tessera/cmdline,...`).
pub struct Options {
    /// Timer interrupt rate; the scheduler quantum is a multiple of it.
    pub timer_hz: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { timer_hz: 1000 }
    }
}

/// Brings the machine up: console and log first (so everything after can report), then CPU
/// tables, memory, and finally interrupts and the timer.
///
/// Must be called exactly once, first thing on the boot CPU.
pub fn init(boot_info: &'static mut BootInfo, options: &Options) -> MachineInfo {
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

    let calibration = apic::init(options.timer_hz);
    clock::init(calibration.tsc_hz);
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
        timer_hz: options.timer_hz,
        tsc_hz: calibration.tsc_hz,
        apic_timer_hz: calibration.apic_timer_hz,
    }
}
