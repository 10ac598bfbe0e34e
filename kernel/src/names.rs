//! The name service: names → pids, machine-wide.
//!
//! Every cluster keeps a full replica, so a lookup never waits on the NoC; links and unlinks
//! are applied here at once and broadcast to the other clusters by the daemon. Pids never
//! change, so a process that migrates keeps its names (where it lives is its home cluster's
//! business). Two clusters linking one name at the same time converge: the lower pid wins on
//! every replica.

use abi::Pid;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use spin::Mutex;

/// Longest name.
pub const NAME_MAX: usize = 32;

/// A change to announce to the other clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Link { name: String, pid: Pid },
    Unlink { name: String, pid: Pid },
}

struct Names {
    table: BTreeMap<String, Pid>,
    outbox: VecDeque<Change>,
}

static NAMES: Mutex<Names> = Mutex::new(Names {
    table: BTreeMap::new(),
    outbox: VecDeque::new(),
});

fn with<R>(f: impl FnOnce(&mut Names) -> R) -> R {
    hal::cpu::without_interrupts(|| f(&mut NAMES.lock()))
}

/// The pid `name` stands for.
pub fn lookup(name: &str) -> Option<Pid> {
    with(|n| n.table.get(name).copied())
}

/// Links `name` to `pid` here and announces it. False if the name is taken.
pub fn link(name: &str, pid: Pid) -> bool {
    with(|n| {
        if n.table.contains_key(name) {
            return false;
        }
        n.table.insert(name.into(), pid);
        n.outbox.push_back(Change::Link {
            name: name.into(),
            pid,
        });
        true
    })
}

/// Unlinks `name` here and announces it.
pub fn unlink(name: &str) -> Option<Pid> {
    with(|n| {
        let pid = n.table.remove(name)?;
        n.outbox.push_back(Change::Unlink {
            name: name.into(),
            pid,
        });
        Some(pid)
    })
}

/// Drops every name of `pid` (it ended) and announces it.
pub fn forget(pid: Pid) {
    with(|n| {
        let names: Vec<String> = n
            .table
            .iter()
            .filter(|(_, p)| **p == pid)
            .map(|(k, _)| k.clone())
            .collect();
        for name in names {
            n.table.remove(&name);
            n.outbox.push_back(Change::Unlink { name, pid });
        }
    });
}

/// Applies a change announced by another cluster.
pub fn apply(change: Change) {
    with(|n| match change {
        Change::Link { name, pid } => {
            let keep = n.table.get(&name).is_some_and(|current| *current < pid);
            if !keep {
                n.table.insert(name, pid);
            }
        }
        Change::Unlink { name, pid } => {
            if n.table.get(&name) == Some(&pid) {
                n.table.remove(&name);
            }
        }
    });
}

/// Changes made here, for the daemon to broadcast.
pub fn take_outbox() -> Vec<Change> {
    with(|n| n.outbox.drain(..).collect())
}

/// Every name, for the monitor.
pub fn all() -> Vec<(String, Pid)> {
    with(|n| n.table.iter().map(|(k, v)| (k.clone(), *v)).collect())
}
