//! User processes: the process table, creation from the boot archive, exit, kill and listing.
//!
//! Everything a process is — identity, threads and their saved contexts, run queue, memory
//! map, endpoints, counters — lives in its [`UArea`]. The only other per-process state is
//! kernel-local and rebuilt on any cluster: the page tables and frames ([`AddressSpace`]) and
//! a partial console line. That split is what lets migration move a process by shipping its
//! UArea and its pages.

pub mod context;
pub mod fault;
pub mod memory;
pub mod scheduler;

use abi::{ClusterId, Errno, Pid, ProcessInfo, ProcessState, Tid};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use hal::paging::AddressSpace;
use spin::Mutex;
use uarea::{
    Backing, Context, Header, Perms, Segment, SegmentKind, StackExtent, ThreadState, UArea,
};

use memory::{LoadError, MAIN_STACK_SIZE, STACK_GUARD};

/// Scheduling quantum of new processes (`quantum_ms=` on the kernel command line).
static DEFAULT_QUANTUM_NS: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(uarea::Sched::DEFAULT_QUANTUM_NS);

/// Sets the scheduling quantum of processes created from now on.
pub fn set_default_quantum_ns(ns: u64) {
    DEFAULT_QUANTUM_NS.store(ns.max(100_000), core::sync::atomic::Ordering::Relaxed);
}

/// Exit code of a process killed by a fault or by `kill`.
pub const KILLED_EXIT_CODE: i32 = -9;
/// Longest console line kept before it is flushed without a newline.
const CONSOLE_LINE_MAX: usize = 200;
/// Exit records kept for processes without a parent (spawned by the kernel).
const ORPHAN_RECORDS: usize = 64;

/// One process on this cluster.
pub struct Process {
    pub uarea: UArea,
    pub space: AddressSpace,
    /// Console output not yet ended by a newline.
    console: String,
}

impl Process {
    /// Splits a process into its migratable state and its address space.
    pub fn into_parts(self) -> (UArea, AddressSpace) {
        (self.uarea, self.space)
    }
}

/// All processes of this cluster, and the scheduler's view of them.
pub struct Table {
    pub processes: BTreeMap<Pid, Process>,
    /// Processes with at least one ready thread, in round-robin order.
    pub ready: VecDeque<Pid>,
    /// The thread on the CPU, if any.
    pub current: Option<(Pid, Tid)>,
    next_local: u32,
    pub cluster: ClusterId,
    /// Exit codes of processes no parent will wait for.
    orphan_exits: VecDeque<(Pid, i32)>,
    /// Children of local processes that live on other clusters: (parent, child, exit code once
    /// reported).
    pub remote_children: Vec<(Pid, Pid, Option<i32>)>,
}

/// Told of every process that ends here (the services drop what they kept for it).
static EXIT_HOOK: Mutex<Option<fn(Pid)>> = Mutex::new(None);

/// Installs the exit hook (once, at boot).
pub fn set_exit_hook(hook: fn(Pid)) {
    hal::cpu::without_interrupts(|| *EXIT_HOOK.lock() = Some(hook));
}

pub static TABLE: Mutex<Table> = Mutex::new(Table {
    processes: BTreeMap::new(),
    ready: VecDeque::new(),
    current: None,
    next_local: 1,
    cluster: ClusterId(0),
    orphan_exits: VecDeque::new(),
    remote_children: Vec::new(),
});

/// Runs `f` on the process table with interrupts disabled.
pub fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    hal::cpu::without_interrupts(|| f(&mut TABLE.lock()))
}

/// Why a process could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    NoSuchProgram,
    BadProgram(crate::elf::ElfError),
    OutOfMemory,
    ArgumentsTooLong,
    OutOfPids,
}

impl From<SpawnError> for Errno {
    fn from(error: SpawnError) -> Errno {
        match error {
            SpawnError::NoSuchProgram => Errno::ENOENT,
            SpawnError::BadProgram(_) => Errno::EINVAL,
            SpawnError::OutOfMemory => Errno::ENOMEM,
            SpawnError::ArgumentsTooLong => Errno::EINVAL,
            SpawnError::OutOfPids => Errno::EAGAIN,
        }
    }
}

impl Table {
    /// Sets the cluster number new pids are born with.
    pub fn set_cluster(&mut self, cluster: ClusterId) {
        self.cluster = cluster;
    }

    /// Creates a process running `program` from the boot archive with `args` (the program
    /// name is prepended as the first argument). Its main thread is ready to run.
    pub fn spawn(
        &mut self,
        program: &str,
        args: &[&str],
        parent: Option<Pid>,
    ) -> Result<Pid, SpawnError> {
        let pid = self.reserve_pid().ok_or(SpawnError::OutOfPids)?;
        self.spawn_as(pid, program, args, parent)
    }

    /// A fresh pid born on this cluster (for a process created here or, on request, elsewhere).
    pub fn reserve_pid(&mut self) -> Option<Pid> {
        let pid = Pid::new(self.cluster, self.next_local)?;
        self.next_local += 1;
        Some(pid)
    }

    /// Creates a process with a pid reserved earlier (here, or by the cluster that asked for a
    /// remote spawn: that cluster is then the process's home).
    pub fn spawn_as(
        &mut self,
        pid: Pid,
        program: &str,
        args: &[&str],
        parent: Option<Pid>,
    ) -> Result<Pid, SpawnError> {
        if self.processes.contains_key(&pid) {
            return Err(SpawnError::OutOfPids);
        }
        let file = crate::ramdisk::find(program).ok_or(SpawnError::NoSuchProgram)?;
        let mut arg_bytes = Vec::new();
        for arg in core::iter::once(&program).chain(args.iter()) {
            arg_bytes.extend_from_slice(arg.as_bytes());
            arg_bytes.push(0);
        }
        if arg_bytes.len() > abi::SPAWN_ARGS_MAX {
            return Err(SpawnError::ArgumentsTooLong);
        }
        let mut space = AddressSpace::new().map_err(|_| SpawnError::OutOfMemory)?;
        let (executable, mut map) =
            memory::load_program(&mut space, file.data).map_err(|e| match e {
                LoadError::Elf(e) => SpawnError::BadProgram(e),
                LoadError::OutOfMemory => SpawnError::OutOfMemory,
            })?;
        let stack_base =
            memory::place_stack(&map, MAIN_STACK_SIZE).ok_or(SpawnError::OutOfMemory)?;
        let stack = StackExtent {
            base: stack_base,
            size: MAIN_STACK_SIZE,
            guard: STACK_GUARD,
        };
        map.insert(Segment {
            start: stack.base,
            len: stack.size,
            perms: Perms::RW,
            kind: SegmentKind::Stack,
            backing: Backing::Anonymous,
        });
        // Arguments sit at the top of the main stack; below them, a zero return address.
        let args_at = (stack.top() - arg_bytes.len() as u64) & !0xF;
        let rsp = args_at - 8;
        memory::copy_to_user(&mut space, &map, args_at, &arg_bytes)
            .map_err(|_| SpawnError::OutOfMemory)?;
        memory::copy_to_user(&mut space, &map, rsp, &0u64.to_le_bytes())
            .map_err(|_| SpawnError::OutOfMemory)?;

        let name: String = program.chars().take(abi::PROC_NAME_MAX).collect();
        let header = Header {
            flags: uarea::UAreaFlags::EMPTY,
            pid,
            parent,
            name,
            birth_cluster: pid.birth_cluster(),
            current_cluster: self.cluster,
        };
        let mut uarea = UArea::new(header, map);
        uarea.sched.quantum_ns = DEFAULT_QUANTUM_NS.load(core::sync::atomic::Ordering::Relaxed);
        let mut context = Context::new_user(executable.entry, args_at, rsp);
        context.rsi = arg_bytes.len() as u64;
        uarea.add_thread(context, stack);
        self.processes.insert(
            pid,
            Process {
                uarea,
                space,
                console: String::new(),
            },
        );
        self.ready.push_back(pid);
        log::info!("spawned process {pid} `{program}`");
        Ok(pid)
    }

    /// Prints and clears a process's unfinished console line (before it leaves the cluster).
    pub fn flush_console(&mut self, pid: Pid) {
        if let Some(process) = self.processes.get_mut(&pid) {
            flush_console(pid, &process.uarea.header.name, &mut process.console);
        }
    }

    /// Adds a process that arrived from another cluster (or a checkpoint). Its runnable
    /// threads join the run queue.
    pub fn insert_restored(&mut self, uarea: UArea, space: AddressSpace) -> Result<(), Errno> {
        let pid = uarea.header.pid;
        if self.processes.contains_key(&pid) {
            return Err(Errno::EEXIST);
        }
        // A child that comes back is a local child again.
        self.remote_children.retain(|(_, child, _)| *child != pid);
        let runnable = !uarea.sched.run_queue.is_empty();
        self.processes.insert(
            pid,
            Process {
                uarea,
                space,
                console: String::new(),
            },
        );
        if runnable {
            self.ready.push_back(pid);
        }
        Ok(())
    }

    /// Removes a process that now lives on another cluster. Its frames are freed; no exit
    /// code is recorded (it did not exit).
    pub fn remove_migrated(&mut self, pid: Pid) -> Option<Process> {
        self.ready.retain(|p| *p != pid);
        self.processes.remove(&pid)
    }

    /// Puts a thread at the back of its process's run queue.
    pub fn make_ready(&mut self, pid: Pid, tid: Tid) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        let Some(thread) = process.uarea.thread_mut(tid) else {
            return;
        };
        thread.state = ThreadState::Ready;
        let queue = &mut process.uarea.sched.run_queue;
        if !queue.contains(&tid) {
            queue.push(tid);
        }
        if !self.ready.contains(&pid) {
            self.ready.push_back(pid);
        }
    }

    /// Wakes a blocked thread by making it re-issue its system call (rewinding `rip` to the
    /// `syscall` instruction). The call then finds what it waited for, or blocks again.
    pub fn restart_blocked(&mut self, pid: Pid, tid: Tid) {
        if let Some(thread) = self
            .processes
            .get_mut(&pid)
            .and_then(|p| p.uarea.thread_mut(tid))
        {
            if matches!(thread.state, ThreadState::Blocked(_)) {
                thread.context.rip -= abi::conv::SYSCALL_INSN_LEN;
                self.make_ready(pid, tid);
            }
        }
    }

    /// Restarts every thread of `pid` blocked on one of its endpoints of `kind` (receiving
    /// side) bound to `port`, as `blocked_on` tells from the block reason.
    pub fn wake_endpoint_waiters(
        &mut self,
        pid: Pid,
        kind: uarea::EndpointKind,
        port: abi::PortId,
        blocked_on: fn(&uarea::BlockReason) -> Option<u32>,
    ) {
        let Some(process) = self.processes.get(&pid) else {
            return;
        };
        let descriptors: Vec<u32> = process
            .uarea
            .endpoints
            .iter()
            .filter(|e| e.kind == kind && e.role == uarea::Role::Receiver && e.local_port == port)
            .map(|e| e.descriptor)
            .collect();
        let waiting: Vec<Tid> = process
            .uarea
            .threads
            .iter()
            .filter(|t| match &t.state {
                ThreadState::Blocked(reason) => {
                    blocked_on(reason).is_some_and(|d| descriptors.contains(&d))
                }
                _ => false,
            })
            .map(|t| t.tid)
            .collect();
        for tid in waiting {
            self.restart_blocked(pid, tid);
        }
    }

    /// Wakes a blocked thread with `result` as its system call's return value.
    pub fn complete_blocked(&mut self, pid: Pid, tid: Tid, result: Result<usize, Errno>) {
        if let Some(thread) = self
            .processes
            .get_mut(&pid)
            .and_then(|p| p.uarea.thread_mut(tid))
        {
            if matches!(thread.state, ThreadState::Blocked(_)) {
                thread.context.rax = abi::SyscallResult::encode(result).raw() as u64;
                self.make_ready(pid, tid);
            }
        }
    }

    /// Ends a process: frees its memory, wakes a parent waiting for it, and keeps its exit
    /// code until it is reaped.
    pub fn exit_process(&mut self, pid: Pid, code: i32) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        if process.uarea.exit.exit_code.is_some() {
            return; // already a zombie
        }
        flush_console(pid, &process.uarea.header.name, &mut process.console);
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
        match parent.filter(|p| self.processes.contains_key(p)) {
            Some(parent) => self.wake_child_waiters(parent),
            None => self.reap_now(pid, code),
        }
    }

    /// Records the exit of a process that died on another cluster (reported by its host):
    /// its parent here can now reap it, else it is kept as an orphan exit.
    pub fn record_remote_exit(&mut self, pid: Pid, code: i32) {
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

    /// True if `pid` exists and has not exited.
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.processes
            .get(&pid)
            .is_some_and(|p| p.uarea.exit.exit_code.is_none())
    }

    /// One `proc_list` record per process.
    pub fn list(&self) -> Vec<ProcessInfo> {
        self.processes.values().map(|p| info(&p.uarea)).collect()
    }

    /// Appends console output of `pid`, printing each complete line tagged with the process.
    pub fn console_write(&mut self, pid: Pid, bytes: &[u8]) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        let name = &process.uarea.header.name;
        for &byte in bytes {
            match byte {
                b'\n' => flush_console(pid, name, &mut process.console),
                b'\r' => {}
                0x20..=0x7E | b'\t' => process.console.push(byte as char),
                _ => process.console.push('?'),
            }
            if process.console.len() >= CONSOLE_LINE_MAX {
                flush_console(pid, name, &mut process.console);
            }
        }
    }
}

/// Lines of process output kept for the monitor's `console` command and for tests.
const CONSOLE_HISTORY: usize = 512;
static HISTORY: Mutex<VecDeque<(Pid, String)>> = Mutex::new(VecDeque::new());

/// Prints a complete console line of a process: `[p1.3 hello] text`.
fn flush_console(pid: Pid, name: &str, line: &mut String) {
    if !line.is_empty() {
        hal::println!("[p{pid} {name}] {line}");
        let mut history = HISTORY.lock();
        if history.len() == CONSOLE_HISTORY {
            history.pop_front();
        }
        history.push_back((pid, core::mem::take(line)));
    }
}

/// The recent console lines of `pid` (all processes if `None`), oldest first.
pub fn console_history(pid: Option<Pid>) -> Vec<String> {
    hal::cpu::without_interrupts(|| {
        HISTORY
            .lock()
            .iter()
            .filter(|(p, _)| pid.is_none_or(|pid| pid == *p))
            .map(|(_, line)| line.clone())
            .collect()
    })
}

/// The `proc_list` record of a process.
pub fn info(uarea: &UArea) -> ProcessInfo {
    let mut record = ProcessInfo::ZERO;
    record.pid = uarea.header.pid.raw();
    record.parent = uarea.header.parent.map_or(0, |p| p.raw());
    record.birth_cluster = uarea.header.birth_cluster.0;
    record.current_cluster = uarea.header.current_cluster.0;
    record.threads = uarea
        .threads
        .iter()
        .filter(|t| !matches!(t.state, ThreadState::Exited { .. }))
        .count() as u16;
    let state = if uarea.exit.exit_code.is_some() {
        ProcessState::Zombie
    } else if uarea.is_frozen() {
        ProcessState::Frozen
    } else if uarea
        .threads
        .iter()
        .any(|t| matches!(t.state, ThreadState::Ready | ThreadState::Running))
    {
        ProcessState::Running
    } else {
        ProcessState::Blocked
    };
    record.state = state as u8;
    let name = uarea.header.name.as_bytes();
    let n = name.len().min(record.name.len());
    record.name[..n].copy_from_slice(&name[..n]);
    record.cpu_time_ns = uarea.counters.cpu_time_ns;
    record.mapped_bytes = uarea.memory.mapped_bytes();
    record.syscalls = uarea.counters.syscalls;
    record.migrations = uarea.counters.migrations as u32;
    record
}
