//! Clocks and sleeping.

use abi::{ClockId, Syscall};

use crate::raw::call;

/// Nanoseconds of the monotonic clock.
pub fn now_ns() -> u64 {
    call(Syscall::ClockNs, &[ClockId::Monotonic as u64]).unwrap_or(0) as u64
}

/// CPU time this process has used, in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    call(Syscall::ClockNs, &[ClockId::ProcessCpu as u64]).unwrap_or(0) as u64
}

/// Blocks for at least `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    let _ = call(Syscall::Sleep, &[ns]);
}

/// Blocks for at least `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    sleep_ns(ms.saturating_mul(1_000_000));
}

/// Gives up the rest of this thread's quantum.
pub fn yield_now() {
    let _ = call(Syscall::Yield, &[]);
}
