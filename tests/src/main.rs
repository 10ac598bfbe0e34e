//! The test kernel: boots through the same `kernel::init` as the real kernel, then runs the
//! suite named by `suite=NAME` on the kernel command line.

#![no_std]
#![no_main]

extern crate alloc;

pub mod framework;
pub mod suites;

use bootloader_api::{entry_point, BootInfo};

entry_point!(test_main, config = &kernel::BOOTLOADER_CONFIG);

fn test_main(boot_info: &'static mut BootInfo) -> ! {
    let boot = kernel::init(boot_info);
    multikernel::init(&boot.cmdline);
    let name = boot.cmdline.get("suite").unwrap_or("core");
    match suites::SUITES.iter().find(|suite| suite.name == name) {
        Some(suite) => framework::run_suite(suite),
        None => {
            hal::println!("unknown suite `{name}`; known suites:");
            for suite in suites::SUITES {
                hal::println!("  {}", suite.name);
            }
            hal::power::exit_failure()
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    framework::panic(info)
}
