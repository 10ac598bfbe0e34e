//! Time: a monotonic nanosecond clock, the same on every cluster of the chip.
//!
//! The clock reads the TSC scaled by its frequency. At boot it counts from 0 with the
//! frequency measured against the PIT. With a NoC, [`crate::noc`] then switches it to **chip
//! time**: nanoseconds since the chip epoch, from the host TSC rate the router measured and
//! this cluster's TSC offset to the host's (see `noc_proto::clock`). Under TCG every guest
//! TSC is the host TSC plus a constant, so chip time cannot drift between clusters; they
//! agree to within their time-sync error (half the best round trip, tens of µs). Readings
//! never go backwards (each is at least the previous one), including across the switch.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::cpu;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// The TSC value at clock time 0 (wrapping: with chip time it predates this VM's TSC).
static TSC_AT_ZERO: AtomicU64 = AtomicU64::new(0);
static LAST_NS: AtomicU64 = AtomicU64::new(0);
static CHIP_TIME: AtomicBool = AtomicBool::new(false);

/// Starts the clock at zero, counting at `tsc_hz` (the PIT calibration).
pub fn init(tsc_hz: u64) {
    TSC_AT_ZERO.store(cpu::rdtsc(), Ordering::SeqCst);
    TSC_HZ.store(tsc_hz.max(1), Ordering::SeqCst);
}

/// Switches to chip time: `tsc_at_zero` is this CPU's TSC at the chip epoch and `tsc_hz`
/// the host TSC rate. Later readings stay at or above every earlier one.
pub(crate) fn set_chip_time(tsc_hz: u64, tsc_at_zero: u64) {
    crate::cpu::without_interrupts(|| {
        TSC_HZ.store(tsc_hz.max(1), Ordering::SeqCst);
        TSC_AT_ZERO.store(tsc_at_zero, Ordering::SeqCst);
        CHIP_TIME.store(true, Ordering::SeqCst);
    });
}

/// True once the clock reads chip time (false without a NoC: boot-relative time).
pub fn is_chip_time() -> bool {
    CHIP_TIME.load(Ordering::Relaxed)
}

/// TSC ticks since clock time 0 at TSC value `tsc` (0 for a TSC before it).
fn ticks_at(tsc: u64) -> u64 {
    let ticks = tsc.wrapping_sub(TSC_AT_ZERO.load(Ordering::Relaxed));
    if ticks > u64::MAX / 2 {
        0
    } else {
        ticks
    }
}

/// Nanoseconds of clock time (0 before [`init`]): chip time once synchronised.
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let ns = (ticks_at(cpu::rdtsc()) as u128 * 1_000_000_000 / hz as u128) as u64;
    let previous = LAST_NS.fetch_max(ns, Ordering::Relaxed);
    ns.max(previous)
}

/// The TSC value at clock time `ns` (for arming the timer).
pub(crate) fn tsc_at_ns(ns: u64) -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed) as u128;
    let ticks = (ns as u128 * hz / 1_000_000_000).min(u64::MAX as u128 / 2) as u64;
    TSC_AT_ZERO.load(Ordering::Relaxed).wrapping_add(ticks)
}

/// TSC frequency in Hz (the chip's once synchronised, else the PIT calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Timer interrupts taken since boot (tickless: one per deadline, not a rate).
pub fn ticks() -> u64 {
    crate::timer::interrupts()
}

/// Busy-waits `ns` nanoseconds.
pub fn spin_for_ns(ns: u64) {
    let deadline = now_ns() + ns;
    while now_ns() < deadline {
        cpu::relax();
    }
}

/// Waits `ns` nanoseconds, halting until the deadline (or another interrupt) in between.
/// Returns with interrupts enabled.
pub fn sleep_ns(ns: u64) {
    let deadline = now_ns() + ns;
    while !crate::timer::expired(deadline) {
        crate::timer::halt();
    }
    cpu::enable_interrupts();
}
