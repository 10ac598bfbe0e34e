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

fn with<R>(f: impl FnOnce(&mut BTreeMap<String, Pid>) -> R) -> R {
    hal::cpu::without_interrupts(|| f(&mut NAMES.lock()))
}

/// Tells the other replicas (through the daemons).
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
        n.insert(name.into(), pid);
        Ok(())
    })?;
    announce(Change::Link {
        name: name.into(),
        pid,
    });
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
pub fn apply(change: Change) {
    with(|n| match change {
        Change::Link { name, pid } => {
            let keep = n.get(&name).is_some_and(|current| *current < pid);
            if !keep {
                n.insert(name, pid);
            }
        }
        Change::Unlink { name, pid } => {
            if n.get(&name) == Some(&pid) {
                n.remove(&name);
            }
        }
    });
}

/// Every name, for the monitor.
pub fn all() -> Vec<(String, Pid)> {
    with(|n| n.iter().map(|(k, v)| (k.clone(), *v)).collect())
}
