//! Sync points between processes (Nanvix `sync`): ONE_TO_ALL — the first member signals and
//! every other waits; ALL_TO_ONE — every other member signals and the first waits. Members
//! are pids, wherever they run; all members must list them in the same order.

use abi::{Errno, Pid, SyncMode, Syscall};

use crate::raw::call;

fn pids(members: &[Pid]) -> alloc::vec::Vec<u32> {
    members.iter().map(|p| p.raw()).collect()
}

/// The waiting side of a sync point.
pub struct Waiter {
    sd: u64,
}

impl Waiter {
    /// Joins `members` (in `mode`) as a waiting member.
    pub fn create(members: &[Pid], mode: SyncMode) -> Result<Waiter, Errno> {
        let list = pids(members);
        call(
            Syscall::SyncCreate,
            &[list.as_ptr() as u64, list.len() as u64, mode as u64],
        )
        .map(|sd| Waiter { sd: sd as u64 })
    }

    /// Blocks until every expected member signalled (one round).
    pub fn wait(&self) -> Result<(), Errno> {
        call(Syscall::SyncWait, &[self.sd]).map(|_| ())
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let _ = call(Syscall::SyncClose, &[self.sd]);
    }
}

/// The signalling side of a sync point.
pub struct Signaller {
    sd: u64,
}

impl Signaller {
    /// Joins `members` (in `mode`) as a signalling member.
    pub fn open(members: &[Pid], mode: SyncMode) -> Result<Signaller, Errno> {
        let list = pids(members);
        call(
            Syscall::SyncOpen,
            &[list.as_ptr() as u64, list.len() as u64, mode as u64],
        )
        .map(|sd| Signaller { sd: sd as u64 })
    }

    /// Signals the waiting members (retrying while the NoC is full).
    pub fn signal(&self) -> Result<(), Errno> {
        loop {
            match call(Syscall::SyncSignal, &[self.sd]) {
                Err(Errno::EAGAIN) => crate::time::sleep_ms(1),
                other => return other.map(|_| ()),
            }
        }
    }
}

impl Drop for Signaller {
    fn drop(&mut self) {
        let _ = call(Syscall::SyncClose, &[self.sd]);
    }
}
