//! The system call layer: decode the call from the trap frame, check every argument, run it,
//! and either return to the caller at once or take it off the CPU.
//!
//! Numbers, argument order and error codes come from the `abi` crate (documented in
//! `docs/abi.md`). A handler never trusts a register: pointers are checked against the
//! process's segments (`EFAULT`), descriptors against its tables (`EBADF`), sizes against the
//! ABI's limits (`EINVAL`), and an unknown number is `ENOSYS`.

mod endpoints;
mod mailbox;
mod migrate;
mod names;
mod portal;
mod process;
mod sync;
mod thread;

use abi::{Errno, Pid, Syscall, SyscallResult, Tid};
use hal::trap::TrapFrame;
use uarea::BlockReason;

use crate::process::scheduler::{leave, Leave};
use crate::process::{with_table, Process, Table};

/// What a system call asks of the scheduler.
pub enum Outcome {
    /// Return this result to the caller now.
    Return(Result<usize, Errno>),
    /// Block the caller; it is woken by completion or restart (see `Table`).
    Block(BlockReason),
    /// Block the caller with this result already in its return register: what it returns if
    /// woken without a completion (a write awaiting its answer, see `acceptance`).
    BlockReturning(BlockReason, Result<usize, Errno>),
    /// Return 0 and give up the CPU.
    Yield,
    /// The caller (or its whole process) is gone.
    Gone,
}

/// The calling thread and its arguments.
pub struct Call {
    pub pid: Pid,
    pub tid: Tid,
    pub args: [u64; 6],
}

impl Call {
    /// Copies `len` bytes of the caller's memory at `address` (checked: `EFAULT`).
    pub fn read_user(
        &self,
        table: &mut Table,
        address: u64,
        len: usize,
    ) -> Result<alloc::vec::Vec<u8>, Errno> {
        let process = self.process(table)?;
        // Checked before allocating: the length is the caller's.
        crate::process::memory::check_range(
            &process.uarea.memory,
            address,
            len as u64,
            uarea::Perms::R,
        )?;
        let mut bytes = alloc::vec::Vec::new();
        bytes.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
        bytes.resize(len, 0);
        crate::process::memory::copy_from_user(
            &mut process.space,
            &process.uarea.memory,
            address,
            &mut bytes,
        )?;
        Ok(bytes)
    }

    /// Writes `data` to the caller's output buffer `[address, address + len)` (`len` is the
    /// size the caller claims, `data.len() <= len`): the whole buffer is checked writable
    /// first (`EFAULT`), so a short buffer is refused before a byte is written.
    pub fn write_user(
        &self,
        table: &mut Table,
        address: u64,
        len: u64,
        data: &[u8],
    ) -> Result<(), Errno> {
        debug_assert!(data.len() as u64 <= len);
        let process = self.process(table)?;
        let map = &process.uarea.memory;
        crate::process::memory::check_range(map, address, len, uarea::Perms::W)?;
        crate::process::memory::copy_to_user(&mut process.space, map, address, data)
    }

    /// The calling process.
    pub fn process<'t>(&self, table: &'t mut Table) -> Result<&'t mut Process, Errno> {
        table.processes.get_mut(&self.pid).ok_or(Errno::ESRCH)
    }
}

/// Installs the handler into the HAL.
pub fn init() {
    hal::usermode::set_syscall_handler(dispatch);
}

fn dispatch(frame: &mut TrapFrame) {
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let number = frame.rax;
    let outcome = with_table(|table| {
        let Some((pid, tid)) = table.current else {
            return Outcome::Return(Err(Errno::ESRCH));
        };
        if let Some(process) = table.processes.get_mut(&pid) {
            process.uarea.counters.syscalls += 1;
        }
        let call = Call { pid, tid, args };
        let _ = crate::process::remote::take_refused();
        let outcome = match Syscall::from_number(number) {
            Some(syscall) => handle(table, &call, syscall),
            None => Outcome::Return(Err(Errno::ENOSYS)),
        };
        // A copy met a page still at the cluster the process left: wait for it, then
        // re-issue the call (it failed before it had any effect).
        match (outcome, crate::process::remote::take_refused()) {
            (Outcome::Return(Err(Errno::EFAULT)), Some(page)) => {
                Outcome::Block(crate::process::remote::wait_for(pid, page, true))
            }
            (outcome, _) => outcome,
        }
    });
    match outcome {
        Outcome::Return(result) => frame.rax = SyscallResult::encode(result).raw() as u64,
        Outcome::Yield => {
            frame.rax = 0;
            leave(frame, Leave::Ready)
        }
        Outcome::Block(reason) => leave(frame, Leave::Blocked(reason)),
        Outcome::BlockReturning(reason, result) => {
            frame.rax = SyscallResult::encode(result).raw() as u64;
            leave(frame, Leave::Blocked(reason))
        }
        Outcome::Gone => leave(frame, Leave::Gone),
    }
}

fn handle(table: &mut Table, call: &Call, syscall: Syscall) -> Outcome {
    use Syscall::*;
    match syscall {
        Exit => process::exit(table, call),
        Write => Outcome::Return(process::write(table, call)),
        GetPid => Outcome::Return(Ok(call.pid.raw() as usize)),
        GetTid => Outcome::Return(Ok(call.tid.0 as usize)),
        ClockNs => Outcome::Return(process::clock_ns(table, call)),
        ClusterIdOf => Outcome::Return(Ok(table.cluster.0 as usize)),
        ClusterCount => Outcome::Return(Ok(crate::cluster_count() as usize)),
        Spawn => Outcome::Return(process::spawn(table, call)),
        Wait => process::wait(table, call),
        Kill => process::kill(table, call),
        ProcList => Outcome::Return(process::proc_list(table, call)),
        Mmap => Outcome::Return(process::mmap(table, call)),
        Munmap => Outcome::Return(process::munmap(table, call)),
        ThreadCreate => Outcome::Return(thread::create(table, call)),
        ThreadJoin => thread::join(table, call),
        ThreadExit => thread::exit(table, call),
        Yield => Outcome::Yield,
        Sleep => thread::sleep(call),
        FutexWait => thread::futex_wait(table, call),
        FutexWake => Outcome::Return(thread::futex_wake(table, call)),
        MailboxCreate => Outcome::Return(mailbox::create(table, call)),
        MailboxOpen => Outcome::Return(mailbox::open(table, call)),
        MailboxRead => mailbox::read(table, call),
        MailboxWrite => mailbox::write(table, call),
        MailboxClose => Outcome::Return(mailbox::close(table, call)),
        MailboxReadFrom => mailbox::read_from(table, call),
        PortalCreate => Outcome::Return(portal::create(table, call)),
        PortalAllow => Outcome::Return(portal::allow(table, call)),
        PortalOpen => Outcome::Return(portal::open(table, call)),
        PortalRead => portal::read(table, call),
        PortalWrite => portal::write(table, call),
        PortalClose => Outcome::Return(portal::close(table, call)),
        SyncCreate => Outcome::Return(sync::create(table, call)),
        SyncOpen => Outcome::Return(sync::open(table, call)),
        SyncWait => sync::wait(table, call),
        SyncSignal => Outcome::Return(sync::signal(table, call)),
        SyncClose => Outcome::Return(sync::close(table, call)),
        NameLink => Outcome::Return(names::link(table, call)),
        NameLookup => Outcome::Return(names::lookup(table, call)),
        NameUnlink => Outcome::Return(names::unlink(table, call)),
        Migrate => migrate::migrate(table, call),
        MigrateWith => migrate::migrate_with(table, call),
        MigrationStats => Outcome::Return(migrate::stats(table, call)),
        MigrationStatsEx => Outcome::Return(migrate::stats_ex(table, call)),
    }
}
