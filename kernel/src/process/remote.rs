//! Post-copy, the kernel's side: a thread that touches a page still at the cluster its
//! process left waits for that page, and carries on when it is mapped.
//!
//! A fault on such a page blocks the thread where it is: it re-executes the faulting
//! instruction once the page is here. A system call that touches one (a kernel copy to or from
//! user memory) fails inside the kernel with a note of the page, before it had any effect
//! (calls check and probe user buffers before they act); the dispatcher turns that into a
//! wait, and the thread re-issues the call when the page is here. Either way the daemons are
//! asked for the page (`requests::Request::PageFault`) and the time waited is counted.

use abi::{Pid, Tid};
use core::sync::atomic::{AtomicU64, Ordering};
use uarea::{BlockReason, ThreadState};

use super::Table;
use crate::requests::{post, Request};

/// The remote page a kernel copy just refused (page + 1; 0: none).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// A kernel copy met the remote page `page`: noted for the dispatcher.
pub fn note_refused(page: u64) {
    REFUSED.store(page + 1, Ordering::Relaxed);
}

/// The remote page the last kernel copy refused, if any (and forgets it).
pub fn take_refused() -> Option<u64> {
    match REFUSED.swap(0, Ordering::Relaxed) {
        0 => None,
        page => Some(page - 1),
    }
}

/// The block reason for waiting on `page`, after asking the daemons for it.
pub fn wait_for(pid: Pid, page: u64, syscall: bool) -> BlockReason {
    post(Request::PageFault { pid, page });
    BlockReason::RemotePage { page, syscall }
}

impl Table {
    /// `page` of `pid` is mapped now: every thread waiting for it carries on (re-executing
    /// the faulting instruction, or re-issuing its system call).
    pub fn page_arrived(&mut self, pid: Pid, page: u64) {
        let Some(process) = self.processes.get(&pid) else {
            return;
        };
        let waiting: alloc::vec::Vec<(Tid, bool)> = process
            .uarea
            .threads
            .iter()
            .filter_map(|t| match t.state {
                ThreadState::Blocked(BlockReason::RemotePage { page: p, syscall }) if p == page => {
                    Some((t.tid, syscall))
                }
                _ => None,
            })
            .collect();
        for (tid, syscall) in waiting {
            if syscall {
                self.restart_blocked(pid, tid);
            } else {
                self.make_ready(pid, tid);
            }
        }
    }

    /// Threads of `pid` waiting for a remote page.
    pub fn remote_waiters(&self, pid: Pid) -> usize {
        self.processes.get(&pid).map_or(0, |p| {
            p.uarea
                .threads
                .iter()
                .filter(|t| {
                    matches!(
                        t.state,
                        ThreadState::Blocked(BlockReason::RemotePage { .. })
                    )
                })
                .count()
        })
    }
}
