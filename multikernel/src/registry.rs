//! The location registry: the birth cluster (*home*) of every process knows where it lives.
//!
//! Pids never change and carry their birth cluster, so anyone who needs a process — to send
//! it mail, kill it, migrate it, learn it exited — can always ask its home. The home learns
//! of every move from the source of the migration (`Located`) and of every exit from where
//! it happened (`Exited`).

use abi::{ClusterId, Pid};
use alloc::collections::BTreeMap;

use crate::chip;

#[derive(Default)]
pub struct LocationRegistry {
    /// Where the processes born here live now (absent: here, or exited).
    locations: BTreeMap<Pid, ClusterId>,
}

impl LocationRegistry {
    /// Where a process born here lives now (`None`: here, or gone).
    pub fn get(&self, pid: Pid) -> Option<ClusterId> {
        self.locations.get(&pid).copied()
    }

    /// `pid`, born here, now lives on `cluster`.
    pub fn set(&mut self, pid: Pid, cluster: ClusterId) {
        if cluster == chip::here() {
            self.locations.remove(&pid);
        } else {
            self.locations.insert(pid, cluster);
        }
    }

    /// `pid` exited, or came home.
    pub fn forget(&mut self, pid: Pid) {
        self.locations.remove(&pid);
    }

    /// The processes born here that live on `cluster`. When it leaves the machine they are
    /// gone with it; the registry keeps pointing there, so mail to them is answered
    /// `EHOSTDOWN` (and their parents' `wait` says so too).
    pub fn living_on(&self, cluster: ClusterId) -> alloc::vec::Vec<Pid> {
        self.locations
            .iter()
            .filter(|(_, at)| **at == cluster)
            .map(|(pid, _)| *pid)
            .collect()
    }
}
