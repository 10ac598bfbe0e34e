//! Time: the timer tick count and a monotonic nanosecond clock.
//!
//! The clock reads the TSC scaled by its measured frequency; it never goes backwards (each
//! reading is at least the previous one), which tests and benchmarks rely on.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::cpu;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static LAST_NS: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static TICK_HOOK: spin::Mutex<Option<fn()>> = spin::Mutex::new(None);

/// Starts the clock at zero.
pub fn init(tsc_hz: u64) {
    TSC_AT_BOOT.store(cpu::rdtsc(), Ordering::SeqCst);
    TSC_HZ.store(tsc_hz.max(1), Ordering::SeqCst);
}

/// Nanoseconds since [`init`] (0 before it).
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let elapsed = cpu::rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    let ns = (elapsed as u128 * 1_000_000_000 / hz as u128) as u64;
    let previous = LAST_NS.fetch_max(ns, Ordering::Relaxed);
    ns.max(previous)
}

/// Measured TSC frequency in Hz.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Timer interrupts taken since the timer started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Installs a function run on every timer tick (the scheduler's preemption point).
pub fn set_tick_hook(hook: fn()) {
    cpu::without_interrupts(|| *TICK_HOOK.lock() = Some(hook));
}

/// Called by the timer interrupt.
pub(crate) fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    let hook = *TICK_HOOK.lock();
    if let Some(hook) = hook {
        hook();
    }
}

/// Busy-waits `ns` nanoseconds.
pub fn spin_for_ns(ns: u64) {
    let deadline = now_ns() + ns;
    while now_ns() < deadline {
        cpu::relax();
    }
}

/// Waits `ns` nanoseconds, halting between timer ticks (needs interrupts enabled).
pub fn sleep_ns(ns: u64) {
    let deadline = now_ns() + ns;
    while now_ns() < deadline {
        cpu::wait_for_interrupt();
    }
}
