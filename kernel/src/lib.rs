//! The Tessera microkernel, one instance per cluster.
//!
//! This crate is a library so that the production kernel (`src/main.rs`) and the in-kernel
//! test kernel (`tests/`) share exactly the same bring-up path: what the tests exercise is
//! what boots.

#![no_std]

extern crate alloc;

pub mod acceptance;
pub mod budget;
pub mod cmdline;
pub mod elf;
pub mod envelope;
pub mod ipc;
pub mod migstats;
pub mod monitor;
pub mod names;
pub mod noc;
pub mod panic;
pub mod portal;
pub mod process;
pub mod ramdisk;
pub mod requests;
pub mod services;
pub mod sync;
pub mod syscall;
pub mod userdma;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::BootInfo;
use log::LevelFilter;

pub use cmdline::Cmdline;

/// Kernel version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the bootloader must lay the machine out for us: all physical memory mapped, every
/// bootloader mapping in the upper half (the lower half belongs to user processes), the
/// kernel image at a fixed address (so a debugger knows where its symbols are), and a
/// kernel stack big enough for deep call chains (it has a guard page below it).
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.kernel_base = Mapping::FixedAddress(abi::types::KERNEL_BASE);
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.dynamic_range_start = Some(hal::paging::BOOTLOADER_RANGE_START);
    config.mappings.dynamic_range_end = Some(hal::paging::BOOTLOADER_RANGE_END);
    config.kernel_stack_size = 256 * 1024;
    config
};

// The kernel image sits in the range the bootloader's own mappings use.
const _: () = assert!(
    abi::types::KERNEL_BASE >= hal::paging::BOOTLOADER_RANGE_START
        && abi::types::KERNEL_BASE < hal::paging::BOOTLOADER_RANGE_END
);

/// What bring-up produced.
pub struct Boot {
    pub machine: hal::MachineInfo,
    pub cmdline: Cmdline,
}

/// Brings the cluster up and prints the boot banner.
pub fn init(boot_info: &'static mut BootInfo) -> Boot {
    let cmdline = Cmdline::from_firmware();
    let ramdisk = boot_info
        .ramdisk_addr
        .into_option()
        .map(|addr| (addr, boot_info.ramdisk_len));
    let machine = hal::init(boot_info);
    if let Some((addr, len)) = ramdisk {
        // SAFETY: the bootloader loaded the ramdisk at this address in our mappings and keeps
        // its frames out of the usable memory map, so nothing else ever writes there.
        ramdisk::init(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) });
    }
    process::with_table(|table| table.set_cluster(abi::ClusterId(machine.cluster as u16)));
    process::scheduler::init();
    process::fault::init();
    syscall::init();
    services::init();
    noc::init();
    if let Some(level) = cmdline
        .get("log")
        .and_then(|v| v.parse::<LevelFilter>().ok())
    {
        hal::logger::set_level(level);
    }
    if let Some(ms) = cmdline
        .get("quantum_ms")
        .and_then(|v| v.parse::<u64>().ok())
    {
        process::set_default_quantum_ns(ms.clamp(1, 10_000) * 1_000_000);
    }
    print_banner(&machine);
    if !cmdline.as_str().is_empty() {
        log::info!("command line: {}", cmdline.as_str());
    }
    if cmdline.get("hz").is_some() {
        log::warn!("`hz=` is gone: the kernel is tickless (see `quantum_ms=`)");
    }
    Boot { machine, cmdline }
}

/// Number of clusters in the machine (from the NoC; 1 without one).
pub fn cluster_count() -> u32 {
    hal::noc::cluster_count() as u32
}

/// Starts the programs named by `app=NAME` words on the command line.
pub fn start_apps(cmdline: &Cmdline) {
    for word in cmdline.words() {
        let Some(app) = word.strip_prefix("app=") else {
            continue;
        };
        // `app=NAME:ARG:ARG` passes arguments (the command line has no quoting).
        let mut parts = app.split(':');
        let name = parts.next().unwrap_or("");
        let args: alloc::vec::Vec<&str> = parts.collect();
        if let Err(error) = process::with_table(|t| t.spawn(name, &args, None)) {
            log::error!("cannot start `{name}`: {error:?}");
        }
    }
}

/// The boot banner: version, cluster, memory and timer.
pub fn print_banner(machine: &hal::MachineInfo) {
    let (heap_size, _) = hal::heap::stats();
    hal::println!(
        "Tessera {VERSION} microkernel - cluster {} of {} - {} MiB usable memory, {} frames free, heap {} KiB",
        machine.cluster,
        machine.cluster_count,
        machine.usable_memory >> 20,
        machine.free_frames,
        heap_size >> 10,
    );
    hal::println!(
        "  tickless timer ({}, local APIC {} kHz), TSC {} MHz, clock: {}, serial input: {}",
        if machine.tsc_deadline {
            "TSC deadline"
        } else {
            "one-shot"
        },
        machine.apic_timer_hz / 1000,
        machine.tsc_hz / 1_000_000,
        if machine.chip_time {
            "chip time"
        } else {
            "boot time (PIT)"
        },
        if machine.serial_irq {
            "interrupt"
        } else {
            "polled"
        },
    );
}
