//! Thread calls: create, join, exit, sleep, and the futex pair user space builds locks on.

use abi::{Errno, Tid};
use uarea::{
    Backing, BlockReason, Context, Joiner, Perms, Segment, SegmentKind, StackExtent, ThreadState,
};

use super::{Call, Outcome};
use crate::process::memory::{self, PAGE, STACK_GUARD};
use crate::process::Table;

/// Largest thread stack `thread_create` accepts.
pub const STACK_MAX: u64 = 64 << 20;

pub fn create(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let [entry, arg, stack_size, ..] = call.args;
    let size = match stack_size {
        0 => abi::types::DEFAULT_THREAD_STACK as u64,
        n if n > STACK_MAX => return Err(Errno::EINVAL),
        n => n.next_multiple_of(PAGE),
    };
    let process = call.process(table)?;
    let uarea = &mut process.uarea;
    let executable = uarea
        .memory
        .segment_at(entry)
        .is_some_and(|s| s.perms.contains(Perms::X));
    if !executable {
        return Err(Errno::EFAULT);
    }
    // `next_tid` below the limit: the tid after this one still fits (tids are never reused).
    if uarea.threads.len() >= uarea::MAX_THREADS
        || uarea.memory.segments.len() >= uarea::MAX_SEGMENTS
        || uarea.next_tid.0.checked_add(1).is_none()
    {
        return Err(Errno::EAGAIN);
    }
    let base = memory::place_stack(&uarea.memory, size).ok_or(Errno::ENOMEM)?;
    let stack = StackExtent {
        base,
        size,
        guard: STACK_GUARD,
    };
    uarea.memory.insert(Segment {
        start: base,
        len: size,
        perms: Perms::RW,
        kind: SegmentKind::Stack,
        backing: Backing::Anonymous,
    });
    // A zero return address on top: the entry function must end with `thread_exit`.
    let rsp = stack.top() - 8;
    if let Err(error) =
        memory::copy_to_user(&mut process.space, &uarea.memory, rsp, &0u64.to_le_bytes())
    {
        release_stack(table, call, stack);
        return Err(error);
    }
    let tid = uarea.add_thread(Context::new_user(entry, arg, rsp), stack);
    table.make_ready(call.pid, tid);
    Ok(tid.0 as usize)
}

fn release_stack(table: &mut Table, call: &Call, stack: StackExtent) {
    if let Ok(process) = call.process(table) {
        process
            .uarea
            .memory
            .segments
            .retain(|s| !(s.kind == SegmentKind::Stack && s.start == stack.base));
        memory::release_pages(&mut process.space, stack.base, stack.size);
    }
}

pub fn join(table: &mut Table, call: &Call) -> Outcome {
    let target = Tid(call.args[0] as u32);
    if call.args[0] > u32::MAX as u64 || target == call.tid {
        return Outcome::Return(Err(Errno::EINVAL));
    }
    let process = match call.process(table) {
        Ok(process) => process,
        Err(errno) => return Outcome::Return(Err(errno)),
    };
    let uarea = &mut process.uarea;
    let Some(thread) = uarea.thread(target) else {
        return Outcome::Return(Err(Errno::ESRCH));
    };
    match thread.state {
        ThreadState::Exited { code } => {
            let stack = thread.stack;
            uarea.threads.retain(|t| t.tid != target);
            uarea.thread_count = uarea.threads.len() as u32;
            uarea.exit.joiners.retain(|j| j.waiter != call.tid);
            release_stack(table, call, stack);
            Outcome::Return(Ok(code as usize))
        }
        _ => {
            if uarea
                .exit
                .joiners
                .iter()
                .any(|j| j.target == target && j.waiter != call.tid)
            {
                return Outcome::Return(Err(Errno::EBUSY));
            }
            if !uarea.exit.joiners.iter().any(|j| j.waiter == call.tid) {
                uarea.exit.joiners.push(Joiner {
                    waiter: call.tid,
                    target,
                });
            }
            Outcome::Block(BlockReason::Join { tid: target })
        }
    }
}

pub fn exit(table: &mut Table, call: &Call) -> Outcome {
    let value = call.args[0];
    let Ok(process) = call.process(table) else {
        return Outcome::Gone;
    };
    let uarea = &mut process.uarea;
    if let Some(thread) = uarea.thread_mut(call.tid) {
        thread.state = ThreadState::Exited { code: value };
    }
    let all_done = uarea
        .threads
        .iter()
        .all(|t| matches!(t.state, ThreadState::Exited { .. }));
    if all_done {
        table.exit_process(call.pid, 0);
        return Outcome::Gone;
    }
    let waiters: alloc::vec::Vec<Tid> = uarea
        .exit
        .joiners
        .iter()
        .filter(|j| j.target == call.tid)
        .map(|j| j.waiter)
        .collect();
    for waiter in waiters {
        table.restart_blocked(call.pid, waiter);
    }
    Outcome::Gone
}

pub fn sleep(call: &Call) -> Outcome {
    let ns = call.args[0];
    if ns == 0 {
        return Outcome::Yield;
    }
    let deadline_ns = hal::clock::now_ns().saturating_add(ns);
    Outcome::Block(BlockReason::Sleep { deadline_ns })
}

pub fn futex_wait(table: &mut Table, call: &Call) -> Outcome {
    let [uaddr, expected, timeout, ..] = call.args;
    if uaddr % 4 != 0 || expected > u32::MAX as u64 {
        return Outcome::Return(Err(Errno::EINVAL));
    }
    // Timed waits are not supported yet.
    if timeout != abi::types::FUTEX_NO_TIMEOUT {
        return Outcome::Return(Err(Errno::EINVAL));
    }
    let process = match call.process(table) {
        Ok(process) => process,
        Err(errno) => return Outcome::Return(Err(errno)),
    };
    match memory::read_user::<4>(&mut process.space, &process.uarea.memory, uaddr) {
        Err(errno) => Outcome::Return(Err(errno)),
        Ok(bytes) if u32::from_le_bytes(bytes) != expected as u32 => {
            Outcome::Return(Err(Errno::EAGAIN))
        }
        Ok(_) => Outcome::Block(BlockReason::FutexWait { uaddr }),
    }
}

pub fn futex_wake(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let [uaddr, count, ..] = call.args;
    if uaddr % 4 != 0 {
        return Err(Errno::EINVAL);
    }
    let process = call.process(table)?;
    let waiters: alloc::vec::Vec<Tid> = process
        .uarea
        .threads
        .iter()
        .filter(|t| t.state == ThreadState::Blocked(BlockReason::FutexWait { uaddr }))
        .map(|t| t.tid)
        .take(count as usize)
        .collect();
    for &tid in &waiters {
        table.complete_blocked(call.pid, tid, Ok(0));
    }
    Ok(waiters.len())
}
