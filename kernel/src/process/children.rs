//! The process tree across clusters: every process keeps its children not yet reaped in its
//! UArea (`exit.children`), so the tree moves with the parent, and what happens to a child
//! that does not run next to its parent reaches the parent as news.
//!
//! A child's exit next to its live parent is recorded at once (the child stays a zombie for
//! `proc_list` until reaped); anywhere else — the child or the parent migrated, or the child
//! was spawned on another cluster — the exit is posted as news (`requests::ChildNews`) that
//! the daemons route to wherever the parent lives, like mail. Each migration of a child sends
//! its new cluster the same way, so the parent knows where each child is; when that cluster
//! leaves the machine, `wait` reports the child as lost (`EHOSTDOWN`) instead of waiting for
//! an exit that can never come. News is idempotent: a copy that arrives twice, or after the
//! child was reaped, changes nothing.

use abi::{ClusterId, Errno, Pid, Tid};
use alloc::vec::Vec;
use uarea::{BlockReason, Child, ThreadState};

use super::Table;
use crate::requests::ChildNews;

impl Table {
    /// `child` was spawned by `parent` (here) and lives on `cluster`.
    pub fn add_child(&mut self, parent: Pid, child: Pid, cluster: ClusterId) -> Result<(), Errno> {
        let process = self.processes.get_mut(&parent).ok_or(Errno::ESRCH)?;
        let children = &mut process.uarea.exit.children;
        if let Some(known) = children.iter_mut().find(|c| c.pid == child) {
            known.cluster = cluster;
            return Ok(());
        }
        if children.len() >= abi::limits::CHILDREN_PER_PROCESS {
            return Err(Errno::EAGAIN);
        }
        children.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        children.push(Child {
            pid: child,
            cluster,
            moves: 0,
            exit_code: None,
        });
        Ok(())
    }

    /// Drops `parent`'s record of `child` (its spawn did not go ahead).
    pub fn forget_child(&mut self, parent: Pid, child: Pid) {
        if let Some(process) = self.processes.get_mut(&parent) {
            process.uarea.exit.children.retain(|c| c.pid != child);
        }
    }

    /// Children of `parent` not yet reaped, wherever they live (0 if `parent` is not here).
    pub fn children_of(&self, parent: Pid) -> usize {
        self.processes
            .get(&parent)
            .map_or(0, |p| p.uarea.exit.children.len())
    }

    /// `parent`'s record of `child`, if it is a child not yet reaped.
    pub fn child(&self, parent: Pid, child: Pid) -> Option<Child> {
        let process = self.processes.get(&parent)?;
        process
            .uarea
            .exit
            .children
            .iter()
            .find(|c| c.pid == child)
            .copied()
    }

    /// True if a process here lists `pid` as a child not yet reaped (its number is taken).
    pub(super) fn is_someones_child(&self, pid: Pid) -> bool {
        self.processes
            .values()
            .any(|p| p.uarea.exit.children.iter().any(|c| c.pid == pid))
    }

    /// Applies news of `child` to `parent` (here); a parent waiting in `wait` re-checks.
    pub fn child_news(&mut self, parent: Pid, child: Pid, news: ChildNews) {
        let Some(process) = self
            .processes
            .get_mut(&parent)
            .filter(|p| p.uarea.exit.exit_code.is_none())
        else {
            return;
        };
        let Some(entry) = process
            .uarea
            .exit
            .children
            .iter_mut()
            .find(|c| c.pid == child && c.exit_code.is_none())
        else {
            return;
        };
        match news {
            ChildNews::Exited(code) => entry.exit_code = Some(code),
            ChildNews::Moved { cluster, moves } if moves > entry.moves => {
                entry.cluster = cluster;
                entry.moves = moves;
            }
            ChildNews::Moved { .. } => return,
        }
        self.wake_child_waiters(parent);
    }

    /// A child of `parent` ended here with `code`: recorded at once if the parent runs here
    /// (true: keep the zombie until it is reaped), else posted for the daemons to route.
    pub(super) fn tell_parent(&mut self, parent: Pid, child: Pid, code: i32) -> bool {
        let beside = self
            .processes
            .get(&parent)
            .is_some_and(|p| p.uarea.exit.exit_code.is_none() && !p.uarea.is_frozen());
        if beside {
            self.child_news(parent, child, ChildNews::Exited(code));
            return true;
        }
        let alive_somewhere = !self.processes.contains_key(&parent) || self.is_alive(parent);
        if alive_somewhere {
            crate::requests::post(crate::requests::Request::ChildNews {
                parent,
                child,
                news: ChildNews::Exited(code),
            });
        }
        false
    }

    /// `pid` now lives on `to` (a migration committed): it goes from here, and its parent,
    /// wherever it lives, hears where it went (so a `wait` for it knows which cluster's
    /// departure would lose it).
    pub fn remove_departed_child(&mut self, pid: Pid, to: ClusterId) -> Option<super::Process> {
        let process = self.remove_migrated(pid)?;
        if let Some(parent) = process.uarea.header.parent {
            let moves = process.uarea.counters.migrations as u32 + 1;
            crate::requests::post(crate::requests::Request::ChildNews {
                parent,
                child: pid,
                news: ChildNews::Moved { cluster: to, moves },
            });
        }
        Some(process)
    }

    /// Wakes every thread waiting in `wait` on this cluster (a cluster left the machine: a
    /// child there may now count as lost).
    pub fn wake_all_child_waiters(&mut self) {
        let parents: Vec<Pid> = self.processes.keys().copied().collect();
        for parent in parents {
            self.wake_child_waiters(parent);
        }
    }

    pub(super) fn wake_child_waiters(&mut self, parent: Pid) {
        let waiting: Vec<Tid> = self.processes.get(&parent).map_or(Vec::new(), |p| {
            p.uarea
                .threads
                .iter()
                .filter(|t| matches!(t.state, ThreadState::Blocked(BlockReason::ChildWait { .. })))
                .map(|t| t.tid)
                .collect()
        });
        for tid in waiting {
            self.restart_blocked(parent, tid);
        }
    }

    /// Reaps an exited child of `parent` (`None`: any child). `Ok(None)` means children exist
    /// but none has exited yet; `EHOSTDOWN` reports (once) a child whose cluster left the
    /// machine, `ECHILD` that there is no such child.
    pub fn reap_child(
        &mut self,
        parent: Pid,
        child: Option<Pid>,
    ) -> Result<Option<(Pid, i32)>, Errno> {
        let here = self.cluster;
        let process = self.processes.get_mut(&parent).ok_or(Errno::ECHILD)?;
        let children = &mut process.uarea.exit.children;
        let wanted = |c: &Child| child.is_none_or(|want| want == c.pid);
        if !children.iter().any(wanted) {
            return Err(Errno::ECHILD);
        }
        if let Some(index) = children
            .iter()
            .position(|c| wanted(c) && c.exit_code.is_some())
        {
            let reaped = children.remove(index);
            let code = reaped.exit_code.unwrap_or(0);
            // Its zombie, if it ended here.
            let zombie = self.processes.get(&reaped.pid).is_some_and(|p| {
                p.uarea.header.parent == Some(parent) && p.uarea.exit.exit_code.is_some()
            });
            if zombie {
                self.processes.remove(&reaped.pid);
            }
            return Ok(Some((reaped.pid, code)));
        }
        let lost = children
            .iter()
            .position(|c| wanted(c) && c.cluster != here && !cluster_is_live(c.cluster));
        if let Some(index) = lost {
            let lost = children.remove(index);
            log::warn!(
                "{parent}: child {} lost with cluster {}",
                lost.pid,
                lost.cluster.0
            );
            return Err(Errno::EHOSTDOWN);
        }
        Ok(None)
    }
}

/// True while the router counts `cluster` as connected (always, without a NoC).
fn cluster_is_live(cluster: ClusterId) -> bool {
    !hal::noc::present() || (cluster.0 < 64 && hal::noc::live_clusters() & (1u64 << cluster.0) != 0)
}
