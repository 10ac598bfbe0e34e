//! proptest strategies for arbitrary *valid* UAreas.
//!
//! The strategies draw raw numbers ([`RawProcess`]) and [`build`] turns them
//! into a process that satisfies every invariant of `UArea::validate` by
//! construction: segments laid out in disjoint regions, every thread's stack
//! in its own `Stack` segment with an unmapped guard below, `rip` in the text
//! segment, blocked threads pointing at endpoints of the right kind, and the
//! run queue a shuffle of the `Ready` threads.

use abi::Pid;
use proptest::collection::vec;
use proptest::prelude::*;
use uarea::*;

mod build;

pub use build::build;

const PAGE: u64 = 4096;
const TEXT_START: u64 = 0x40_0000;
const HEAP_START: u64 = 0x1000_0000;
const MMAP_START: u64 = 0x2000_0000;
const MMAP_STRIDE: u64 = 0x100_0000;
/// Each thread's stack lives in its own 1 MiB slot below this address.
const STACK_REGION_TOP: u64 = 0x7fff_0000_0000;
const STACK_SLOT: u64 = 0x10_0000;

#[derive(Clone, Debug)]
pub struct RawThread {
    tid_gap: u32,
    state: u8,
    pick: u32,
    code: u64,
    restart: bool,
    gprs: [u64; 16],
    rip_offset: u64,
    rflags_bits: u64,
    tls: (u64, u64),
    fxsave: Vec<u8>,
    stack_pages: u64,
    guard_pages: u64,
}

#[derive(Clone, Debug)]
pub struct RawEndpoint {
    kind: u8,
    receiver: bool,
    peer: u8,
    pid_local: u32,
    port: u16,
    name: String,
    members: Vec<u32>,
    sync_mode: bool,
    flags: (bool, bool, bool),
    seq: (u64, u64),
}

#[derive(Clone, Debug)]
pub struct RawProcess {
    birth: u16,
    local: u32,
    parent: Option<(u16, u32)>,
    name: String,
    current: u16,
    frozen: bool,
    exit_code: Option<i32>,
    text_pages: u64,
    data_pages: u64,
    bss_pages: u64,
    heap: Option<(u64, u64)>,
    mmaps: Vec<(u64, u8)>,
    mmap_cursor_pages: u64,
    first_tid: u32,
    extra_next_tid: u32,
    threads: Vec<RawThread>,
    endpoints: Vec<RawEndpoint>,
    priority: u8,
    quantum_ns: u64,
    counters: [u64; 5],
    shuffle: Vec<u64>,
}

fn raw_thread() -> impl Strategy<Value = RawThread> {
    (
        (
            1u32..4,
            any::<u8>(),
            any::<u32>(),
            any::<u64>(),
            any::<bool>(),
        ),
        any::<[u64; 16]>(),
        (any::<u64>(), any::<u64>(), (any::<u64>(), any::<u64>())),
        vec(any::<u8>(), 512),
        (1u64..16, 0u64..3),
    )
        .prop_map(
            |(
                (tid_gap, state, pick, code, restart),
                gprs,
                (rip_offset, rflags_bits, tls),
                fxsave,
                (stack_pages, guard_pages),
            )| RawThread {
                tid_gap,
                state,
                pick,
                code,
                restart,
                gprs,
                rip_offset,
                rflags_bits,
                tls,
                fxsave,
                stack_pages,
                guard_pages,
            },
        )
}

fn raw_endpoint() -> impl Strategy<Value = RawEndpoint> {
    (
        (
            0u8..3,
            any::<bool>(),
            0u8..3,
            1u32..=Pid::MAX_LOCAL,
            any::<u16>(),
        ),
        "[a-z][a-z0-9/._-]{0,31}",
        vec(1u32..1000, 1..8),
        any::<bool>(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |((kind, receiver, peer, pid_local, port), name, members, sync_mode, flags, seq)| {
                RawEndpoint {
                    kind,
                    receiver,
                    peer,
                    pid_local,
                    port,
                    name,
                    members,
                    sync_mode,
                    flags,
                    seq,
                }
            },
        )
}

/// Raw numbers for a process with 1..=16 threads.
pub fn raw_process() -> impl Strategy<Value = RawProcess> {
    (
        (
            0u16..256,
            1u32..=Pid::MAX_LOCAL,
            proptest::option::of((0u16..256, 1u32..=Pid::MAX_LOCAL)),
            "[a-z][a-z0-9_-]{0,15}",
            any::<u16>(),
            any::<bool>(),
            proptest::option::of(any::<i32>()),
        ),
        (
            1u64..64,
            1u64..8,
            0u64..8,
            proptest::option::of((1u64..256, any::<u64>())),
            vec((1u64..16, 0u8..4), 0..4),
            0u64..0x10_0000,
        ),
        (0u32..8, 0u32..4, vec(raw_thread(), 1..=16)),
        vec(raw_endpoint(), 0..8),
        (any::<u8>(), 1u64..100_000_000, any::<[u64; 5]>()),
        vec(any::<u64>(), 16),
    )
        .prop_map(
            |(
                (birth, local, parent, name, current, frozen, exit_code),
                (text_pages, data_pages, bss_pages, heap, mmaps, mmap_cursor_pages),
                (first_tid, extra_next_tid, threads),
                endpoints,
                (priority, quantum_ns, counters),
                shuffle,
            )| RawProcess {
                birth,
                local,
                parent,
                name,
                current,
                frozen,
                exit_code,
                text_pages,
                data_pages,
                bss_pages,
                heap,
                mmaps,
                mmap_cursor_pages,
                first_tid,
                extra_next_tid,
                threads,
                endpoints,
                priority,
                quantum_ns,
                counters,
                shuffle,
            },
        )
}

/// Arbitrary valid UAreas.
pub fn uarea() -> impl Strategy<Value = UArea> {
    raw_process().prop_map(build)
}
