//! The one channel from the microkernel to the multikernel daemons.
//!
//! The microkernel never talks to another cluster's daemons itself. A system call, a process
//! exit or the monitor that needs the rest of the machine posts a [`Request`] here; the
//! daemons take every pending request on their next pass of the scheduler loop and decide
//! which of them serves it. So the kernel does not know the daemons' protocols, and the
//! daemons find their work here instead of in the process table's fields.
//!
//! The types carried are defined here, not in the modules that post them, so this module
//! depends on nothing else in the kernel and every poster depends on it alone.

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
}

/// A `migrate` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationRequest {
    pub pid: Pid,
    pub destination: ClusterId,
    /// The thread that asked, if it belongs to the migrating process (its `migrate` returns
    /// 0 on the destination, or the error here).
    pub caller: Option<(Pid, Tid)>,
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
    /// The writing thread: blocked in `portal_write` until the transfer ends.
    pub writer: Tid,
    pub source: PortalSource,
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
}

static PENDING: Mutex<VecDeque<Request>> = Mutex::new(VecDeque::new());

/// Posts a request for the daemons' next pass.
pub fn post(request: Request) {
    hal::cpu::without_interrupts(|| PENDING.lock().push_back(request));
}

/// Takes every pending request, oldest first (the daemons' side).
pub fn take_all() -> Vec<Request> {
    hal::cpu::without_interrupts(|| PENDING.lock().drain(..).collect())
}

/// True if requests wait for the daemons' next pass.
pub fn pending() -> bool {
    hal::cpu::without_interrupts(|| !PENDING.lock().is_empty())
}
