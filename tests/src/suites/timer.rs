//! The timer and the clock. Bounds are deliberately loose: a loaded two-core host can stall a
//! TCG guest, so the tests check direction and rough magnitude, not precision.

use alloc::string::String;

use crate::{ensure, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    timer_fires_for_a_deadline,
    no_periodic_tick,
    clock_is_monotonic,
    sleep_lasts_at_least_requested,
    calibration_is_plausible
];

fn timer_fires_for_a_deadline() -> Result<(), String> {
    let before = hal::clock::ticks();
    hal::clock::sleep_ns(30_000_000);
    let after = hal::clock::ticks();
    ensure!(
        after > before,
        "no timer interrupt for a 30 ms deadline ({before} -> {after})"
    );
    Ok(())
}

/// Tickless: halting 100 ms towards one deadline takes a handful of timer interrupts (the
/// deadline, and in one-shot mode a re-arm or two), not the 100 of a 1 kHz tick.
fn no_periodic_tick() -> Result<(), String> {
    let before = hal::clock::ticks();
    let deadline = hal::clock::now_ns() + 100_000_000;
    while !hal::timer::expired(deadline) {
        hal::timer::halt();
    }
    let taken = hal::clock::ticks() - before;
    ensure!(
        (1..=10).contains(&taken),
        "{taken} timer interrupts in 100 ms of idling"
    );
    Ok(())
}

fn clock_is_monotonic() -> Result<(), String> {
    let mut previous = hal::clock::now_ns();
    let start = previous;
    for _ in 0..100_000 {
        let now = hal::clock::now_ns();
        ensure!(now >= previous, "clock went back: {previous} -> {now}");
        previous = now;
    }
    ensure!(previous > start, "clock did not advance over 100k reads");
    Ok(())
}

fn sleep_lasts_at_least_requested() -> Result<(), String> {
    let start = hal::clock::now_ns();
    hal::clock::sleep_ns(20_000_000);
    let elapsed = hal::clock::now_ns() - start;
    ensure!(elapsed >= 20_000_000, "slept only {elapsed} ns");
    ensure!(elapsed < 20_000_000_000, "slept {elapsed} ns for 20 ms");
    Ok(())
}

fn calibration_is_plausible() -> Result<(), String> {
    let tsc = hal::clock::tsc_hz();
    ensure!(
        (10_000_000..100_000_000_000).contains(&tsc),
        "TSC calibrated at {tsc} Hz"
    );
    Ok(())
}
