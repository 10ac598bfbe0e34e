//! How processes end: exit and kill, exit codes kept until a parent reaps them, children
//! that live on other clusters, and orphans nobody waits for.

use abi::{Errno, Pid, Tid};
use alloc::vec::Vec;
use spin::Mutex;
use uarea::ThreadState;

use super::{console, Table, ORPHAN_RECORDS};

/// Told of every process that ends here (the services drop what they kept for it).
static EXIT_HOOK: Mutex<Option<fn(Pid)>> = Mutex::new(None);

/// Installs the exit hook (once, at boot).
pub fn set_exit_hook(hook: fn(Pid)) {
    hal::cpu::without_interrupts(|| *EXIT_HOOK.lock() = Some(hook));
}

impl Table {
    /// Ends a process: frees its memory, wakes a parent waiting for it, and keeps its exit
    /// code until it is reaped.
    pub fn exit_process(&mut self, pid: Pid, code: i32) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        if process.uarea.exit.exit_code.is_some() {
            return; // already a zombie
        }
        console::flush_console(pid, &process.uarea.header.name, &mut process.console);
        process.uarea.exit.exit_code = Some(code);
        process
            .uarea
            .header
            .flags
            .set(uarea::UAreaFlags::EXITING, true);
        process.uarea.threads.clear();
        process.uarea.thread_count = 0;
        process.uarea.sched.run_queue.clear();
        process.uarea.exit.joiners.clear();
        // Free the memory now; the zombie keeps only its UArea.
        process.space.clear_user_half();
        process.uarea.endpoints.clear();
        let exit_hook = *EXIT_HOOK.lock();
        if let Some(hook) = exit_hook {
            hook(pid);
        }
        process.uarea.memory.segments.clear();
        self.ready.retain(|p| *p != pid);
        if self.current.is_some_and(|(p, _)| p == pid) {
            self.current = None;
        }
        log::info!("process {pid} exited with code {code}");
        let parent = process.uarea.header.parent;
        if pid.birth_cluster() != self.cluster {
            crate::requests::post(crate::requests::Request::ExitReport { pid, code });
        }
        self.orphan_children(pid);
        // Only a live parent will ever wait; a zombie parent's children are orphans.
        match parent.filter(|p| self.is_alive(*p)) {
            Some(parent) => self.wake_child_waiters(parent),
            None => self.reap_now(pid, code),
        }
    }

    /// `parent` ended: nobody will wait for its children. Zombies among them are reaped now,
    /// the others become orphans (reaped as soon as they exit), and the exits of its children
    /// on other clusters are no longer kept for it.
    fn orphan_children(&mut self, parent: Pid) {
        let children: Vec<(Pid, Option<i32>)> = self
            .processes
            .iter()
            .filter(|(_, p)| p.uarea.header.parent == Some(parent))
            .map(|(pid, p)| (*pid, p.uarea.exit.exit_code))
            .collect();
        for (child, code) in children {
            match code {
                Some(code) => self.reap_now(child, code),
                None => {
                    if let Some(process) = self.processes.get_mut(&child) {
                        process.uarea.header.parent = None;
                    }
                }
            }
        }
        self.remote_children.retain(|(p, _, _)| *p != parent);
    }

    /// Records the exit of a process that died on another cluster (reported by its host):
    /// its parent here can now reap it, else it is kept as an orphan exit.
    pub fn record_remote_exit(&mut self, pid: Pid, code: i32) {
        self.arrived(pid); // its number is no longer used elsewhere
        if let Some(entry) = self
            .remote_children
            .iter_mut()
            .find(|(_, child, _)| *child == pid)
        {
            entry.2 = Some(code);
            let parent = entry.0;
            self.wake_child_waiters(parent);
        } else if self.orphan_exit_code(pid).is_none() {
            self.reap_now(pid, code);
        }
    }

    /// A local process's child now lives elsewhere (it migrated, or was spawned there).
    pub fn adopt_remote_child(&mut self, parent: Pid, child: Pid) {
        if self.processes.contains_key(&parent)
            && !self.remote_children.iter().any(|(_, c, _)| *c == child)
        {
            self.remote_children.push((parent, child, None));
        }
    }

    fn reap_now(&mut self, pid: Pid, code: i32) {
        self.processes.remove(&pid);
        self.orphan_exits.push_back((pid, code));
        if self.orphan_exits.len() > ORPHAN_RECORDS {
            self.orphan_exits.pop_front();
        }
    }

    fn wake_child_waiters(&mut self, parent: Pid) {
        let waiting: Vec<Tid> = self.processes.get(&parent).map_or(Vec::new(), |p| {
            p.uarea
                .threads
                .iter()
                .filter(|t| {
                    matches!(
                        t.state,
                        ThreadState::Blocked(uarea::BlockReason::ChildWait { .. })
                    )
                })
                .map(|t| t.tid)
                .collect()
        });
        for tid in waiting {
            self.restart_blocked(parent, tid);
        }
    }

    /// Reaps an exited child of `parent` (`None`: any child). `Ok(None)` means children exist
    /// but none has exited yet.
    pub fn reap_child(
        &mut self,
        parent: Pid,
        child: Option<Pid>,
    ) -> Result<Option<(Pid, i32)>, Errno> {
        // Children on other clusters first: their exits arrive as reports.
        let remote = self.remote_children.iter().position(|(p, c, code)| {
            *p == parent && child.is_none_or(|want| want == *c) && code.is_some()
        });
        if let Some(index) = remote {
            let (_, pid, code) = self.remote_children.remove(index);
            return Ok(Some((pid, code.unwrap_or(0))));
        }
        let remote_alive = self
            .remote_children
            .iter()
            .any(|(p, c, _)| *p == parent && child.is_none_or(|want| want == *c));
        let children: Vec<(Pid, Option<i32>)> = self
            .processes
            .iter()
            .filter(|(pid, p)| {
                p.uarea.header.parent == Some(parent) && child.is_none_or(|c| c == **pid)
            })
            .map(|(pid, p)| (*pid, p.uarea.exit.exit_code))
            .collect();
        if children.is_empty() {
            return if remote_alive {
                Ok(None)
            } else {
                Err(Errno::ECHILD)
            };
        }
        match children
            .iter()
            .find_map(|(pid, code)| code.map(|c| (*pid, c)))
        {
            Some((pid, code)) => {
                self.processes.remove(&pid);
                Ok(Some((pid, code)))
            }
            None => Ok(None),
        }
    }

    /// The exit code of a process nobody waits for, if it has exited (kernel-side waiting).
    pub fn orphan_exit_code(&self, pid: Pid) -> Option<i32> {
        self.orphan_exits
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, code)| *code)
    }
}
