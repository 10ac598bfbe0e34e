//! The scheduler: preemptive round robin over the ready threads of all processes.
//!
//! It runs on the boot stack, as a loop that enters one user thread at a time. A thread
//! leaves the CPU only from a trap: the kernel saves its registers into its UArea and
//! unwinds to the loop ([`hal::usermode::return_to_scheduler`]). Between two threads the loop
//! wakes sleepers and runs the kernel's idle work; with nothing to run it halts until the
//! next interrupt.
//!
//! The kernel is tickless ([`hal::timer`]): entering a thread arms the timer for the end of
//! its quantum, or for an earlier deadline registered during the pass (the earliest sleeper,
//! a kernel timeout), so a running thread never keeps kernel work waiting longer than a
//! quantum. An idle cluster halts with the timer armed for its earliest deadline only, or off.
//!
//! A process a migration throttles ([`super::throttle`]) is skipped while its pause runs; the
//! pass re-queues it when the pause ends, and the pause's end is one of those deadlines.

use abi::Tid;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use hal::trap::TrapFrame;
use uarea::{BlockReason, ThreadState};

use super::{context, with_table, Table};

/// Frame the CPU resumes from when entering a thread; lives until the thread's next trap.
static mut ENTRY_FRAME: TrapFrame = TrapFrame {
    r15: 0,
    r14: 0,
    r13: 0,
    r12: 0,
    r11: 0,
    r10: 0,
    r9: 0,
    r8: 0,
    rbp: 0,
    rdi: 0,
    rsi: 0,
    rdx: 0,
    rcx: 0,
    rbx: 0,
    rax: 0,
    vector: 0,
    error_code: 0,
    rip: 0,
    cs: 0,
    rflags: 0,
    rsp: 0,
    ss: 0,
};

/// When the current thread was entered (for its quantum and CPU time).
static SLICE_START_NS: AtomicU64 = AtomicU64::new(0);
/// When the current thread must come back to the loop: the end of its quantum, or an earlier
/// kernel deadline.
static PREEMPT_AT_NS: AtomicU64 = AtomicU64::new(0);

/// Kernel work run on every pass of the scheduler loop, between user threads: the NoC, the
/// multikernel daemons (migrations in flight). Installed once at boot.
static KERNEL_WORK: spin::Mutex<Option<fn()>> = spin::Mutex::new(None);

/// Installs the kernel work run on every pass of the scheduler loop.
pub fn set_kernel_work(work: fn()) {
    hal::cpu::without_interrupts(|| *KERNEL_WORK.lock() = Some(work));
}

/// Installs the scheduler's hooks into the HAL.
pub fn init() {
    hal::trap::set_return_to_user_hook(preemption_point);
}

impl Table {
    /// Picks the next ready thread, marks it running and returns the frame to enter it.
    fn pick_next(&mut self, now: u64) -> Option<(TrapFrame, u64)> {
        while let Some(pid) = self.ready.pop_front() {
            let Some(process) = self.processes.get_mut(&pid) else {
                continue;
            };
            if process.uarea.is_frozen() {
                continue; // re-queued when thawed
            }
            if !self.throttles.is_empty() && self.throttles.holds_back(pid, now) {
                continue; // re-queued when its pause ends
            }
            let queue = &mut process.uarea.sched.run_queue;
            if queue.is_empty() {
                continue;
            }
            let tid = queue.remove(0);
            let more = !queue.is_empty();
            let mut quantum = process.uarea.sched.quantum_ns;
            if !self.throttles.is_empty() {
                quantum = self.throttles.slice(pid, quantum);
            }
            let Some(thread) = process.uarea.thread_mut(tid) else {
                continue;
            };
            thread.state = ThreadState::Running;
            let frame = context::load(&thread.context);
            process.uarea.counters.context_switches += 1;
            process.space.activate();
            if more {
                self.ready.push_back(pid);
            }
            self.current = Some((pid, tid));
            return Some((frame, quantum));
        }
        None
    }

    /// Completes `sleep` for every thread whose deadline has passed, and registers the
    /// earliest remaining one with [`hal::timer::wake_by`].
    fn wake_sleepers(&mut self, now: u64) {
        let mut due: Vec<(abi::Pid, Tid)> = Vec::new();
        for (pid, process) in &self.processes {
            for thread in &process.uarea.threads {
                if let ThreadState::Blocked(BlockReason::Sleep { deadline_ns }) = thread.state {
                    if deadline_ns <= now {
                        due.push((*pid, thread.tid));
                    } else {
                        hal::timer::wake_by(deadline_ns);
                    }
                }
            }
        }
        for (pid, tid) in due {
            self.complete_blocked(pid, tid, Ok(0));
        }
    }

    /// True if some thread could run now.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

/// Runs user threads until `done()` is true, calling `idle()` whenever nothing is ready.
///
/// Call with nothing locked; returns with interrupts enabled.
pub fn run_until(mut done: impl FnMut() -> bool, mut idle: impl FnMut()) {
    loop {
        hal::cpu::disable_interrupts();
        let work = *KERNEL_WORK.lock();
        if let Some(work) = work {
            work();
        }
        if done() {
            hal::cpu::enable_interrupts();
            return;
        }
        let now = hal::clock::now_ns();
        let next = with_table(|table| {
            table.wake_sleepers(now);
            table.release_throttled(now);
            table.pick_next(now)
        });
        match next {
            Some((frame, quantum)) => {
                let start = hal::clock::now_ns();
                let preempt_at = start
                    .saturating_add(quantum)
                    .min(hal::timer::take_wake_by());
                SLICE_START_NS.store(start, Ordering::Relaxed);
                PREEMPT_AT_NS.store(preempt_at, Ordering::Relaxed);
                hal::timer::arm(preempt_at);
                // SAFETY: interrupts are off and only this loop writes ENTRY_FRAME; the frame
                // was built by `context::load` for ring 3 in the address space just activated.
                // It stays valid until the thread traps, which is the only way back here.
                unsafe {
                    let entry = core::ptr::addr_of_mut!(ENTRY_FRAME);
                    entry.write(frame);
                    hal::usermode::enter_user(entry);
                }
                // Back from a trap: the thread's state was saved by whoever left it. Its
                // address space stays loaded (an exiting process's space switches itself
                // away before it is freed), so a switch within one process costs no TLB flush.
            }
            None => {
                idle();
                // The idle work may have made a thread ready (the monitor spawning one).
                if !with_table(|table| table.has_ready()) {
                    hal::timer::halt();
                }
            }
        }
    }
}

/// How the current thread leaves the CPU.
pub enum Leave {
    /// Preempted or yielding: back to the end of the run queue.
    Ready,
    /// Waiting in a system call (its frame still points after the `syscall`).
    Blocked(BlockReason),
    /// The thread (or its whole process) is gone; nothing to save.
    Gone,
}

/// Saves the current thread from its trap frame and returns to the scheduler loop.
pub fn leave(frame: &TrapFrame, how: Leave) -> ! {
    with_table(|table| {
        let Some((pid, tid)) = table.current.take() else {
            return;
        };
        let now = hal::clock::now_ns();
        let elapsed = now.saturating_sub(SLICE_START_NS.load(Ordering::Relaxed));
        table.throttles.charge(pid, elapsed, now);
        let Some(process) = table.processes.get_mut(&pid) else {
            return;
        };
        process.uarea.counters.cpu_time_ns += elapsed;
        match how {
            Leave::Gone => {}
            Leave::Ready => {
                if let Some(thread) = process.uarea.thread_mut(tid) {
                    context::save(&mut thread.context, frame);
                }
                table.make_ready(pid, tid);
            }
            Leave::Blocked(reason) => {
                if let Some(thread) = process.uarea.thread_mut(tid) {
                    context::save(&mut thread.context, frame);
                    thread.state = ThreadState::Blocked(reason);
                }
            }
        }
    });
    // SAFETY: we are in a trap taken from ring 3 (every caller is a syscall, fault or
    // interrupt path of a user thread), the scheduler entered that thread, and no lock is held.
    unsafe { hal::usermode::return_to_scheduler() }
}

/// The HAL calls this before every return to ring 3: the preemption point.
///
/// At the end of a quantum (or at an earlier kernel deadline) the thread always goes back
/// through the scheduler loop, even if nothing else is ready: the loop is where sleepers wake
/// and the kernel's own work (the monitor, NoC daemons, migrations) runs, and a thread
/// spinning in user mode must not starve it.
fn preemption_point(frame: &mut TrapFrame) {
    if hal::clock::now_ns() >= PREEMPT_AT_NS.load(Ordering::Relaxed) {
        leave(frame, Leave::Ready);
    }
}

/// CPU time the current thread has used in its current slice.
pub fn current_slice_ns() -> u64 {
    hal::clock::now_ns().saturating_sub(SLICE_START_NS.load(Ordering::Relaxed))
}
