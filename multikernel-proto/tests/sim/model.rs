//! What the simulation knows: the clusters (machines + a model process table), the network
//! in flight, and the oracle's record of every process, mail, kill and request.

use std::collections::BTreeMap;

use abi::{ClusterId, Pid};
use multikernel_proto::message::PAYLOAD;
#[allow(unused_imports)]
use multikernel_proto::migrate::Action;
use multikernel_proto::migrate::{Config, Destination, RequestId, Source};

/// Timers shrunk for the simulation (the defaults are 20 s / 200 ms).
pub const CONFIG: Config = Config {
    stall_timeout_ns: 2_000_000_000,
    retransmit_ns: 200_000_000,
    queue_limit: 4,
};
pub const MS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Frozen,
    Prepared,
}

/// One copy of a process on one cluster; `mail` is what it has received (part of its image).
#[derive(Debug, Clone)]
pub struct Copy {
    pub state: State,
    pub mail: Vec<u64>,
}

/// An image that reached a destination.
#[derive(Debug, Clone)]
pub struct Image {
    pub mail: Vec<u64>,
    pub intact: bool,
}

pub struct Cluster {
    pub id: ClusterId,
    pub alive: bool,
    pub stalled_until: u64,
    pub source: Source,
    pub destination: Destination,
    pub processes: BTreeMap<Pid, Copy>,
    pub forward: BTreeMap<Pid, ClusterId>,
    /// Snapshots taken at Freeze, by sequence.
    pub snapshots: BTreeMap<u32, Vec<u64>>,
    pub images: BTreeMap<(ClusterId, u32), Image>,
}

impl Cluster {
    pub fn new(id: ClusterId) -> Cluster {
        Cluster {
            id,
            alive: true,
            stalled_until: 0,
            source: Source::new(id, CONFIG),
            destination: Destination::new(CONFIG),
            processes: BTreeMap::new(),
            forward: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            images: BTreeMap::new(),
        }
    }
}

/// User-level traffic between kernels (forwarded mail and kills): reliable between live
/// clusters, delayed and reordered.
#[derive(Debug, Clone, Copy)]
pub enum User {
    Mail { pid: Pid, id: u64 },
    Kill { pid: Pid, id: i32 },
}

#[derive(Debug, Clone)]
pub enum Event {
    Daemon {
        to: ClusterId,
        from: ClusterId,
        bytes: [u8; PAYLOAD],
    },
    User {
        to: ClusterId,
        what: User,
    },
    ImageArrived {
        to: ClusterId,
        from: ClusterId,
        sequence: u32,
        image: Image,
    },
    TransferDone {
        to: ClusterId,
        peer: ClusterId,
        sequence: u32,
        ok: bool,
    },
    /// A live migration's copy while the process ran ended (`ok`: no link failure).
    PreCopyDone {
        to: ClusterId,
        peer: ClusterId,
        pid: Pid,
        sequence: u32,
        ok: bool,
    },
    PeerGone {
        to: ClusterId,
        gone: ClusterId,
    },
}

impl Event {
    pub fn target(&self) -> ClusterId {
        match self {
            Event::Daemon { to, .. }
            | Event::User { to, .. }
            | Event::ImageArrived { to, .. }
            | Event::TransferDone { to, .. }
            | Event::PreCopyDone { to, .. }
            | Event::PeerGone { to, .. } => *to,
        }
    }
}

/// Where a mail or a kill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whereabouts {
    HeldAt(ClusterId),
    InFlight(ClusterId),
    Delivered,
    /// Held by or in flight to a cluster that left.
    LostWithCluster,
    /// Reached a cluster that knew nothing of the process.
    DroppedUnknown,
    /// Dropped by a machine ([`Action::DropMail`]): only right if the process is lost.
    Dropped,
}

/// The oracle's view of one process.
#[derive(Debug, Clone)]
pub struct Process {
    /// Whose copy is authoritative: the source until it decides commit, then the destination.
    pub owner: ClusterId,
    /// The source whose commit made `owner` the owner, while that commit is in progress.
    pub committed_by: Option<ClusterId>,
    /// Where senders address it (updated when the source decides commit), and before that.
    pub believed: ClusterId,
    pub believed_before: ClusterId,
    pub ended: bool,
    pub kills_applied: u32,
    /// The named case that allows its loss, set by the crash that may lose it.
    pub excuse: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub pid: Pid,
    pub reports: u32,
    /// Pre-copy (offered while running) rather than stop-and-copy.
    pub live: bool,
}

pub type RequestKey = (ClusterId, RequestId);
