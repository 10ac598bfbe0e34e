//! Ending a run: ACPI power-off for a normal shutdown, QEMU's `isa-debug-exit` device for
//! test verdicts.
//!
//! With `-device isa-debug-exit,iobase=0xf4,iosize=0x04`, writing `v` to port 0xf4 makes QEMU
//! exit with status `(v << 1) | 1`: [`EXIT_SUCCESS`] gives 33, [`EXIT_FAILURE`] gives 35. An
//! ACPI power-off makes QEMU exit with 0.

use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xF4;
/// Value written for success (QEMU exits with 33).
pub const EXIT_SUCCESS: u32 = 0x10;
/// Value written for failure (QEMU exits with 35).
pub const EXIT_FAILURE: u32 = 0x11;

fn debug_exit(code: u32) {
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit device; on a machine without it the write
    // is ignored.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code) };
}

/// Ends a test run successfully.
pub fn exit_success() -> ! {
    debug_exit(EXIT_SUCCESS);
    crate::cpu::halt_forever()
}

/// Ends the run with a failure status.
pub fn exit_failure() -> ! {
    debug_exit(EXIT_FAILURE);
    crate::cpu::halt_forever()
}

/// Powers the machine off through ACPI (QEMU exits with status 0).
pub fn poweroff() -> ! {
    log::info!("powering off");
    crate::acpi::enter_s5();
    // ACPI did not take: end with the debug-exit device rather than hang.
    log::error!("ACPI power-off failed; exiting through isa-debug-exit");
    exit_failure()
}
