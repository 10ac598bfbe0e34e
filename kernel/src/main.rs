//! The production kernel image: bring the cluster up, power off if asked to, otherwise hand
//! the console to the kernel monitor.

#![no_std]
#![no_main]

use bootloader_api::{entry_point, BootInfo};

entry_point!(kernel_main, config = &kernel::BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let boot = kernel::init(boot_info);
    if boot.cmdline.has("poweroff") {
        hal::power::poweroff();
    }
    kernel::monitor::run(&boot)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::report(info)
}
