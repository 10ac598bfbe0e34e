//! The Tessera microkernel, one instance per cluster.
//!
//! This crate is a library so that the production kernel (`src/main.rs`) and the in-kernel
//! test kernel (`tests/`) share exactly the same bring-up path: what the tests exercise is
//! what boots.

#![no_std]

extern crate alloc;

pub mod cmdline;
pub mod monitor;
pub mod panic;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::BootInfo;
use log::LevelFilter;

pub use cmdline::Cmdline;

/// Kernel version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the bootloader must lay the machine out for us: all physical memory mapped, every
/// bootloader mapping in the upper half (the lower half belongs to user processes), and a
/// kernel stack big enough for deep call chains (it has a guard page below it).
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.dynamic_range_start = Some(hal::paging::BOOTLOADER_RANGE_START);
    config.mappings.dynamic_range_end = Some(hal::paging::BOOTLOADER_RANGE_END);
    config.kernel_stack_size = 256 * 1024;
    config
};

/// What bring-up produced.
pub struct Boot {
    pub machine: hal::MachineInfo,
    pub cmdline: Cmdline,
}

/// Brings the cluster up and prints the boot banner.
pub fn init(boot_info: &'static mut BootInfo) -> Boot {
    let cmdline = Cmdline::from_firmware();
    let mut options = hal::Options::default();
    if let Some(hz) = cmdline.get("hz").and_then(|v| v.parse().ok()) {
        options.timer_hz = hz;
    }
    let machine = hal::init(boot_info, &options);
    if let Some(level) = cmdline
        .get("log")
        .and_then(|v| v.parse::<LevelFilter>().ok())
    {
        hal::logger::set_level(level);
    }
    print_banner(&machine);
    if !cmdline.as_str().is_empty() {
        log::info!("command line: {}", cmdline.as_str());
    }
    Boot { machine, cmdline }
}

/// The boot banner: version, cluster, memory and timer.
pub fn print_banner(machine: &hal::MachineInfo) {
    let (heap_size, _) = hal::heap::stats();
    hal::println!(
        "Tessera {VERSION} microkernel - cluster {} - {} MiB usable memory, {} frames free, heap {} KiB",
        machine.cluster,
        machine.usable_memory >> 20,
        machine.free_frames,
        heap_size >> 10,
    );
    hal::println!(
        "  timer {} Hz (local APIC {} kHz), TSC {} MHz",
        machine.timer_hz,
        machine.apic_timer_hz / 1000,
        machine.tsc_hz / 1_000_000,
    );
}
