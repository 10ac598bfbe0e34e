//! Semantic checks run on every decoded UArea.
//!
//! A checksum only proves the bytes are the ones that were sent. These checks
//! prove they describe a process the kernel can restore without harming
//! itself: every address a user address, every reference resolved, no
//! privileged register bits, tables within limits. `docs/uarea.md` lists them.

use alloc::vec::Vec;

use abi::types::{PAGE_SIZE, USER_END};
use abi::{ClusterId, Pid, Tid, PROC_NAME_MAX};

use crate::endpoint::{EndpointKind, Role};
use crate::error::{AddressFault, Invariant};
use crate::header::UAreaFlags;
use crate::memory::{Perms, SegmentKind};
use crate::thread::{BlockReason, FxSave, ThreadState, RFLAGS_IF, RFLAGS_RESERVED_ONE};
use crate::thread::{Thread, RFLAGS_USER_MASK};
use crate::UArea;

mod items;
use items::{validate_endpoint, validate_segment};

/// Most threads in one process.
pub const MAX_THREADS: usize = abi::limits::THREADS_PER_PROCESS;
/// Most segments in one process.
pub const MAX_SEGMENTS: usize = abi::limits::MAPPINGS_PER_PROCESS;
/// Most endpoints in one process.
pub const MAX_ENDPOINTS: usize = abi::limits::ENDPOINTS_PER_PROCESS;
/// Descriptors are below this: the kernel hands out the lowest free one, and a process holds
/// at most [`MAX_ENDPOINTS`], so a larger descriptor is forged (and its successor could
/// overflow).
pub const DESCRIPTOR_LIMIT: u32 = MAX_ENDPOINTS as u32;
/// Executable code must end this far below the end of the user half: a `syscall` in the last
/// bytes would return (`sysret`) to a non-canonical address, which faults in ring 0.
pub const EXEC_TOP_GAP: u64 = PAGE;

const PAGE: u64 = PAGE_SIZE as u64;
/// First address of the kernel (upper canonical) half.
const KERNEL_START: u64 = 0xffff_8000_0000_0000;

/// Classify `addr` as a user address (any alignment, null page allowed).
pub fn check_user_addr(addr: u64) -> Result<(), AddressFault> {
    if addr < USER_END {
        Ok(())
    } else if addr >= KERNEL_START {
        Err(AddressFault::KernelHalf)
    } else {
        Err(AddressFault::NonCanonical)
    }
}

/// Check that `[start, start + len)` is a page-aligned user range above the
/// null page.
pub fn check_user_range(start: u64, len: u64) -> Result<(), AddressFault> {
    check_user_addr(start)?;
    if start < PAGE {
        return Err(AddressFault::NullPage);
    }
    if !start.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
        return Err(AddressFault::Unaligned);
    }
    match start.checked_add(len) {
        Some(end) if end <= USER_END => Ok(()),
        _ => Err(AddressFault::CrossesUserEnd),
    }
}

/// `Unaligned` unless `value` is a multiple of `align`.
fn aligned(value: u64, align: u64) -> Result<(), AddressFault> {
    if value.is_multiple_of(align) {
        Ok(())
    } else {
        Err(AddressFault::Unaligned)
    }
}

fn addr(what: &'static str, value: u64, check: Result<(), AddressFault>) -> Result<(), Invariant> {
    check.map_err(|fault| Invariant::BadAddress {
        what,
        addr: value,
        fault,
    })
}

fn too_many(what: &'static str, count: usize, max: usize) -> Result<(), Invariant> {
    if count > max {
        Err(Invariant::TooMany { what, count, max })
    } else {
        Ok(())
    }
}

fn valid_pid(what: &'static str, pid: Pid) -> Result<(), Invariant> {
    if pid.is_valid() {
        Ok(())
    } else {
        Err(Invariant::InvalidPid {
            what,
            raw: pid.raw(),
        })
    }
}

impl UArea {
    /// Check every semantic invariant; `decode` runs this on every image.
    pub fn validate(&self) -> Result<(), Invariant> {
        self.validate_header()?;
        self.validate_memory()?;
        self.validate_endpoints()?;
        self.validate_threads()?;
        self.validate_sched_and_exit()?;
        Ok(())
    }

    fn validate_header(&self) -> Result<(), Invariant> {
        let header = &self.header;
        if !header.flags.is_known() {
            return Err(Invariant::UnknownFlags {
                what: "header.flags",
                bits: header.flags.bits(),
            });
        }
        valid_pid("header.pid", header.pid)?;
        if header.pid.birth_cluster() != header.birth_cluster {
            return Err(Invariant::BirthClusterMismatch {
                pid: header.pid.birth_cluster(),
                header: header.birth_cluster,
            });
        }
        if let Some(parent) = header.parent {
            valid_pid("header.parent", parent)?;
            if parent == header.pid {
                return Err(Invariant::ParentIsSelf);
            }
        }
        let name = header.name.as_bytes();
        if name.is_empty()
            || name.len() > PROC_NAME_MAX
            || !name.iter().all(|b| b.is_ascii_graphic())
        {
            return Err(Invariant::BadName { len: name.len() });
        }
        Ok(())
    }

    fn validate_memory(&self) -> Result<(), Invariant> {
        let memory = &self.memory;
        too_many("segments", memory.segments.len(), MAX_SEGMENTS)?;
        for segment in &memory.segments {
            validate_segment(segment)?;
        }
        for pair in memory.segments.windows(2) {
            if pair[0].start > pair[1].start {
                return Err(Invariant::SegmentsUnsorted);
            }
            if pair[0].end() > pair[1].start {
                return Err(Invariant::SegmentsOverlap {
                    first: pair[0].start,
                    second: pair[1].start,
                });
            }
        }
        let mut heaps = memory
            .segments
            .iter()
            .filter(|s| s.kind == SegmentKind::Heap);
        let heap = heaps.next();
        if heaps.next().is_some() {
            return Err(Invariant::MultipleHeaps);
        }
        let break_ok = match heap {
            Some(heap) => memory.heap_break >= heap.start && memory.heap_break <= heap.end(),
            None => memory.heap_break == 0,
        };
        if !break_ok {
            return Err(Invariant::HeapBreakOutsideHeap {
                heap_break: memory.heap_break,
            });
        }
        addr(
            "memory.mmap_cursor",
            memory.mmap_cursor,
            check_user_addr(memory.mmap_cursor).and(aligned(memory.mmap_cursor, PAGE)),
        )
    }

    fn validate_endpoints(&self) -> Result<(), Invariant> {
        too_many("endpoints", self.endpoints.len(), MAX_ENDPOINTS)?;
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            validate_endpoint(endpoint)?;
            for earlier in &self.endpoints[..i] {
                if earlier.descriptor == endpoint.descriptor {
                    return Err(Invariant::DuplicateDescriptor(endpoint.descriptor));
                }
                if endpoint.role == Role::Receiver
                    && earlier.role == Role::Receiver
                    && earlier.kind == endpoint.kind
                    && earlier.local_port == endpoint.local_port
                {
                    return Err(Invariant::DuplicatePort {
                        descriptor: endpoint.descriptor,
                    });
                }
            }
        }
        Ok(())
    }

    fn validate_threads(&self) -> Result<(), Invariant> {
        if self.threads.is_empty() {
            return Err(Invariant::NoThreads);
        }
        too_many("threads", self.threads.len(), MAX_THREADS)?;
        if self.thread_count as usize != self.threads.len() {
            return Err(Invariant::ThreadCountMismatch {
                declared: self.thread_count,
                actual: self.threads.len(),
            });
        }
        let frozen = self.header.flags.contains(UAreaFlags::FROZEN);
        for (i, thread) in self.threads.iter().enumerate() {
            if self.threads[..i].iter().any(|t| t.tid == thread.tid) {
                return Err(Invariant::DuplicateTid(thread.tid));
            }
            if thread.tid >= self.next_tid {
                return Err(Invariant::TidNotBelowNextTid {
                    tid: thread.tid,
                    next_tid: self.next_tid,
                });
            }
            self.validate_thread(thread, frozen)?;
        }
        // Live stacks must not overlap each other.
        let live: Vec<&Thread> = self.threads.iter().filter(|t| is_live(t)).collect();
        for (i, a) in live.iter().enumerate() {
            for b in &live[i + 1..] {
                if a.stack.base < b.stack.top() && b.stack.base < a.stack.top() {
                    return Err(Invariant::StacksOverlap(a.tid, b.tid));
                }
            }
        }
        Ok(())
    }

    fn validate_thread(&self, thread: &Thread, frozen: bool) -> Result<(), Invariant> {
        let tid = thread.tid;
        let ctx = &thread.context;
        addr("context.rip", ctx.rip, check_user_addr(ctx.rip))?;
        addr("context.rsp", ctx.rsp, check_user_addr(ctx.rsp))?;
        addr("context.fs_base", ctx.fs_base, check_user_addr(ctx.fs_base))?;
        addr("context.gs_base", ctx.gs_base, check_user_addr(ctx.gs_base))?;
        let required = RFLAGS_IF | RFLAGS_RESERVED_ONE;
        if ctx.rflags & !RFLAGS_USER_MASK != 0 || ctx.rflags & required != required {
            return Err(Invariant::BadRflags {
                tid,
                rflags: ctx.rflags,
            });
        }
        let mxcsr = ctx.fxsave.mxcsr();
        if mxcsr >> 16 != 0 {
            return Err(Invariant::BadMxcsr { tid, mxcsr });
        }
        debug_assert_eq!(ctx.fxsave.0.len(), FxSave::SIZE);

        match thread.state {
            ThreadState::Running if frozen => return Err(Invariant::RunningWhileFrozen(tid)),
            ThreadState::Blocked(BlockReason::PortalDma { .. }) if frozen => {
                return Err(Invariant::WriteInFlightWhileFrozen(tid))
            }
            ThreadState::Blocked(reason) => self.validate_block(tid, reason)?,
            _ => {}
        }
        if thread.restart_syscall && thread.state != ThreadState::Ready {
            return Err(Invariant::RestartNotReady(tid));
        }

        let stack = &thread.stack;
        addr(
            "stack",
            stack.base,
            check_user_range(stack.base, stack.size)
                .and(aligned(stack.guard, PAGE))
                .and(if stack.size == 0 {
                    Err(AddressFault::Unaligned)
                } else {
                    Ok(())
                }),
        )?;
        if !is_live(thread) {
            return Ok(());
        }
        let in_stack_segment = self
            .memory
            .segments
            .iter()
            .any(|s| s.kind == SegmentKind::Stack && s.covers(stack.base, stack.size));
        if !in_stack_segment {
            return Err(Invariant::StackOutsideSegments(tid));
        }
        let guard_start = stack.base.saturating_sub(stack.guard);
        if stack.guard > 0
            && self
                .memory
                .segments
                .iter()
                .any(|s| s.start < stack.base && guard_start < s.end())
        {
            return Err(Invariant::StackGuardMapped(tid));
        }
        let executable = self
            .memory
            .segment_at(ctx.rip)
            .is_some_and(|s| s.perms.contains(Perms::X));
        if !executable {
            return Err(Invariant::RipNotExecutable { tid, rip: ctx.rip });
        }
        Ok(())
    }

    fn validate_block(&self, tid: Tid, reason: BlockReason) -> Result<(), Invariant> {
        let endpoint = |descriptor: u32, kind: EndpointKind, role: Role| {
            let found = self
                .endpoints
                .iter()
                .any(|e| e.descriptor == descriptor && e.kind == kind && e.role == role);
            if found {
                Ok(())
            } else {
                Err(Invariant::BadBlockedEndpoint { tid, descriptor })
            }
        };
        match reason {
            BlockReason::Sleep { .. } => Ok(()),
            BlockReason::Join { tid: target } => {
                if target == tid || self.thread(target).is_none() {
                    Err(Invariant::UnknownTid {
                        what: "Blocked::Join",
                        tid: target,
                    })
                } else {
                    Ok(())
                }
            }
            BlockReason::FutexWait { uaddr } => addr(
                "Blocked::FutexWait.uaddr",
                uaddr,
                check_user_addr(uaddr).and(aligned(uaddr, 4)),
            ),
            BlockReason::MailboxRead { descriptor } => {
                endpoint(descriptor, EndpointKind::Mailbox, Role::Receiver)
            }
            BlockReason::MailboxWrite { descriptor } => {
                endpoint(descriptor, EndpointKind::Mailbox, Role::Sender)
            }
            BlockReason::PortalRead { descriptor } => {
                endpoint(descriptor, EndpointKind::Portal, Role::Receiver)
            }
            BlockReason::PortalWrite { descriptor } => {
                endpoint(descriptor, EndpointKind::Portal, Role::Sender)
            }
            BlockReason::SyncWait { descriptor } => {
                endpoint(descriptor, EndpointKind::Sync, Role::Receiver)
            }
            BlockReason::RemotePage { .. } => Err(Invariant::WaitsForRemotePage { tid }),
            BlockReason::ChildWait { pid } => match pid {
                Some(pid) => valid_pid("Blocked::ChildWait.pid", pid),
                None => Ok(()),
            },
            BlockReason::PortalDma { descriptor } => {
                endpoint(descriptor, EndpointKind::Portal, Role::Sender)
            }
            BlockReason::Migrating { destination } => {
                // Not checked against `current_cluster`: a snapshot already names the
                // destination there.
                if destination.0 >= ClusterId::MAX_CLUSTERS {
                    Err(Invariant::BadMigrationDestination { tid, destination })
                } else {
                    Ok(())
                }
            }
        }
    }

    fn validate_sched_and_exit(&self) -> Result<(), Invariant> {
        if self.sched.quantum_ns == 0 {
            return Err(Invariant::ZeroQuantum);
        }
        for (i, &tid) in self.sched.run_queue.iter().enumerate() {
            let ready = self
                .thread(tid)
                .is_some_and(|t| t.state == ThreadState::Ready);
            if !ready || self.sched.run_queue[..i].contains(&tid) {
                return Err(Invariant::RunQueueMismatch { tid });
            }
        }
        for thread in &self.threads {
            if thread.state == ThreadState::Ready && !self.sched.run_queue.contains(&thread.tid) {
                return Err(Invariant::RunQueueMismatch { tid: thread.tid });
            }
        }

        let exiting = self.header.flags.contains(UAreaFlags::EXITING);
        if exiting != self.exit.exit_code.is_some() {
            return Err(Invariant::ExitStateMismatch);
        }
        for (i, joiner) in self.exit.joiners.iter().enumerate() {
            let bad = joiner.waiter == joiner.target
                || self.thread(joiner.waiter).is_none()
                || self.thread(joiner.target).is_none()
                || self.exit.joiners[..i]
                    .iter()
                    .any(|j| j.waiter == joiner.waiter);
            if bad {
                return Err(Invariant::BadJoiner {
                    waiter: joiner.waiter,
                });
            }
        }
        too_many(
            "children",
            self.exit.children.len(),
            abi::limits::CHILDREN_PER_PROCESS,
        )?;
        for (i, child) in self.exit.children.iter().enumerate() {
            valid_pid("exit.children.pid", child.pid)?;
            if child.pid == self.header.pid
                || self.exit.children[..i].iter().any(|c| c.pid == child.pid)
            {
                return Err(Invariant::BadChild {
                    pid: child.pid.raw(),
                });
            }
        }
        Ok(())
    }
}

/// A thread whose stack and code must still be mapped.
fn is_live(thread: &Thread) -> bool {
    !matches!(thread.state, ThreadState::Exited { .. })
}
