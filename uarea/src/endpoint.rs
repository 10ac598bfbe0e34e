//! Logical NoC endpoints held by the process.
//!
//! Endpoints are recorded by logical address, `(pid, port)`, never by a
//! kernel object or a physical NoC interface, so they survive migration: the
//! destination re-creates each one and the name service rebinds the pid.

use alloc::string::String;
use alloc::vec::Vec;

use abi::{ClusterId, Pid, PortId, SyncMode};
use serde::{Deserialize, Serialize};

/// Longest service name a [`Peer::Name`] may hold.
pub const ENDPOINT_NAME_MAX: usize = 32;

/// The HAL abstraction behind an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndpointKind {
    /// Fixed-size messages ([`abi::MAILBOX_PAYLOAD_SIZE`]).
    Mailbox,
    /// Bulk transfers (up to [`abi::PORTAL_MAX_TRANSFER`]).
    Portal,
    /// Barrier-style sync point.
    Sync,
}

/// Which end the process holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Made by `*_create`: receives on a local port.
    Receiver,
    /// Made by `*_open`: sends to a peer.
    Sender,
}

/// The other end.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Peer {
    /// Nobody (a mailbox inbox, a portal that has not allowed anyone yet).
    None,
    /// A process's port, wherever it runs.
    Process {
        /// Global pid.
        pid: Pid,
        /// Its port.
        port: PortId,
    },
    /// A cluster-bound port (kernel services, daemons pinned to a cluster).
    Cluster {
        /// The cluster.
        cluster: ClusterId,
        /// Its port.
        port: PortId,
    },
    /// A service name resolved by the name service.
    Name(String),
    /// The members of a sync point, in order (the first is the root).
    Group {
        /// Direction.
        mode: SyncMode,
        /// Member processes (1 ..= [`abi::SYNC_MAX_MEMBERS`], no duplicates).
        members: Vec<Pid>,
    },
}

/// Endpoint flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndpointFlags(u32);

impl EndpointFlags {
    /// No flag.
    pub const EMPTY: EndpointFlags = EndpointFlags(0);
    /// Operations fail with `EAGAIN` instead of blocking.
    pub const NONBLOCK: EndpointFlags = EndpointFlags(1 << 0);
    /// Portal receiver: the sender in `peer` is allowed to write.
    pub const ALLOWED: EndpointFlags = EndpointFlags(1 << 1);
    /// The name service rebound this endpoint after a migration.
    pub const REBOUND: EndpointFlags = EndpointFlags(1 << 2);
    /// Every defined flag.
    pub const ALL: EndpointFlags = EndpointFlags(1 | 2 | 4);

    /// Flags from raw bits, `None` if an unknown bit is set.
    pub const fn from_bits(bits: u32) -> Option<EndpointFlags> {
        if bits & !Self::ALL.0 != 0 {
            None
        } else {
            Some(EndpointFlags(bits))
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: EndpointFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union.
    pub const fn union(self, other: EndpointFlags) -> EndpointFlags {
        EndpointFlags(self.0 | other.0)
    }

    /// Whether only defined bits are set.
    pub const fn is_known(self) -> bool {
        self.0 & !Self::ALL.0 == 0
    }
}

/// One open endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The descriptor user space holds (`md`, `pd`, `sd`); unique in the process.
    pub descriptor: u32,
    /// Mailbox, portal or sync.
    pub kind: EndpointKind,
    /// Receiving or sending end.
    pub role: Role,
    /// The process's own port. Unique per kind among receivers.
    pub local_port: PortId,
    /// The other end.
    pub peer: Peer,
    /// [`EndpointFlags`].
    pub flags: EndpointFlags,
    /// Sequence number of the next message sent (per endpoint, for
    /// duplicate and loss detection across a migration).
    pub tx_seq: u64,
    /// Sequence number of the next message expected.
    pub rx_seq: u64,
}
