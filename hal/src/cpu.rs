//! Small CPU operations the kernel needs without naming instructions.

use x86_64::instructions::{hlt, interrupts};

/// Enables maskable interrupts.
pub fn enable_interrupts() {
    interrupts::enable();
}

/// Disables maskable interrupts.
pub fn disable_interrupts() {
    interrupts::disable();
}

/// True if maskable interrupts are enabled.
pub fn interrupts_enabled() -> bool {
    interrupts::are_enabled()
}

/// Runs `f` with interrupts disabled, restoring the previous state afterwards.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    interrupts::without_interrupts(f)
}

/// Sleeps until the next interrupt.
pub fn wait_for_interrupt() {
    interrupts::enable_and_hlt();
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    interrupts::disable();
    loop {
        hlt();
    }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Hint for spin-wait loops.
pub fn relax() {
    core::hint::spin_loop();
}

/// Raises a breakpoint exception (#BP), which the trap handler reports and resumes from.
pub fn breakpoint() {
    x86_64::instructions::interrupts::int3();
}
