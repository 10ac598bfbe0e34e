//! The guest's side of the chip clock (`noc_proto::clock`): learn this cluster's TSC offset
//! to the host's with a few time-sync exchanges through the control block, keep the one with
//! the smallest round trip, and switch [`crate::clock`] to chip time.
//!
//! On a loaded host every exchange at boot may be slow (the router descheduled), leaving a
//! loose bound (measured once: 555 µs). Then [`refine_if_due`] tries again later, a few
//! times with growing pauses, and adopts a sample only if its round trip is smaller: a
//! bounded number of wake-ups, not a periodic one; a cluster whose bound is already tight
//! never wakes for it.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use noc_proto::clock::{best_sample, ChipClock, SyncSample};

use super::Device;
use crate::cpu::rdtsc;

/// Exchanges tried at most at boot.
const SAMPLES: usize = 24;
/// Stop early once this many samples are in and the best round trip is below [`GOOD_RTT_NS`].
const ENOUGH: usize = 6;
const GOOD_RTT_NS: u64 = 20_000;
/// Give up on one boot exchange after this long (the router may be descheduled).
const SAMPLE_TIMEOUT_NS: u64 = 50_000_000;
/// A bound (half the best round trip) this tight needs no refinement.
const TARGET_ERROR_NS: u64 = 20_000;
/// Refinement rounds at most; the first this long after boot, each pause twice the last up
/// to [`MAX_PAUSE_NS`].
const REFINE_ROUNDS: u64 = 16;
const FIRST_PAUSE_NS: u64 = 100_000_000;
const MAX_PAUSE_NS: u64 = 2_000_000_000;
/// Exchanges per refinement round, and how long one may take (a round runs inside a
/// scheduler pass, so it must stay short).
const REFINE_SAMPLES: usize = 8;
const REFINE_TIMEOUT_NS: u64 = 5_000_000;

/// The chip clock and the sample the clock runs on.
static BEST: spin::Mutex<Option<(ChipClock, SyncSample)>> = spin::Mutex::new(None);
/// When the next refinement round is due (0 = none).
static NEXT_REFINE_NS: AtomicU64 = AtomicU64::new(0);
static ROUNDS: AtomicU64 = AtomicU64::new(0);
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn ticks_for_ns(ns: u64, tsc_hz: u64) -> u64 {
    (ns as u128 * tsc_hz as u128 / 1_000_000_000) as u64
}

fn half_rtt_ns(sample: &SyncSample, tsc_hz: u64) -> u64 {
    (sample.rtt() as u128 * 500_000_000 / tsc_hz.max(1) as u128) as u64
}

/// Up to `count` exchanges (stopping early once [`ENOUGH`] are in and one is good), each
/// abandoned after `timeout_ns`. The guest spins meanwhile: the router does not ring back.
fn exchanges(device: &Device, chip: &ChipClock, count: usize, timeout_ns: u64) -> Vec<SyncSample> {
    let control = device.slice.control();
    let timeout = ticks_for_ns(timeout_ns, chip.tsc_hz);
    let good = ticks_for_ns(GOOD_RTT_NS, chip.tsc_hz);
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
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
    samples
}

/// Adopts `sample` if its round trip beats the current one's (both bounds contain the true
/// offset, so the tighter one is the better estimate); true if it did. A correction
/// backwards holds the clock still until it catches up ([`crate::clock::now_ns`] never goes
/// back).
fn adopt(device: &Device, chip: ChipClock, sample: SyncSample) -> bool {
    let mut best = BEST.lock();
    if best.is_some_and(|(_, current)| current.rtt() <= sample.rtt()) {
        return false;
    }
    *best = Some((chip, sample));
    device.slice.control().publish_time_sync(&sample);
    crate::clock::set_chip_time(chip.tsc_hz, sample.guest_tsc_at(chip.epoch_tsc));
    true
}

/// Runs the exchange and switches the clock to chip time. `None` (the clock stays
/// boot-relative) if the router publishes no chip clock or never answered.
pub(super) fn synchronise(device: &Device) -> Option<SyncSample> {
    let chip = device.slice.control().chip_clock()?;
    let samples = exchanges(device, &chip, SAMPLES, SAMPLE_TIMEOUT_NS);
    let best = best_sample(&samples)?;
    adopt(device, chip, best);
    let error = half_rtt_ns(&best, chip.tsc_hz);
    log::info!(
        "clock: chip time, host TSC {} kHz, error <= {error} ns (best round trip of {} exchanges)",
        chip.tsc_hz / 1000,
        samples.len()
    );
    if error > TARGET_ERROR_NS {
        NEXT_REFINE_NS.store(crate::clock::now_ns() + FIRST_PAUSE_NS, Ordering::SeqCst);
    }
    Some(best)
}

/// If the clock's bound is loose and a refinement round is due, runs one (a few exchanges,
/// milliseconds at most); otherwise registers when it is due with [`crate::timer::wake_by`].
/// Call from kernel context on every pass (`kernel::noc::pump` does).
pub fn refine_if_due() {
    let next = NEXT_REFINE_NS.load(Ordering::Relaxed);
    if next == 0 || !crate::timer::expired(next) {
        return; // nothing to refine, or not yet (the deadline is registered)
    }
    let (Some(device), Some((chip, _))) = (super::DEVICE.get(), *BEST.lock()) else {
        NEXT_REFINE_NS.store(0, Ordering::SeqCst);
        return;
    };
    let round = ROUNDS.fetch_add(1, Ordering::Relaxed) + 1;
    let samples = crate::cpu::without_interrupts(|| {
        exchanges(device, &chip, REFINE_SAMPLES, REFINE_TIMEOUT_NS)
    });
    if let Some(sample) = best_sample(&samples).filter(|s| adopt(device, chip, *s)) {
        log::info!(
            "clock: refined, error <= {} ns (round {round})",
            half_rtt_ns(&sample, chip.tsc_hz)
        );
    }
    let error = error_bound_ns().map_or(0, |(e, _)| e);
    if error <= TARGET_ERROR_NS || round >= REFINE_ROUNDS {
        NEXT_REFINE_NS.store(0, Ordering::SeqCst);
        return;
    }
    let due = crate::clock::now_ns() + (FIRST_PAUSE_NS << round.min(8)).min(MAX_PAUSE_NS);
    NEXT_REFINE_NS.store(due, Ordering::SeqCst);
    crate::timer::wake_by(due);
}

/// The time sync this cluster settled on: (half its round trip in ns = the bound on this
/// cluster's clock error, refinement rounds run). `None` without a chip clock.
pub fn error_bound_ns() -> Option<(u64, usize)> {
    let rounds = ROUNDS.load(Ordering::Relaxed) as usize;
    BEST.lock()
        .map(|(chip, best)| (half_rtt_ns(&best, chip.tsc_hz), rounds))
}
