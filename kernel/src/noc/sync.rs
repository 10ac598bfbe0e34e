//! Syncs: Nanvix's barrier halves across clusters.
//!
//! A sync names a node list whose first entry is the *root* and a mode:
//! * `AllToOne`: every other node signals, the root waits for all of them;
//! * `OneToAll`: the root signals, every other node waits for it.
//!
//! The waiting side calls [`create`], the signalling side [`open`]; both give the same port
//! (the sync's id on the wire: `SyncSignal`, port and arg = that id). Signals are counted per
//! sender, so rounds cannot be confused and a signal that arrives before `create` is kept.
//! A full barrier is `AllToOne` then `OneToAll`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use hal::noc::{ClusterId, Delivery, Header, Kind, PortId};
use noc_proto::MAX_CLUSTERS;

use super::{check_cluster, cluster, pump, with_state, Event, NocError};

/// Who signals whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// The root (`nodes[0]`) signals every other node.
    OneToAll,
    /// Every other node signals the root.
    AllToOne,
}

/// The waiting end (from [`create`]).
#[derive(Debug)]
pub struct Sync {
    port: PortId,
    /// Nodes whose signal completes one wait.
    senders: Vec<ClusterId>,
}

/// The signalling end (from [`open`]).
#[derive(Debug)]
pub struct SyncTx {
    port: PortId,
    receivers: Vec<ClusterId>,
}

pub(crate) struct Syncs {
    /// sync port → signals received from each cluster, not yet consumed by a wait.
    signals: BTreeMap<u16, [u32; MAX_CLUSTERS]>,
    pub(crate) received: u64,
}

impl Syncs {
    pub(crate) const fn new() -> Self {
        Syncs {
            signals: BTreeMap::new(),
            received: 0,
        }
    }

    pub(crate) fn deliver(&mut self, header: &Header, events: &mut Vec<Event>) -> Delivery {
        let counts = self
            .signals
            .entry(header.port.0)
            .or_insert([0; MAX_CLUSTERS]);
        if let Some(count) = counts.get_mut(header.src.index()) {
            *count = count.saturating_add(1);
            self.received += 1;
            events.push(Event::Sync(header.port));
        }
        Delivery::Accept
    }
}

fn check_nodes(nodes: &[ClusterId]) -> Result<(), NocError> {
    if nodes.len() < 2 {
        return Err(NocError::BadEndpoint);
    }
    for (i, node) in nodes.iter().enumerate() {
        check_cluster(*node)?;
        if nodes[..i].contains(node) {
            return Err(NocError::BadEndpoint);
        }
    }
    Ok(())
}

/// Creates the waiting end of sync `port` over `nodes` (root first). This cluster must be a
/// waiter: the root for `AllToOne`, a non-root node for `OneToAll`.
pub fn create(port: PortId, nodes: &[ClusterId], mode: SyncMode) -> Result<Sync, NocError> {
    check_nodes(nodes)?;
    let me = cluster();
    let senders = match mode {
        SyncMode::AllToOne if nodes[0] == me => nodes[1..].to_vec(),
        SyncMode::OneToAll if nodes[1..].contains(&me) => alloc::vec![nodes[0]],
        _ => return Err(NocError::BadEndpoint),
    };
    Ok(Sync { port, senders })
}

/// Opens the signalling end of sync `port` over `nodes` (root first). This cluster must be a
/// signaller: the root for `OneToAll`, a non-root node for `AllToOne`.
pub fn open(port: PortId, nodes: &[ClusterId], mode: SyncMode) -> Result<SyncTx, NocError> {
    check_nodes(nodes)?;
    let me = cluster();
    let receivers = match mode {
        SyncMode::OneToAll if nodes[0] == me => nodes[1..].to_vec(),
        SyncMode::AllToOne if nodes[1..].contains(&me) => alloc::vec![nodes[0]],
        _ => return Err(NocError::BadEndpoint),
    };
    Ok(SyncTx { port, receivers })
}

/// Signals every receiver of the sync (asynchronous; all or nothing).
pub fn signal(sync: &SyncTx) -> Result<(), NocError> {
    let result = with_state(|s| {
        if !s.backlog_is_empty() && !s.backlog_room(0) {
            return Err(NocError::WouldBlock);
        }
        for receiver in &sync.receivers {
            let mut header = Header::new(Kind::SyncSignal, ClusterId(0), *receiver, sync.port, 0);
            header.arg = sync.port.0 as u32;
            s.send_or_queue(header, &[], true)?;
        }
        Ok(())
    });
    pump();
    result
}

/// Completes one round if every expected sender has signalled (consuming one signal of
/// each); otherwise `WouldBlock` and nothing is consumed.
pub fn try_wait(sync: &Sync) -> Result<(), NocError> {
    pump();
    with_state(|s| {
        let counts = s
            .syncs
            .signals
            .get_mut(&sync.port.0)
            .ok_or(NocError::WouldBlock)?;
        if sync.senders.iter().any(|c| counts[c.index()] == 0) {
            return Err(NocError::WouldBlock);
        }
        for sender in &sync.senders {
            counts[sender.index()] -= 1;
        }
        Ok(())
    })
}
