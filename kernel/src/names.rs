//! The name service: names → pids, machine-wide.
//!
//! Every cluster keeps a full replica, so a lookup never waits on the NoC; links and unlinks
//! are applied here at once and broadcast to the other clusters by the daemon. Pids never
//! change, so a process that migrates keeps its names (where it lives is its home cluster's
//! business). Two clusters linking one name at the same time converge: the lower pid wins on
//! every replica.

use abi::Pid;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use spin::Mutex;

/// Longest name.
pub const NAME_MAX: usize = 32;

pub use crate::requests::NameChange as Change;

static NAMES: Mutex<BTreeMap<String, Pid>> = Mutex::new(BTreeMap::new());
/// Links announced by other clusters that this replica did not apply (it was full).
static REFUSED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn with<R>(f: impl FnOnce(&mut BTreeMap<String, Pid>) -> R) -> R {
    hal::cpu::without_interrupts(|| f(&mut NAMES.lock()))
}

/// Tells the other replicas (through the daemons). An unlink must reach them whatever the
/// queue holds (a process's names go when it ends), a link may be refused (`EAGAIN`).
fn announce(change: Change) {
    crate::requests::post(crate::requests::Request::Name(change));
}

/// The pid `name` stands for.
pub fn lookup(name: &str) -> Option<Pid> {
    with(|n| n.get(name).copied())
}

/// Why a name could not be linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The name is taken.
    Taken,
    /// `pid` already has `NAMES_PER_PROCESS` names, or the replica holds
    /// `NAMES_PER_CLUSTER`.
    Full,
    /// The daemons' queue is full, or the kernel heap at its budget: try again.
    Busy,
}

/// Links `name` to `pid` here and announces it.
///
/// Every name is copied to every cluster, so both the names of one process and the names
/// linked on one cluster are limited (`abi::limits`): no sequence of links fills a heap.
pub fn link(name: &str, pid: Pid) -> Result<(), LinkError> {
    with(|n| {
        if n.contains_key(name) {
            return Err(LinkError::Taken);
        }
        let of_pid = n.values().filter(|p| **p == pid).count();
        if of_pid >= abi::limits::NAMES_PER_PROCESS || n.len() >= abi::limits::NAMES_PER_CLUSTER {
            return Err(LinkError::Full);
        }
        if !crate::budget::admits(name.len() + 64) {
            return Err(LinkError::Busy);
        }
        n.insert(name.into(), pid);
        Ok(())
    })?;
    let announced = crate::requests::try_post(crate::requests::Request::Name(Change::Link {
        name: name.into(),
        pid,
    }));
    if announced.is_err() {
        // Nobody else heard of it: undo, so the replicas stay the same.
        with(|n| n.remove(name));
        return Err(LinkError::Busy);
    }
    Ok(())
}

/// Unlinks `name` here and announces it.
pub fn unlink(name: &str) -> Option<Pid> {
    let pid = with(|n| n.remove(name))?;
    announce(Change::Unlink {
        name: name.into(),
        pid,
    });
    Some(pid)
}

/// Drops every name of `pid` (it ended) and announces it.
pub fn forget(pid: Pid) {
    let names: Vec<String> = with(|n| {
        let names: Vec<String> = n
            .iter()
            .filter(|(_, p)| **p == pid)
            .map(|(k, _)| k.clone())
            .collect();
        for name in &names {
            n.remove(name);
        }
        names
    });
    for name in names {
        announce(Change::Unlink { name, pid });
    }
}

/// Applies a change announced by another cluster.
///
/// Links from elsewhere are bounded too: a replica holds at most `NAMES_PER_REPLICA` names
/// and `NAMES_PER_PROCESS` per pid, within the heap budget; a link beyond is not applied
/// (and counted, [`refused`]), so other clusters cannot fill this kernel's heap. Every
/// cluster enforces the same per-pid limit when linking, so a well-behaved machine never
/// reaches these.
pub fn apply(change: Change) {
    with(|n| match change {
        Change::Link { name, pid } => {
            let current = n.get(&name).copied();
            if current.is_some_and(|current| current < pid) {
                return;
            }
            if current.is_none() {
                let of_pid = n.values().filter(|p| **p == pid).count();
                if n.len() >= abi::limits::NAMES_PER_REPLICA
                    || of_pid >= abi::limits::NAMES_PER_PROCESS
                    || !crate::budget::admits(name.len() + 64)
                {
                    REFUSED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                    return;
                }
            }
            n.insert(name, pid);
        }
        Change::Unlink { name, pid } => {
            if n.get(&name) == Some(&pid) {
                n.remove(&name);
            }
        }
    });
}

/// Links from other clusters this replica refused so far.
pub fn refused() -> u64 {
    REFUSED.load(core::sync::atomic::Ordering::Relaxed)
}

/// Names in this replica.
pub fn count() -> usize {
    with(|n| n.len())
}

/// Every name, for the monitor.
pub fn all() -> Vec<(String, Pid)> {
    with(|n| n.iter().map(|(k, v)| (k.clone(), *v)).collect())
}
