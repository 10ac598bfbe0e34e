//! What a kernel panic looks like: a readable report on the console and a failure exit, so a
//! test run or `cargo xtask run` ends with a verdict instead of a hang.

use core::panic::PanicInfo;

/// Prints the panic report and ends the run with a failure status.
pub fn report(info: &PanicInfo) -> ! {
    hal::cpu::disable_interrupts();
    // SAFETY: we never return to the panicking code, so a console lock it held is dead.
    unsafe { hal::serial::force_unlock() };
    hal::println!();
    hal::println!(
        "!!! KERNEL PANIC on cluster {}: {}",
        hal::logger::cluster(),
        info.message()
    );
    if let Some(location) = info.location() {
        hal::println!(
            "    at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    hal::power::exit_failure()
}
