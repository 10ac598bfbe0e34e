//! The cluster image: the microkernel, the multikernel daemons and migration. Bring the
//! cluster up, power off if asked to, start the programs named on the command line, then
//! schedule forever, with the daemons stepped on every pass and the kernel monitor polled
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
    kernel::monitor::init(boot.machine);
    multikernel::init(&boot.cmdline);
    kernel::start_apps(&boot.cmdline);
    kernel::process::scheduler::run_until(
        || false,
        || {
            kernel::noc::greeting::poll();
        },
    );
    unreachable!("the scheduler loop never ends")
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::panic::report(info)
}
