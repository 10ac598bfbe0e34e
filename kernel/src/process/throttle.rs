//! CPU throttles: pre-copy's answer to a process that writes its memory faster than the link
//! carries it away (QEMU's auto-converge). Slowing the process slows its dirty rate, so the
//! rounds can catch up and the final stop copies less.
//!
//! A process throttled at `P` % runs at most `100 − P` % of the time: each time one of its
//! threads leaves the CPU after running `t` (a slice of at most [`SLICE_NS`] while it is
//! throttled), the process is held back for `t × P / (100 − P)`.
//! Held back, it is dropped from the ready queue when the scheduler meets it ("parked"), and
//! the scheduler's pass puts it back once the pause is over — with the pause's end registered
//! as a wake-up ([`hal::timer::wake_by`]), so a cluster with nothing else to run does not
//! sleep past it. Its threads stay `Ready` and nothing in its UArea changes: a throttle is
//! kernel-local, never part of the image, and ends with the migration that set it (or when
//! the process ends or leaves).
//!
//! Only the migration daemon sets one ([`MayThrottle`]), for the process it is moving, so
//! the table holds at most one entry per migration in flight; each scheduling decision looks
//! up one entry.

use abi::Pid;
use alloc::collections::{BTreeMap, VecDeque};

use super::Table;

/// The most a process can be throttled (it keeps 1 % of the CPU).
pub const MAX_PCT: u32 = abi::MigrateOptions::MAX_THROTTLE_PCT;
/// The longest slice a throttled process gets. A pre-copy round over the NoC takes a few
/// milliseconds, less than a quantum: with whole quanta a process at 99 % would still write
/// for 10 ms in one round and not at all in the next; short slices spread its share evenly.
pub const SLICE_NS: u64 = 1_000_000;

/// The capability to throttle a process (Tock-style: only code that promises the rule below
/// can name one). The multikernel's pre-copy implements it; nothing reachable from a system
/// call or the NoC does.
///
/// # Safety
///
/// An implementor sets throttles only on the process it is migrating from this cluster, and
/// lifts each one when that migration ends, fails or is dropped. (A throttle outliving its
/// reason is not memory-unsafe, but it would starve a process with no way out for its owner.)
pub unsafe trait MayThrottle {}

/// One throttled process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Throttle {
    /// Per cent of the CPU taken away (1..=MAX_PCT).
    pct: u32,
    /// It is not picked before this time.
    paused_until_ns: u64,
    /// The scheduler dropped it from the ready queue while it was paused.
    parked: bool,
}

/// Every throttled process of this cluster.
#[derive(Debug, Default)]
pub struct Throttles {
    by_pid: BTreeMap<Pid, Throttle>,
}

impl Throttles {
    pub const fn new() -> Throttles {
        Throttles {
            by_pid: BTreeMap::new(),
        }
    }

    /// How much `pid` is throttled (0: not at all).
    pub fn pct(&self, pid: Pid) -> u32 {
        self.by_pid.get(&pid).map_or(0, |t| t.pct)
    }

    /// Processes throttled now.
    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    /// True if `pid` may not run at `now`; it is then parked, to be re-queued by
    /// [`Throttles::release`]. The scheduler asks this of every process it takes off the
    /// ready queue.
    pub(super) fn holds_back(&mut self, pid: Pid, now: u64) -> bool {
        match self.by_pid.get_mut(&pid) {
            Some(t) if t.paused_until_ns > now => {
                t.parked = true;
                true
            }
            _ => false,
        }
    }

    /// The slice `pid` gets when its quantum is `quantum_ns` (at most [`SLICE_NS`] if it is
    /// throttled).
    pub(super) fn slice(&self, pid: Pid, quantum_ns: u64) -> u64 {
        if self.by_pid.contains_key(&pid) {
            quantum_ns.min(SLICE_NS)
        } else {
            quantum_ns
        }
    }

    /// `pid` ran `ran_ns` up to `now`: it pauses for its share.
    pub(super) fn charge(&mut self, pid: Pid, ran_ns: u64, now: u64) {
        if let Some(t) = self.by_pid.get_mut(&pid) {
            let pause = pause_for(ran_ns, t.pct);
            t.paused_until_ns = t.paused_until_ns.max(now).saturating_add(pause);
        }
    }

    /// Takes out the parked processes whose pause is over (the caller re-queues them), and
    /// registers the end of every pause still running as a wake-up.
    fn due(&mut self, now: u64) -> VecDeque<Pid> {
        let mut due = VecDeque::new();
        for (pid, t) in &mut self.by_pid {
            if t.paused_until_ns > now {
                hal::timer::wake_by(t.paused_until_ns);
            } else if t.parked {
                t.parked = false;
                due.push_back(*pid);
            }
        }
        due
    }
}

/// The pause after running `ran_ns` at `pct` % throttle: `ran × pct / (100 − pct)`.
pub fn pause_for(ran_ns: u64, pct: u32) -> u64 {
    let pct = pct.min(MAX_PCT) as u128;
    (ran_ns as u128 * pct / (100 - pct)).min(u64::MAX as u128) as u64
}

impl Table {
    /// Throttles `pid` at `pct` % of the CPU (clamped to [`MAX_PCT`]; 0 lifts it), for the
    /// migration daemon that moves it (`_by`). False if there is no such live process here.
    pub fn set_throttle(&mut self, _by: &impl MayThrottle, pid: Pid, pct: u32) -> bool {
        if pct == 0 {
            self.lift_throttle(pid);
            return self.is_alive(pid);
        }
        if !self.is_alive(pid) {
            return false;
        }
        let pct = pct.min(MAX_PCT);
        self.throttles
            .by_pid
            .entry(pid)
            .and_modify(|t| t.pct = pct)
            .or_insert(Throttle {
                pct,
                paused_until_ns: 0,
                parked: false,
            });
        true
    }

    /// Ends `pid`'s throttle, if it has one; a parked process is ready again at once.
    pub fn lift_throttle(&mut self, pid: Pid) {
        if let Some(t) = self.throttles.by_pid.remove(&pid) {
            if t.parked {
                self.requeue(pid);
            }
        }
    }

    /// The throttled processes, for tests and the monitor.
    pub fn throttles(&self) -> &Throttles {
        &self.throttles
    }

    /// The scheduler's pass: processes whose pause ended go back on the ready queue; the
    /// throttles of processes that ended or left are dropped.
    pub(super) fn release_throttled(&mut self, now: u64) {
        if self.throttles.is_empty() {
            return;
        }
        let processes = &self.processes;
        self.throttles.by_pid.retain(|pid, _| {
            processes
                .get(pid)
                .is_some_and(|p| p.uarea.exit.exit_code.is_none())
        });
        for pid in self.throttles.due(now) {
            self.requeue(pid);
        }
    }

    /// Back on the ready queue if it has a ready thread and is not frozen (thawing re-queues).
    fn requeue(&mut self, pid: Pid) {
        let Some(process) = self.processes.get(&pid) else {
            return;
        };
        if process.uarea.sched.run_queue.is_empty() || process.uarea.is_frozen() {
            return;
        }
        if !self.ready.contains(&pid) {
            self.ready.push_back(pid);
        }
    }
}
