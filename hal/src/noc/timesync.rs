//! The guest's side of the chip clock (`noc_proto::clock`): learn this cluster's TSC offset
//! to the host's with a few time-sync exchanges through the control block, keep the one with
//! the smallest round trip, and switch [`crate::clock`] to chip time.

use alloc::vec::Vec;
use noc_proto::clock::{best_sample, SyncSample};

use super::Device;
use crate::cpu::rdtsc;

/// Exchanges tried at most.
const SAMPLES: usize = 24;
/// Stop early once this many samples are in and the best round trip is below [`GOOD_RTT_NS`].
const ENOUGH: usize = 6;
const GOOD_RTT_NS: u64 = 20_000;
/// Give up on one exchange after this long (the router may be descheduled on a loaded host).
const SAMPLE_TIMEOUT_NS: u64 = 50_000_000;

static RESULT: spin::Once<(SyncSample, usize)> = spin::Once::new();

fn ticks_for_ns(ns: u64, tsc_hz: u64) -> u64 {
    (ns as u128 * tsc_hz as u128 / 1_000_000_000) as u64
}

/// Runs the exchange and switches the clock to chip time. `None` (the clock stays
/// boot-relative) if the router publishes no chip clock or never answered.
pub(super) fn synchronise(device: &Device) -> Option<SyncSample> {
    let control = device.slice.control();
    let chip = control.chip_clock()?;
    let timeout = ticks_for_ns(SAMPLE_TIMEOUT_NS, chip.tsc_hz);
    let good = ticks_for_ns(GOOD_RTT_NS, chip.tsc_hz);
    let mut samples = Vec::with_capacity(SAMPLES);
    for sequence in 1..=SAMPLES as u64 {
        let t0 = rdtsc();
        control.request_time_sync(sequence);
        super::ring_router(device);
        loop {
            if let Some(host) = control.time_sync_reply(sequence) {
                samples.push(SyncSample {
                    t0,
                    host,
                    t1: rdtsc(),
                });
                break;
            }
            if rdtsc().wrapping_sub(t0) > timeout {
                break; // a late reply carries an old sequence and is ignored
            }
            core::hint::spin_loop();
        }
        let best = best_sample(&samples);
        if samples.len() >= ENOUGH && best.is_some_and(|b| b.rtt() <= good) {
            break;
        }
    }
    let best = best_sample(&samples)?;
    control.publish_time_sync(&best);
    crate::clock::set_chip_time(chip.tsc_hz, best.guest_tsc_at(chip.epoch_tsc));
    RESULT.call_once(|| (best, samples.len()));
    log::info!(
        "clock: chip time, host TSC {} kHz, error <= {} ns (best round trip of {} exchanges)",
        chip.tsc_hz / 1000,
        best.rtt() as u128 * 500_000_000 / chip.tsc_hz as u128,
        samples.len()
    );
    Some(best)
}

/// The time sync this cluster settled on: (half its round trip in ns = the bound on this
/// cluster's clock error, exchanges made). `None` without a chip clock.
pub fn error_bound_ns() -> Option<(u64, usize)> {
    RESULT.get().map(|(best, n)| {
        let hz = crate::clock::tsc_hz().max(1) as u128;
        ((best.rtt() as u128 * 500_000_000 / hz) as u64, *n)
    })
}
