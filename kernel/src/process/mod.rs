//! User processes: the process table, creation from the boot archive, exit, kill and listing.
//!
//! Everything a process is — identity, threads and their saved contexts, run queue, memory
//! map, endpoints, counters — lives in its [`UArea`]. The only other per-process state is
//! kernel-local and rebuilt on any cluster: the page tables and frames ([`AddressSpace`]) and
//! a partial console line. That split is what lets migration move a process by shipping its
//! UArea and its pages.

mod children;
pub mod console;
pub mod context;
pub mod exit;
pub mod fault;
pub mod memory;
mod pids;
pub mod remote;
pub mod scheduler;
pub mod throttle;

pub use console::console_history;
pub use exit::set_exit_hook;

use abi::{ClusterId, Errno, Pid, ProcessInfo, ProcessState, Tid};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
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
const CONSOLE_LINE_MAX: usize = abi::limits::CONSOLE_LINE_BYTES;
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
    /// Exit codes of processes no parent here waits for (orphans, and processes born here
    /// that ended elsewhere).
    orphan_exits: VecDeque<(Pid, i32)>,
    /// Processes born here that live on other clusters (their numbers are not reused).
    departed: BTreeSet<Pid>,
    /// Processes a migration throttles (kernel-local: never in an image).
    throttles: throttle::Throttles,
}

pub static TABLE: Mutex<Table> = Mutex::new(Table {
    processes: BTreeMap::new(),
    ready: VecDeque::new(),
    current: None,
    next_local: 1,
    cluster: ClusterId(0),
    orphan_exits: VecDeque::new(),
    departed: BTreeSet::new(),
    throttles: throttle::Throttles::new(),
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
    /// The parent has `CHILDREN_PER_PROCESS` children not yet reaped.
    TooManyChildren,
    /// The cluster holds `PROCESSES_PER_CLUSTER` processes.
    TooManyProcesses,
}

impl From<SpawnError> for Errno {
    fn from(error: SpawnError) -> Errno {
        match error {
            SpawnError::NoSuchProgram => Errno::ENOENT,
            SpawnError::BadProgram(_) => Errno::EINVAL,
            SpawnError::OutOfMemory => Errno::ENOMEM,
            SpawnError::ArgumentsTooLong => Errno::EINVAL,
            SpawnError::OutOfPids => Errno::EAGAIN,
            SpawnError::TooManyChildren => Errno::EAGAIN,
            SpawnError::TooManyProcesses => Errno::EAGAIN,
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
        let spawned = self.spawn_as(pid, program, args, parent);
        if spawned.is_err() {
            self.arrived(pid); // nothing has the number: free it again
        }
        spawned
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
        if self.processes.len() >= abi::limits::PROCESSES_PER_CLUSTER {
            return Err(SpawnError::TooManyProcesses);
        }
        if let Some(parent) = parent {
            if self.children_of(parent) >= abi::limits::CHILDREN_PER_PROCESS {
                return Err(SpawnError::TooManyChildren);
            }
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
        self.arrived(pid);
        if let Some(parent) = parent.filter(|p| self.processes.contains_key(p)) {
            // Checked above: the parent has room (a parent elsewhere recorded it at `spawn`).
            let _ = self.add_child(parent, pid, self.cluster);
        }
        log::info!("spawned process {pid} `{program}`");
        Ok(pid)
    }

    /// Prints and clears a process's unfinished console line (before it leaves the cluster).
    pub fn flush_console(&mut self, pid: Pid) {
        if let Some(process) = self.processes.get_mut(&pid) {
            console::flush_console(pid, &process.uarea.header.name, &mut process.console);
        }
    }

    /// Adds a process that arrived from another cluster (or a checkpoint). Its runnable
    /// threads join the run queue.
    pub fn insert_restored(&mut self, uarea: UArea, space: AddressSpace) -> Result<(), Errno> {
        let pid = uarea.header.pid;
        if self.processes.contains_key(&pid) {
            return Err(Errno::EEXIST);
        }
        self.arrived(pid);
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
        self.lift_throttle(pid);
        let process = self.processes.remove(&pid);
        if process.is_some() {
            self.departed(pid);
            self.reap_zombies_of(pid);
        }
        process
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
