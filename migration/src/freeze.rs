//! Stopping a process at a consistent point, and letting it go again.
//!
//! Only a process that is not on the CPU can be frozen: the kernel is not preemptible, so the
//! scheduler loop (where migrations are driven) always sees every thread either in user mode
//! with its registers saved, or blocked in a system call. Blocked threads are rewound to the
//! `syscall` instruction with their arguments intact (a `sleep` keeps only its remaining
//! time) and become ready, so after restore they simply issue the call again; nothing is lost
//! or done twice, because a blocked call has not had its effect yet.
//!
//! Three blocked calls are exceptions. A `mailbox_write` whose message has left and awaits
//! its answer (`kernel::acceptance`) has had its effect, so it stays blocked, and its answer
//! follows the process. A thread in its own process's `migrate` (`BlockReason::Migrating`)
//! stays blocked: the call's answer depends on the outcome, so the copy that travels answers
//! it 0 (`crate::snapshot`) and the source the error. A thread in a `portal_write` the DMA
//! engine is carrying out (`PortalDma`) has had its effect half-way: such a process is not
//! frozen at all until the write ended ([`write_in_flight`]; the migration daemon waits for
//! it), so a write is never re-issued nor lost.

use abi::Pid;
use kernel::process::Table;
use uarea::{BlockReason, ThreadState, UAreaFlags};

use crate::MigrationError;

/// Freezes `pid`: no thread of it runs until [`thaw`] or until it is removed.
pub fn freeze(table: &mut Table, pid: Pid) -> Result<(), MigrationError> {
    if !table.is_alive(pid) {
        return Err(MigrationError::NoSuchProcess);
    }
    if table.current.is_some_and(|(p, _)| p == pid) {
        // Only happens if called from inside one of the process's own system calls.
        return Err(MigrationError::AlreadyFrozen);
    }
    if write_in_flight(table, pid) {
        return Err(MigrationError::WriteInFlight);
    }
    table.flush_console(pid);
    let now = hal::clock::now_ns();
    let process = table
        .processes
        .get_mut(&pid)
        .ok_or(MigrationError::NoSuchProcess)?;
    let uarea = &mut process.uarea;
    if uarea.is_frozen() {
        return Err(MigrationError::AlreadyFrozen);
    }
    let mut rewound = alloc::vec::Vec::new();
    for thread in &mut uarea.threads {
        if kernel::acceptance::awaits_answer(thread) {
            continue;
        }
        if let ThreadState::Blocked(BlockReason::Migrating { .. }) = thread.state {
            continue; // answered by the outcome (see the module docs)
        }
        if let ThreadState::Blocked(reason) = thread.state {
            thread.context.rip -= abi::conv::SYSCALL_INSN_LEN;
            if let BlockReason::Sleep { deadline_ns } = reason {
                thread.context.rdi = deadline_ns.saturating_sub(now);
            }
            thread.state = ThreadState::Ready;
            thread.restart_syscall = true;
            rewound.push(thread.tid);
        }
    }
    uarea.sched.run_queue.extend(rewound.iter().copied());
    uarea.exit.joiners.retain(|j| !rewound.contains(&j.waiter));
    uarea.header.flags.set(UAreaFlags::FROZEN, true);
    table.ready.retain(|p| *p != pid);
    Ok(())
}

/// True while a thread of `pid` waits for a portal write the DMA engine has not finished:
/// [`freeze`] refuses such a process (`WriteInFlight`), the daemon tries again later.
pub fn write_in_flight(table: &Table, pid: Pid) -> bool {
    kernel::userdma::write_in_flight(table, pid)
}

/// Lets a frozen process run again where it is (a migration failed, or it was a checkpoint).
pub fn thaw(table: &mut Table, pid: Pid) {
    let Some(process) = table.processes.get_mut(&pid) else {
        return;
    };
    process.uarea.header.flags.set(UAreaFlags::FROZEN, false);
    for thread in &mut process.uarea.threads {
        thread.restart_syscall = false;
    }
    if !process.uarea.sched.run_queue.is_empty() && !table.ready.contains(&pid) {
        table.ready.push_back(pid);
    }
}
