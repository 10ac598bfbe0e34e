//! Pid allocation: local numbers are handed out in order and reused after they wrap.
//!
//! A pid is `birth cluster << 24 | local` (see `abi::ids`), so each cluster has 2^24 − 1 of
//! them. Reuse is safe only for a number nothing on the machine still means: the allocator
//! skips every local number this cluster still knows of — processes here (zombies
//! included), children living on other clusters, recent orphan exit records, and processes
//! born here that live elsewhere now (`departed`, until their exit is reported or they come
//! back). When all of them are taken, `spawn` fails with `EAGAIN`.

use abi::Pid;

use super::Table;

impl Table {
    /// A fresh pid born on this cluster (for a process created here or, on request, elsewhere).
    /// Until a process with it is created here, it counts as living elsewhere.
    pub fn reserve_pid(&mut self) -> Option<Pid> {
        for _ in 0..Pid::MAX_LOCAL {
            let local = self.next_local;
            self.next_local = if local >= Pid::MAX_LOCAL {
                1
            } else {
                local + 1
            };
            let pid = Pid::new(self.cluster, local)?;
            if !self.pid_in_use(pid) {
                self.departed.insert(pid);
                return Some(pid);
            }
        }
        None
    }

    /// True if `pid` still means a process to this cluster.
    fn pid_in_use(&self, pid: Pid) -> bool {
        self.processes.contains_key(&pid)
            || self.departed.contains(&pid)
            || self.is_someones_child(pid)
            || self.orphan_exits.iter().any(|(p, _)| *p == pid)
    }

    /// The next local number `reserve_pid` tries (tests use it to reach the wrap-around).
    pub fn set_next_local(&mut self, local: u32) {
        self.next_local = local.clamp(1, Pid::MAX_LOCAL);
    }

    /// A number reserved for a spawn that did not go ahead is free again.
    pub fn unreserve_pid(&mut self, pid: Pid) {
        if !self.processes.contains_key(&pid) {
            self.departed.remove(&pid);
        }
    }

    /// `pid` now lives here: it no longer reserves its number as living elsewhere.
    pub(super) fn arrived(&mut self, pid: Pid) {
        self.departed.remove(&pid);
    }

    /// `pid`, born here, now lives on another cluster: its number stays reserved.
    pub(super) fn departed(&mut self, pid: Pid) {
        if pid.birth_cluster() == self.cluster {
            self.departed.insert(pid);
        }
    }
}
