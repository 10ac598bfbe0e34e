//! The one channel from the microkernel to the multikernel daemons.
//!
//! The microkernel never talks to another cluster's daemons itself. A system call, a process
//! exit or the monitor that needs the rest of the machine posts a [`Request`] here; the
//! daemons take every pending request on their next pass of the scheduler loop and decide
//! which of them serves it. So the kernel does not know the daemons' protocols, and the
//! daemons find their work here instead of in the process table's fields.
//!
//! The types carried are defined here, not in the modules that post them, so this module
//! depends on nothing else in the kernel but the heap budget, and every poster depends on
//! it alone. The queue is bounded for user-driven requests ([`try_post`]).

use abi::{ClusterId, Pid, PortId, Tid};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use spin::Mutex;

/// Something the kernel asks of the daemons.
#[derive(Debug)]
pub enum Request {
    /// Move a process (wherever it lives now) to another cluster.
    Migrate(MigrationRequest),
    /// Create a process on another cluster with a pid born here.
    Spawn(RemoteSpawn),
    /// End a process that lives on another cluster.
    Kill(Pid),
    /// A process born elsewhere exited here: tell its birth cluster.
    ExitReport { pid: Pid, code: i32 },
    /// The monitor's `ps all`: ask every cluster for its processes.
    ListMachine,
    /// A name-service change made here, for the other replicas.
    Name(NameChange),
    /// A user portal transfer to a process on another cluster.
    PortalOut(PortalTransfer),
    /// Another cluster claims the right to deliver a portal transfer to a process here.
    PortalClaim(PortalClaim),
    /// Post-copy: a thread of `pid` waits for `page`, still at the cluster it left.
    PageFault { pid: Pid, page: u64 },
    /// News of a child for its parent, which does not run here (or is frozen): routed to
    /// wherever the parent lives.
    ChildNews {
        parent: Pid,
        child: Pid,
        news: ChildNews,
    },
}

/// What a parent learns of a child that does not run next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildNews {
    /// It ended with this code.
    Exited(i32),
    /// It now lives on `cluster`, after `moves` migrations.
    Moved { cluster: ClusterId, moves: u32 },
}

/// Bytes of [`ChildNews::encode`]: child pid, what, value, moves.
pub const CHILD_NEWS_LEN: usize = 13;

impl ChildNews {
    /// The envelope data that carries `(child, news)`.
    pub fn encode(child: Pid, news: ChildNews) -> [u8; CHILD_NEWS_LEN] {
        let mut out = [0u8; CHILD_NEWS_LEN];
        out[0..4].copy_from_slice(&child.raw().to_le_bytes());
        let (what, value, moves) = match news {
            ChildNews::Exited(code) => (0u8, code as u32, 0),
            ChildNews::Moved { cluster, moves } => (1u8, u32::from(cluster.0), moves),
        };
        out[4] = what;
        out[5..9].copy_from_slice(&value.to_le_bytes());
        out[9..13].copy_from_slice(&moves.to_le_bytes());
        out
    }

    /// Parses envelope data; `None` if malformed.
    pub fn decode(data: &[u8]) -> Option<(Pid, ChildNews)> {
        let data: &[u8; CHILD_NEWS_LEN] = data.try_into().ok()?;
        let word =
            |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let child = Pid::from_raw(word(0))?;
        let news = match data[4] {
            0 => ChildNews::Exited(word(5) as i32),
            1 => ChildNews::Moved {
                cluster: ClusterId(u16::try_from(word(5)).ok()?),
                moves: word(9),
            },
            _ => return None,
        };
        Some((child, news))
    }
}

/// A `migrate` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationRequest {
    pub pid: Pid,
    pub destination: ClusterId,
    /// The thread that asked, if it belongs to the migrating process (its `migrate` returns
    /// 0 on the destination, or the error here).
    pub caller: Option<(Pid, Tid)>,
    /// How it moves.
    pub options: abi::MigrateOptions,
}

/// A `spawn` on another cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSpawn {
    pub pid: Pid,
    pub parent: Pid,
    pub cluster: ClusterId,
    pub program: String,
    /// NUL-separated arguments.
    pub args: String,
}

/// A change to the name service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameChange {
    Link { name: String, pid: Pid },
    Unlink { name: String, pid: Pid },
}

/// A user portal transfer waiting to leave this cluster.
#[derive(Debug)]
pub struct PortalTransfer {
    pub from: (Pid, PortId),
    pub to: (Pid, PortId),
    pub writer: PortalWriter,
    pub source: PortalSource,
}

/// Who waits for a user portal transfer's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalWriter {
    /// The writing thread, blocked in `portal_write` until the transfer ends.
    Thread(Tid),
    /// Nobody: the kernel forwards a transfer delivered to a receiver that moved on before it
    /// read it (`crate::portal::drain`). A failed attempt is made again, at most
    /// [`PortalWriter::FORWARD_ATTEMPTS`] times in all.
    Forward {
        /// Attempts made so far.
        attempts: u8,
    },
}

impl PortalWriter {
    /// Most attempts to forward one transfer; then it is counted as lost and logged.
    pub const FORWARD_ATTEMPTS: u8 = 4;
}

/// Where a user portal transfer's bytes are read from.
#[derive(Debug)]
pub enum PortalSource {
    /// The writer's own pages, as physical `(address, length)` pieces in order, held
    /// (pinned) until the DMA engine is done with them.
    Pinned {
        pieces: Vec<(u64, u32)>,
        _held: hal::frames::Pinned,
    },
    /// A kernel copy (a buffer whose pages do not fit one DMA range list).
    Copied(Vec<u8>),
}

impl PortalSource {
    /// Bytes to move.
    pub fn len(&self) -> usize {
        match self {
            PortalSource::Pinned { pieces, .. } => pieces.iter().map(|p| p.1 as usize).sum(),
            PortalSource::Copied(data) => data.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A claim by another cluster to deliver a user portal transfer here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalClaim {
    pub cluster: ClusterId,
    pub from: (Pid, PortId),
    pub to: (Pid, PortId),
    /// The id the sending cluster gave the transfer: it is allowed, sent and taken under
    /// that id alone (`noc::portal::allow_as`).
    pub transfer: u32,
}

static PENDING: Mutex<VecDeque<Request>> = Mutex::new(VecDeque::new());

/// Posts a request of the kernel's own for the daemons' next pass (an exit report, news
/// of a child): never refused, and bounded by the processes that can cause one.
pub fn post(request: Request) {
    hal::cpu::without_interrupts(|| PENDING.lock().push_back(request));
}

/// Posts a request a user call asks for: `EAGAIN` if `REQUESTS_QUEUED_PER_CLUSTER` wait
/// already or the kernel heap is at its user budget, so no loop of calls within one time
/// slice (before the daemons run) can fill the heap.
pub fn try_post(request: Request) -> Result<(), abi::Errno> {
    hal::cpu::without_interrupts(|| {
        let mut pending = PENDING.lock();
        if pending.len() >= abi::limits::REQUESTS_QUEUED_PER_CLUSTER
            || !crate::budget::admits(core::mem::size_of::<Request>())
            || pending.try_reserve(1).is_err()
        {
            return Err(abi::Errno::EAGAIN);
        }
        pending.push_back(request);
        Ok(())
    })
}

/// Requests waiting for the daemons.
pub fn queued() -> usize {
    hal::cpu::without_interrupts(|| PENDING.lock().len())
}

/// Takes every pending request, oldest first (the daemons' side).
pub fn take_all() -> Vec<Request> {
    hal::cpu::without_interrupts(|| PENDING.lock().drain(..).collect())
}

/// True if requests wait for the daemons' next pass.
pub fn pending() -> bool {
    hal::cpu::without_interrupts(|| !PENDING.lock().is_empty())
}
