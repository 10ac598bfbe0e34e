//! How processes end: exit and kill, exit codes kept until a parent reaps them (wherever it
//! lives, see `children`), and orphans nobody waits for.

use abi::Pid;
use alloc::vec::Vec;
use spin::Mutex;

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
        process.uarea.exit.children.clear();
        if pid.birth_cluster() != self.cluster {
            crate::requests::post(crate::requests::Request::ExitReport { pid, code });
        }
        self.orphan_children(pid);
        // The parent learns of it wherever it lives; only one running here keeps a zombie.
        let zombie = parent.is_some_and(|parent| self.tell_parent(parent, pid, code));
        if !zombie {
            self.reap_now(pid, code);
        }
    }

    /// `parent` ended: nobody will wait for its children. Zombies among them here are reaped
    /// now, the others become orphans (reaped as soon as they exit; the exits of those on
    /// other clusters find no parent and are dropped).
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
    }

    /// Records the exit of a process born here that ended on another cluster (reported by
    /// its host): its number is free again, and its code is kept with the orphan exits
    /// (kernel-side waiting; its parent heard of it as news, wherever it lives).
    pub fn record_remote_exit(&mut self, pid: Pid, code: i32) {
        self.arrived(pid); // its number is no longer used elsewhere
        if self.orphan_exit_code(pid).is_none() && !self.processes.contains_key(&pid) {
            self.push_orphan_exit(pid, code);
        }
    }

    /// `parent` left this cluster: its zombie children here were recorded in its UArea
    /// before it froze (or follow it as news), so they go.
    pub fn reap_zombies_of(&mut self, parent: Pid) {
        self.processes.retain(|_, p| {
            !(p.uarea.header.parent == Some(parent) && p.uarea.exit.exit_code.is_some())
        });
    }

    fn reap_now(&mut self, pid: Pid, code: i32) {
        self.processes.remove(&pid);
        self.push_orphan_exit(pid, code);
    }

    fn push_orphan_exit(&mut self, pid: Pid, code: i32) {
        self.orphan_exits.push_back((pid, code));
        if self.orphan_exits.len() > ORPHAN_RECORDS {
            self.orphan_exits.pop_front();
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
