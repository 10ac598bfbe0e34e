//! Deadlines instead of a tick: the CPU sleeps until the next thing that must happen.
//!
//! There is no periodic timer interrupt. Code that polls a deadline says so with
//! [`wake_by`] ("the CPU must be awake again by this time") — or with [`expired`], which
//! checks a deadline and registers it if it has not passed. The registrations collected
//! during one pass of a polling loop are consumed by [`halt`], which arms the local APIC
//! timer for the earliest of them and halts until it or any other interrupt (NoC doorbell,
//! serial input) arrives; with none registered, the CPU halts with the timer off. Every pass
//! of a loop must register its deadlines again: a deadline not re-registered after a halt is
//! forgotten, which is what keeps a stale one from waking an idle cluster forever.
//!
//! The scheduler arms the timer itself with [`arm`] when it enters a user thread (the end of
//! its quantum, or an earlier registered deadline), so kernel work is never starved.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{apic, clock, cpu};

/// No deadline.
pub const NEVER: u64 = u64::MAX;

/// Earliest deadline registered since the last [`halt`] / [`take_wake_by`].
static WAKE_BY: AtomicU64 = AtomicU64::new(NEVER);
/// Deadline the hardware timer is armed for (NEVER = off).
static ARMED: AtomicU64 = AtomicU64::new(NEVER);
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);
static HALTS: AtomicU64 = AtomicU64::new(0);

/// The CPU must be awake again by `deadline_ns` (clock time, [`clock::now_ns`]).
pub fn wake_by(deadline_ns: u64) {
    WAKE_BY.fetch_min(deadline_ns, Ordering::SeqCst);
}

/// The CPU must be awake again within `ns` from now.
pub fn wake_after(ns: u64) {
    wake_by(clock::now_ns().saturating_add(ns));
}

/// True if `deadline_ns` has passed; otherwise registers it with [`wake_by`] and says false.
/// The one call for loops that poll a deadline: `while !expired(deadline) { ...; halt() }`.
pub fn expired(deadline_ns: u64) -> bool {
    if clock::now_ns() >= deadline_ns {
        return true;
    }
    wake_by(deadline_ns);
    false
}

/// Takes (and clears) the earliest registered deadline; [`NEVER`] if none.
pub fn take_wake_by() -> u64 {
    WAKE_BY.swap(NEVER, Ordering::SeqCst)
}

/// Arms the hardware timer to interrupt at `deadline_ns` (replacing any earlier arming);
/// [`NEVER`] turns it off.
pub fn arm(deadline_ns: u64) {
    ARMED.store(deadline_ns, Ordering::SeqCst);
    if deadline_ns == NEVER {
        apic::disarm();
    } else {
        apic::arm_at_tsc(clock::tsc_at_ns(deadline_ns));
    }
}

/// Halts until an interrupt, with the timer armed for the earliest deadline registered since
/// the last halt (consumed here). Returns at once if that deadline has already passed.
///
/// Check for pending work with interrupts **disabled**, then call this: the halt re-enables
/// them atomically (`sti; hlt`), so an interrupt arriving after the check still wakes the
/// CPU. Returns with interrupts enabled.
pub fn halt() {
    cpu::disable_interrupts();
    let deadline = take_wake_by();
    if deadline != NEVER && clock::now_ns() >= deadline {
        cpu::enable_interrupts();
        return;
    }
    arm(deadline);
    HALTS.fetch_add(1, Ordering::Relaxed);
    cpu::wait_for_interrupt();
}

/// Timer interrupts taken since boot.
pub fn interrupts() -> u64 {
    INTERRUPTS.load(Ordering::Relaxed)
}

/// Halts since boot.
pub fn halts() -> u64 {
    HALTS.load(Ordering::Relaxed)
}

/// The timer interrupt. One-shot mode may fire a little early (APIC ticks are coarser than
/// the TSC) or, for far deadlines, at the counter's limit: re-arm until the deadline passed.
pub(crate) fn interrupt() {
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    let armed = ARMED.load(Ordering::SeqCst);
    if armed == NEVER {
        return;
    }
    if clock::now_ns() >= armed {
        ARMED.store(NEVER, Ordering::SeqCst);
    } else {
        apic::arm_at_tsc(clock::tsc_at_ns(armed));
    }
}
