//! The router's side of the chip clock ([`noc_proto::clock`]): measure the host TSC rate once
//! at start, publish it with the chip epoch in every slice, and answer guests' time-sync
//! requests with the host TSC.

use std::time::Duration;

use noc_proto::clock::ChipClock;
use noc_proto::ControlBlock;

/// How long the TSC is measured against `CLOCK_MONOTONIC_RAW` at start.
pub const MEASURE: Duration = Duration::from_millis(120);

/// The host's time-stamp counter (the same counter every guest's TSC follows under TCG).
pub fn host_tsc() -> u64 {
    // SAFETY: RDTSC has no side effects and exists on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn monotonic_raw_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC_RAW always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One (TSC, ns) pair read as close together as the host allows: the clock read bracketed by
/// two TSC reads, best of a few tries (a preemption inside the bracket shows as a wide one).
fn paired_reading() -> (u64, u64) {
    (0..16)
        .map(|_| {
            let before = host_tsc();
            let ns = monotonic_raw_ns();
            let after = host_tsc();
            (after - before, before + (after - before) / 2, ns)
        })
        .min_by_key(|(width, _, _)| *width)
        .map(|(_, tsc, ns)| (tsc, ns))
        .unwrap_or((host_tsc(), monotonic_raw_ns()))
}

/// Measures the host TSC rate over `interval` (sleeping, so the guests can start meanwhile)
/// and sets chip time 0 at the start of the measurement.
pub fn measure(interval: Duration) -> ChipClock {
    let (tsc0, ns0) = paired_reading();
    std::thread::sleep(interval);
    let (tsc1, ns1) = paired_reading();
    let elapsed_ns = (ns1 - ns0).max(1);
    ChipClock {
        tsc_hz: ((tsc1 - tsc0) as u128 * 1_000_000_000 / elapsed_ns as u128) as u64,
        epoch_tsc: tsc0,
    }
}

/// Answers a pending time-sync request in `control`, if any.
pub fn serve(control: &ControlBlock) -> bool {
    control.serve_time_sync(host_tsc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_rate_is_plausible_and_now_is_after_the_epoch() {
        let clock = measure(Duration::from_millis(100));
        assert!(
            (100_000_000..20_000_000_000).contains(&clock.tsc_hz),
            "{clock:?}"
        );
        let ns = clock.ns_at(host_tsc());
        assert!((100_000_000..10_000_000_000).contains(&ns), "{ns}");
    }
}
