//! Turning drawn numbers into a UArea that satisfies every invariant by construction.

use super::*;
use abi::types::USER_END;
use abi::{ClusterId, Pid, PortId, SyncMode, Tid, PROC_NAME_MAX};
use uarea::thread::{RFLAGS_IF, RFLAGS_RESERVED_ONE, RFLAGS_USER_MASK};

fn segment(start: u64, len: u64, perms: Perms, kind: SegmentKind, backing: Backing) -> Segment {
    Segment {
        start,
        len,
        perms,
        kind,
        backing,
    }
}

fn build_endpoint(descriptor: u32, raw: &RawEndpoint, birth: u16) -> Endpoint {
    let kind = [
        EndpointKind::Mailbox,
        EndpointKind::Portal,
        EndpointKind::Sync,
    ][raw.kind as usize];
    let role = if raw.receiver {
        Role::Receiver
    } else {
        Role::Sender
    };
    let pid = |local: u32| Pid::new(ClusterId(birth), local).unwrap();
    let remote = || match raw.peer {
        0 => Peer::Process {
            pid: pid(raw.pid_local),
            port: PortId(raw.port),
        },
        1 => Peer::Cluster {
            cluster: ClusterId(raw.port % 20),
            port: PortId(raw.port),
        },
        _ => Peer::Name(raw.name.clone()),
    };
    let mut flags = EndpointFlags::EMPTY;
    if raw.flags.0 {
        flags = flags.union(EndpointFlags::NONBLOCK);
    }
    if raw.flags.2 {
        flags = flags.union(EndpointFlags::REBOUND);
    }
    let peer = match (kind, role) {
        (EndpointKind::Sync, _) => {
            let mut members: Vec<Pid> = Vec::new();
            for &local in &raw.members {
                let member = pid(local);
                if !members.contains(&member) {
                    members.push(member);
                }
            }
            Peer::Group {
                mode: if raw.sync_mode {
                    SyncMode::OneToAll
                } else {
                    SyncMode::AllToOne
                },
                members,
            }
        }
        (EndpointKind::Mailbox, Role::Receiver) => Peer::None,
        (EndpointKind::Portal, Role::Receiver) => {
            if raw.flags.1 {
                flags = flags.union(EndpointFlags::ALLOWED);
                Peer::Process {
                    pid: pid(raw.pid_local),
                    port: PortId(raw.port),
                }
            } else {
                Peer::None
            }
        }
        (_, Role::Sender) => remote(),
    };
    Endpoint {
        descriptor,
        kind,
        role,
        // Unique per endpoint, so receivers never share a port.
        local_port: PortId(descriptor as u16),
        peer,
        flags,
        tx_seq: raw.seq.0,
        rx_seq: raw.seq.1,
    }
}

/// Turn raw numbers into a valid UArea.
pub fn build(raw: RawProcess) -> UArea {
    let pid = Pid::new(ClusterId(raw.birth), raw.local).unwrap();
    let parent = raw
        .parent
        .map(|(c, l)| Pid::new(ClusterId(c), l).unwrap())
        .filter(|&p| p != pid);
    let mut flags = UAreaFlags::EMPTY;
    flags.set(UAreaFlags::FROZEN, raw.frozen);
    flags.set(UAreaFlags::EXITING, raw.exit_code.is_some());
    assert!(raw.name.len() <= PROC_NAME_MAX);
    let header = Header {
        flags,
        pid,
        parent,
        name: raw.name.clone(),
        birth_cluster: ClusterId(raw.birth),
        current_cluster: ClusterId(raw.current),
    };

    // Fixed user layout: text, data, bss back to back, then heap, mmaps, stacks.
    let mut memory = MemoryMap::default();
    let text_len = raw.text_pages * PAGE;
    memory.insert(segment(
        TEXT_START,
        text_len,
        Perms::RX,
        SegmentKind::Text,
        Backing::Image {
            offset: PAGE,
            len: text_len - 17,
        },
    ));
    let data_start = TEXT_START + text_len;
    let data_len = raw.data_pages * PAGE;
    memory.insert(segment(
        data_start,
        data_len,
        Perms::RW,
        SegmentKind::Data,
        Backing::Image {
            offset: PAGE + text_len,
            len: data_len / 2,
        },
    ));
    if raw.bss_pages > 0 {
        memory.insert(segment(
            data_start + data_len,
            raw.bss_pages * PAGE,
            Perms::RW,
            SegmentKind::Bss,
            Backing::Anonymous,
        ));
    }
    if let Some((pages, brk)) = raw.heap {
        let len = pages * PAGE;
        memory.insert(segment(
            HEAP_START,
            len,
            Perms::RW,
            SegmentKind::Heap,
            Backing::Anonymous,
        ));
        memory.heap_break = HEAP_START + brk % (len + 1);
    }
    for (i, &(pages, perm)) in raw.mmaps.iter().enumerate() {
        let perms = [Perms::NONE, Perms::R, Perms::RW, Perms::RX][perm as usize];
        memory.insert(segment(
            MMAP_START + i as u64 * MMAP_STRIDE,
            pages * PAGE,
            perms,
            SegmentKind::Mmap,
            Backing::Anonymous,
        ));
    }
    memory.mmap_cursor = MMAP_START + raw.mmap_cursor_pages * PAGE;

    let endpoints: Vec<Endpoint> = raw
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| build_endpoint(3 + 2 * i as u32, e, raw.birth))
        .collect();

    // Tids: strictly increasing, so unique.
    let mut tids = Vec::new();
    let mut next = raw.first_tid;
    for t in &raw.threads {
        tids.push(Tid(next));
        next += t.tid_gap;
    }
    let next_tid = Tid(tids.last().unwrap().0 + 1 + raw.extra_next_tid);

    let mut threads = Vec::new();
    let mut joiners = Vec::new();
    for (i, (t, &tid)) in raw.threads.iter().zip(&tids).enumerate() {
        let slot_top = STACK_REGION_TOP - i as u64 * STACK_SLOT;
        let size = t.stack_pages * PAGE;
        let stack = StackExtent {
            base: slot_top - size,
            size,
            guard: t.guard_pages * PAGE,
        };
        memory.insert(segment(
            stack.base,
            size,
            Perms::RW,
            SegmentKind::Stack,
            Backing::Anonymous,
        ));

        let pick = t.pick as usize;
        let of_kind = |kind: EndpointKind, role: Role| {
            let matching: Vec<u32> = endpoints
                .iter()
                .filter(|e| e.kind == kind && e.role == role)
                .map(|e| e.descriptor)
                .collect();
            (!matching.is_empty()).then(|| matching[pick % matching.len()])
        };
        let blocked = |reason| Some(ThreadState::Blocked(reason));
        let state = match t.state % 14 {
            0..=2 => Some(ThreadState::Ready),
            3 if !raw.frozen => Some(ThreadState::Running),
            4 => Some(ThreadState::Exited { code: t.code }),
            5 => blocked(BlockReason::Sleep {
                deadline_ns: t.code,
            }),
            6 if tids.len() > 1 => {
                let target = tids[(i + 1 + pick % (tids.len() - 1)) % tids.len()];
                joiners.push(Joiner {
                    waiter: tid,
                    target,
                });
                blocked(BlockReason::Join { tid: target })
            }
            7 => blocked(BlockReason::FutexWait {
                uaddr: data_start + (t.code % data_len) / 4 * 4,
            }),
            8 => of_kind(EndpointKind::Mailbox, Role::Receiver)
                .and_then(|descriptor| blocked(BlockReason::MailboxRead { descriptor })),
            9 => of_kind(EndpointKind::Portal, Role::Sender)
                .and_then(|descriptor| blocked(BlockReason::PortalWrite { descriptor })),
            10 => of_kind(EndpointKind::Sync, Role::Receiver)
                .and_then(|descriptor| blocked(BlockReason::SyncWait { descriptor })),
            11 => blocked(BlockReason::ChildWait {
                pid: Pid::new(ClusterId(raw.birth), 1 + t.pick % Pid::MAX_LOCAL),
            }),
            12 if !raw.frozen => of_kind(EndpointKind::Portal, Role::Sender)
                .and_then(|descriptor| blocked(BlockReason::PortalDma { descriptor })),
            13 => {
                let destination = ClusterId((t.pick % ClusterId::MAX_CLUSTERS as u32) as u16);
                blocked(BlockReason::Migrating { destination })
            }
            _ => None,
        }
        .unwrap_or(ThreadState::Ready);

        let g = t.gprs;
        let mut fxsave = [0u8; FxSave::SIZE];
        fxsave.copy_from_slice(&t.fxsave);
        fxsave[FxSave::MXCSR_OFFSET + 2] = 0;
        fxsave[FxSave::MXCSR_OFFSET + 3] = 0;
        let context = Context {
            rax: g[0],
            rbx: g[1],
            rcx: g[2],
            rdx: g[3],
            rsi: g[4],
            rdi: g[5],
            rbp: g[6],
            rsp: stack.base + g[7] % (size + 1),
            r8: g[8],
            r9: g[9],
            r10: g[10],
            r11: g[11],
            r12: g[12],
            r13: g[13],
            r14: g[14],
            r15: g[15],
            rip: TEXT_START + t.rip_offset % text_len,
            rflags: (t.rflags_bits & RFLAGS_USER_MASK) | RFLAGS_IF | RFLAGS_RESERVED_ONE,
            fs_base: t.tls.0 % USER_END,
            gs_base: t.tls.1 % USER_END,
            fxsave: FxSave(fxsave),
        };
        threads.push(Thread {
            tid,
            state,
            context,
            restart_syscall: t.restart && state == ThreadState::Ready,
            stack,
        });
    }

    // The run queue: the Ready threads in a random order.
    let mut run_queue: Vec<(u64, Tid)> = threads
        .iter()
        .filter(|t| t.state == ThreadState::Ready)
        .enumerate()
        .map(|(i, t)| (raw.shuffle[i % raw.shuffle.len()] ^ i as u64, t.tid))
        .collect();
    run_queue.sort();

    let [syscalls, page_faults, context_switches, migrations, cpu_time_ns] = raw.counters;
    // A few children, born on other clusters than the process (so never the process itself).
    let children = (0..u32::from(raw.priority % 4))
        .map(|n| uarea::Child {
            pid: Pid::new(ClusterId(raw.birth.wrapping_add(1 + n as u16) % 256), 1 + n).unwrap(),
            cluster: ClusterId(n as u16),
            moves: n,
            exit_code: (n % 2 == 1).then_some(-(n as i32)),
        })
        .filter(|c| c.pid != header.pid)
        .collect();
    UArea {
        header,
        thread_count: threads.len() as u32,
        next_tid,
        threads,
        sched: Sched {
            run_queue: run_queue.into_iter().map(|(_, tid)| tid).collect(),
            priority: raw.priority,
            quantum_ns: raw.quantum_ns,
        },
        exit: ExitState {
            exit_code: raw.exit_code,
            joiners,
            children,
        },
        memory,
        endpoints,
        counters: Counters {
            syscalls,
            page_faults,
            context_switches,
            migrations,
            cpu_time_ns,
        },
    }
}
