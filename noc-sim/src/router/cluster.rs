//! The router's per-cluster state: its connection, eventfds, slice, delivery queue, counters.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};

use noc_proto::Slice;

/// Per-cluster counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClusterStats {
    pub sent: u64,
    pub sent_bytes: u64,
    pub received: u64,
    pub received_bytes: u64,
    pub dropped_corrupt: u64,
    pub dropped_unreachable: u64,
    pub rx_full_stalls: u64,
    pub queue_full_stalls: u64,
    pub max_queued: u64,
}

/// A message waiting for its delivery time (ordered by time, then arrival).
pub(super) struct Pending {
    pub(super) deliver_at: u64,
    pub(super) seq: u64,
    pub(super) bytes: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.deliver_at, self.seq) == (o.deliver_at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.deliver_at, o.seq).cmp(&(self.deliver_at, self.seq))
    }
}

pub(super) struct Cluster {
    pub(super) id: u16,
    pub(super) listener: UnixListener,
    pub(super) conn: Option<UnixStream>,
    /// The cluster's own vectors (its interrupts); we write vector 0.
    pub(super) interrupts: Vec<OwnedFd>,
    /// What this cluster knows as peer 32's eventfds; we read them.
    pub(super) doorbell: Vec<OwnedFd>,
    pub(super) slice: Slice,
    pub(super) joined_ever: bool,
    pub(super) queue: BinaryHeap<Pending>,
    /// RX ring was full; wait for a doorbell (or the tick) before retrying.
    pub(super) rx_stalled: bool,
    /// Messages taken from this cluster's TX ring for destination `d` (index) whose queue
    /// was full: one stuck destination holds back only the traffic for it, in FIFO order.
    pub(super) held: Vec<VecDeque<Held>>,
    pub(super) stats: ClusterStats,
}

/// A validated message waiting, at its source, for room in its destination's queue.
pub(super) struct Held {
    pub(super) port: u16,
    pub(super) first_byte: Option<u8>,
    pub(super) bytes: Vec<u8>,
}
