//! The UArea: every piece of per-process kernel state that moves with a
//! process when it migrates to another cluster.
//!
//! # Why
//!
//! Tessera runs one microkernel per cluster; a process migrates by freezing
//! its threads at the user/kernel boundary, shipping its memory and this one
//! block, and restoring both on the destination (after Nanvix's UArea). The
//! destination has other physical addresses and other kernel objects, so the
//! block holds **no raw kernel pointers**: only user virtual addresses
//! (programs are linked at fixed addresses), logical ids ([`abi::Pid`],
//! [`abi::Tid`], [`abi::PortId`], endpoint descriptors) and plain values.
//! The same bytes restore on any cluster.
//!
//! # Guarantees
//!
//! * [`UArea::encode`] wraps a postcard payload in a fixed envelope (magic,
//!   format version, length, CRC-32; see [`envelope`]).
//! * [`UArea::decode`] accepts only an image this build can read, intact, and
//!   describing a process the kernel can restore safely: it checks the
//!   envelope, then runs [`UArea::validate`] (user-half addresses, resolved
//!   references, no privileged `rflags` bits, …). Every rejection says why
//!   ([`UAreaError`], [`Invariant`]).
//! * A one-thread process encodes to about 0.7 KiB (681 bytes for the test
//!   process in `lib.rs`, 512 of them the FXSAVE area); it fits one
//!   [`UAREA_BLOCK_SIZE`] page.
//!
//! No `unsafe` here: the kernel copies the bytes, this crate interprets them.
//!
//! `docs/uarea.md` describes the format for readers of the wire.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod endpoint;
pub mod envelope;
pub mod error;
pub mod header;
pub mod image;
pub mod memory;
pub mod precopy;
pub mod process;
pub mod thread;
pub mod validate;

use alloc::vec::Vec;

use abi::Tid;
use serde::{Deserialize, Serialize};

pub use endpoint::{Endpoint, EndpointFlags, EndpointKind, Peer, Role, ENDPOINT_NAME_MAX};
pub use envelope::{
    FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_PAYLOAD_LEN, OLDEST_SUPPORTED_VERSION, UAREA_BLOCK_SIZE,
};
pub use error::{AddressFault, Invariant, UAreaError};
pub use header::{Header, UAreaFlags};
pub use memory::{Backing, MemoryMap, Perms, Segment, SegmentKind};
pub use process::{Child, Counters, ExitState, Joiner, Sched};
pub use thread::{BlockReason, Context, FxSave, StackExtent, Thread, ThreadState};
pub use validate::{MAX_ENDPOINTS, MAX_SEGMENTS, MAX_THREADS};

/// The relocatable per-process kernel state. See the crate docs.
///
/// Field order is the encoding order: changing it, or any type below it,
/// requires a new [`FORMAT_VERSION`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UArea {
    /// Identity, placement and flags.
    pub header: Header,
    /// Number of threads (equal to `threads.len()`; checked on decode).
    pub thread_count: u32,
    /// The tid the next `thread_create` gets (above every tid in the table).
    pub next_tid: Tid,
    /// The thread table.
    pub threads: Vec<Thread>,
    /// Run queue and scheduling parameters.
    pub sched: Sched,
    /// Exit code and pending joins.
    pub exit: ExitState,
    /// User memory layout.
    pub memory: MemoryMap,
    /// Open NoC endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Statistics.
    pub counters: Counters,
}

impl UArea {
    /// A process with no threads yet (add the main thread with
    /// [`UArea::add_thread`]; a UArea without threads does not validate).
    pub fn new(header: Header, memory: MemoryMap) -> UArea {
        UArea {
            header,
            thread_count: 0,
            next_tid: Tid::MAIN,
            threads: Vec::new(),
            sched: Sched::default(),
            exit: ExitState::default(),
            memory,
            endpoints: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Add a `Ready` thread at the tail of the run queue; returns its tid.
    pub fn add_thread(&mut self, context: Context, stack: StackExtent) -> Tid {
        let tid = self.next_tid;
        self.next_tid = Tid(tid.0.wrapping_add(1));
        self.threads.push(Thread {
            tid,
            state: ThreadState::Ready,
            context,
            restart_syscall: false,
            stack,
        });
        self.thread_count = self.threads.len() as u32;
        self.sched.run_queue.push(tid);
        tid
    }

    /// The thread `tid`.
    pub fn thread(&self, tid: Tid) -> Option<&Thread> {
        self.threads.iter().find(|t| t.tid == tid)
    }

    /// The thread `tid`, mutably.
    pub fn thread_mut(&mut self, tid: Tid) -> Option<&mut Thread> {
        self.threads.iter_mut().find(|t| t.tid == tid)
    }

    /// The endpoint with `descriptor`.
    pub fn endpoint(&self, descriptor: u32) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.descriptor == descriptor)
    }

    /// Whether the process is frozen for migration.
    pub fn is_frozen(&self) -> bool {
        self.header.flags.contains(UAreaFlags::FROZEN)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use abi::{ClusterId, Pid};
    use alloc::string::String;
    use alloc::vec;

    /// A minimal single-threaded process: text, data, bss, heap, one stack.
    pub(crate) fn typical() -> UArea {
        let text = 0x40_0000;
        let stack_base = 0x7fff_fff0_0000;
        let header = Header {
            flags: UAreaFlags::EMPTY,
            pid: Pid::new(ClusterId(3), 42).unwrap(),
            parent: Pid::new(ClusterId(0), 1),
            name: String::from("hello"),
            birth_cluster: ClusterId(3),
            current_cluster: ClusterId(3),
        };
        let segment = |start, len, perms, kind, backing| Segment {
            start,
            len,
            perms,
            kind,
            backing,
        };
        let memory = MemoryMap {
            segments: vec![
                segment(
                    text,
                    0x5_6000,
                    Perms::RX,
                    SegmentKind::Text,
                    Backing::Image {
                        offset: 0x1000,
                        len: 0x5_5a10,
                    },
                ),
                segment(
                    0x45_6000,
                    0x2000,
                    Perms::RW,
                    SegmentKind::Data,
                    Backing::Image {
                        offset: 0x5_7000,
                        len: 0x1234,
                    },
                ),
                segment(
                    0x45_8000,
                    0x1000,
                    Perms::RW,
                    SegmentKind::Bss,
                    Backing::Anonymous,
                ),
                segment(
                    0x50_0000,
                    0x2_0000,
                    Perms::RW,
                    SegmentKind::Heap,
                    Backing::Anonymous,
                ),
                segment(
                    stack_base,
                    0x2000,
                    Perms::RW,
                    SegmentKind::Stack,
                    Backing::Anonymous,
                ),
            ],
            heap_break: 0x50_8000,
            mmap_cursor: 0x1000_0000,
        };
        let mut uarea = UArea::new(header, memory);
        let stack = StackExtent {
            base: stack_base,
            size: 0x2000,
            guard: 0x1000,
        };
        uarea.add_thread(Context::new_user(text + 0x120, 0, stack.top()), stack);
        uarea
    }

    #[test]
    fn typical_process_validates_and_round_trips() {
        let uarea = typical();
        assert_eq!(uarea.validate(), Ok(()));
        let image = uarea.encode();
        assert_eq!(image.len(), uarea.encoded_len());
        assert_eq!(UArea::decode(&image), Ok(uarea.clone()));
        let block = uarea.encode_block();
        assert_eq!(block.len() % UAREA_BLOCK_SIZE, 0);
        assert_eq!(UArea::decode(&block), Ok(uarea));
    }

    #[test]
    fn one_thread_process_is_small() {
        let uarea = typical();
        let len = uarea.encoded_len();
        std::println!("encoded size of a typical 1-thread UArea: {len} bytes");
        assert!(len <= 2048, "{len} bytes");
        assert_eq!(uarea.block_len(), UAREA_BLOCK_SIZE);
    }

    #[test]
    fn encode_into_reports_small_buffer() {
        let uarea = typical();
        let mut buf = vec![0xaa; uarea.encoded_len() - 1];
        assert_eq!(
            uarea.encode_into(&mut buf),
            Err(UAreaError::BufferTooSmall {
                needed: uarea.encoded_len(),
                got: uarea.encoded_len() - 1
            })
        );
    }

    #[test]
    fn encode_into_zeroes_the_tail() {
        let uarea = typical();
        let mut buf = vec![0xaa; 4096];
        let len = uarea.encode_into(&mut buf).unwrap();
        assert!(buf[len..].iter().all(|&b| b == 0));
        assert_eq!(UArea::decode(&buf), Ok(uarea));
    }

    #[test]
    fn children_travel_and_are_checked() {
        let mut uarea = typical();
        let child = |local| Child {
            pid: Pid::new(ClusterId(1), local).unwrap(),
            cluster: ClusterId(2),
            moves: 3,
            exit_code: Some(-9),
        };
        uarea.exit.children = vec![child(7), child(8)];
        let decoded = UArea::decode(&uarea.encode()).unwrap();
        assert_eq!(decoded.exit.children, uarea.exit.children);

        let mut twice = uarea.clone();
        twice.exit.children.push(child(7));
        assert!(matches!(twice.validate(), Err(Invariant::BadChild { .. })));
        let mut itself = uarea.clone();
        itself.exit.children[0].pid = itself.header.pid;
        assert!(matches!(itself.validate(), Err(Invariant::BadChild { .. })));
        let mut crowded = uarea;
        crowded.exit.children = (1..=abi::limits::CHILDREN_PER_PROCESS as u32 + 1)
            .map(child)
            .collect();
        assert!(matches!(
            crowded.validate(),
            Err(Invariant::TooMany {
                what: "children",
                ..
            })
        ));
    }
}
