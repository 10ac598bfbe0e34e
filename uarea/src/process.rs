//! Process-wide scheduling, exit/join state and counters.

use alloc::vec::Vec;

use abi::{ClusterId, Pid, Tid};
use serde::{Deserialize, Serialize};

/// The process's share of the scheduler: its own run queue and parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sched {
    /// `Ready` threads in the order they will run; exactly the `Ready` threads.
    pub run_queue: Vec<Tid>,
    /// Priority, 0 = highest.
    pub priority: u8,
    /// Time slice in nanoseconds (non-zero).
    pub quantum_ns: u64,
}

impl Default for Sched {
    fn default() -> Self {
        Sched {
            run_queue: Vec::new(),
            priority: Sched::DEFAULT_PRIORITY,
            quantum_ns: Sched::DEFAULT_QUANTUM_NS,
        }
    }
}

impl Sched {
    /// Default priority.
    pub const DEFAULT_PRIORITY: u8 = 8;
    /// Default time slice: 10 ms.
    pub const DEFAULT_QUANTUM_NS: u64 = 10_000_000;
}

/// A thread waiting in `thread_join` for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joiner {
    /// The joining thread.
    pub waiter: Tid,
    /// The thread it waits for.
    pub target: Tid,
}

/// Exit and join state. Thread return values live in
/// [`crate::ThreadState::Exited`].
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExitState {
    /// The code passed to `exit`, once called (then `EXITING` is set).
    pub exit_code: Option<i32>,
    /// Pending joins (each waiter at most once).
    pub joiners: Vec<Joiner>,
    /// The children not yet reaped, wherever they live: the process tree travels with the
    /// parent, so `wait` and `kill` work on whichever cluster it runs.
    pub children: Vec<Child>,
}

/// One child of the process, not yet reaped by `wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// The child's pid.
    pub pid: Pid,
    /// Where it lives, as last reported (its spawn, then each migration's commit).
    pub cluster: ClusterId,
    /// Migrations of the child behind `cluster`: a report older than the one applied is
    /// ignored (reports can overtake each other on the NoC).
    pub moves: u32,
    /// Its exit code, once its exit reached the parent.
    pub exit_code: Option<i32>,
}

/// Per-process statistics, carried across migrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Syscalls made.
    pub syscalls: u64,
    /// Page faults taken.
    pub page_faults: u64,
    /// Context switches into the process's threads.
    pub context_switches: u64,
    /// Completed migrations.
    pub migrations: u64,
    /// CPU time consumed, nanoseconds.
    pub cpu_time_ns: u64,
}
