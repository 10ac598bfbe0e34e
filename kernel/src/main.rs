//! The production kernel image: bring the cluster up, power off if asked to, start the
//! programs named on the command line, then schedule forever with the kernel monitor polled
//! whenever the CPU is idle.

#![no_std]
#![no_main]

use bootloader_api::{entry_point, BootInfo};

entry_point!(kernel_main, config = &kernel::BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let boot = kernel::init(boot_info);
    if boot.cmdline.has("poweroff") {
        hal::power::poweroff();
    }
    kernel::start_apps(&boot.cmdline);
    let mut monitor = kernel::monitor::Monitor::new();
    kernel::process::scheduler::run_until(
        || false,
        || {
            kernel::noc::pump();
            kernel::noc::greeting::poll();
            monitor.poll(&boot);
        },
    );
    unreachable!("the scheduler loop never ends")
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::report(info)
}
