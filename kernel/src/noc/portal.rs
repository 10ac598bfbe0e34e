//! Portals: bulk transfers of up to 1 MiB from one cluster to a port of another, which the
//! receiver must **allow** first.
//!
//! Protocol (docs/noc.md §10): the receiver's `allow(remote)` records the permitted sender and
//! sends it a `PortalAllow` (arg = max bytes). The sender's `write` consumes one received
//! allowance and queues the transfer as `PortalData` chunks (≤ 32 KiB, FIRST/LAST flags,
//! arg = offset); **without an allowance `write` returns `WouldBlock` and sends nothing** — the
//! blocking layer waits for [`super::Event::PortalAllow`]. One allowance admits one transfer.
//! Defence in depth: chunks that reach a receiver which has not allowed their sender (a
//! forged or stale write) are dropped and counted (`portal_chunks_refused`), and the first
//! chunk of such a transfer is answered with a `PortalAllow` whose arg is 0, a refusal, which
//! makes the sender's next `write` to that portal fail with [`NocError::Refused`].

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use hal::noc::{ClusterId, Delivery, Header, Kind, PortId};
use noc_proto::wire::{self, flags, MAX_PORTAL_TRANSFER};

use super::{check_cluster, pump, with_state, Counters, Event, NocError};

/// Completed transfers a portal keeps before the RX ring is deferred.
const READY_LIMIT: usize = 2;

/// The receive end of a local portal (from [`create`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Portal {
    port: PortId,
}

impl Portal {
    pub fn port(&self) -> PortId {
        self.port
    }
}

/// The send end: a remote portal (from [`open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortalTx {
    pub remote: ClusterId,
    pub port: PortId,
}

#[derive(Default)]
struct Receiver {
    created: bool,
    allowed: Option<ClusterId>,
    current: Option<(ClusterId, Vec<u8>)>,
    ready: VecDeque<(ClusterId, Vec<u8>)>,
}

pub(crate) struct Portals {
    receivers: BTreeMap<u16, Receiver>,
    /// (remote, port) → allowances received and not yet used.
    allowances: BTreeMap<(u16, u16), u32>,
    /// (remote, port) → refusals received and not yet reported.
    refusals: BTreeMap<(u16, u16), u32>,
}

impl Portals {
    pub(crate) const fn new() -> Self {
        Portals {
            receivers: BTreeMap::new(),
            allowances: BTreeMap::new(),
            refusals: BTreeMap::new(),
        }
    }

    pub(crate) fn deliver_data(
        &mut self,
        header: &Header,
        payload: &[u8],
        events: &mut Vec<Event>,
        counters: &mut Counters,
        replies: &mut Vec<Header>,
    ) -> Delivery {
        let receiver = self.receivers.entry(header.port.0).or_default();
        if !receiver.created || receiver.allowed != Some(header.src) {
            counters.portal_chunks_refused += 1;
            if header.flags & flags::FIRST != 0 {
                let mut refusal =
                    Header::new(Kind::PortalAllow, ClusterId(0), header.src, header.port, 0);
                refusal.arg = 0;
                replies.push(refusal);
            }
            return Delivery::Accept;
        }
        if receiver.ready.len() >= READY_LIMIT {
            return Delivery::Defer;
        }
        if header.flags & flags::FIRST != 0 {
            receiver.current = Some((header.src, Vec::new()));
        }
        let Some((source, buffer)) = receiver.current.as_mut() else {
            counters.portal_chunks_dropped += 1;
            return Delivery::Accept;
        };
        let fits = buffer.len() + payload.len() <= MAX_PORTAL_TRANSFER;
        if *source != header.src || header.arg as usize != buffer.len() || !fits {
            // Out of order or oversized: the transfer is lost, never half-delivered.
            counters.portal_chunks_dropped += 1;
            receiver.current = None;
            return Delivery::Accept;
        }
        buffer.extend_from_slice(payload);
        if header.flags & flags::LAST != 0 {
            if let Some(done) = receiver.current.take() {
                receiver.ready.push_back(done);
            }
            receiver.allowed = None; // one allowance, one transfer
            counters.portal_transfers_rx += 1;
            events.push(Event::PortalData(header.port));
        }
        Delivery::Accept
    }

    pub(crate) fn deliver_allow(
        &mut self,
        header: &Header,
        events: &mut Vec<Event>,
        counters: &mut Counters,
    ) {
        let key = (header.src.0, header.port.0);
        if header.arg == 0 {
            *self.refusals.entry(key).or_default() += 1;
            counters.portal_refusals_received += 1;
        } else {
            *self.allowances.entry(key).or_default() += 1;
        }
        events.push(Event::PortalAllow {
            remote: header.src,
            port: header.port,
        });
    }
}

/// Claims local portal `port`.
pub fn create(port: PortId) -> Result<Portal, NocError> {
    if !hal::noc::present() {
        return Err(NocError::NotPresent);
    }
    with_state(|s| {
        let receiver = s.portals.receivers.entry(port.0).or_default();
        if receiver.created {
            return Err(NocError::PortInUse);
        }
        receiver.created = true;
        Ok(Portal { port })
    })
}

/// Releases a local portal; data still queued is discarded.
pub fn unlink(portal: Portal) {
    with_state(|s| s.portals.receivers.remove(&portal.port.0));
}

/// Lets `remote` write one transfer to `portal`, and tells it so.
pub fn allow(portal: &Portal, remote: ClusterId) -> Result<(), NocError> {
    check_cluster(remote)?;
    let result = with_state(|s| {
        let receiver = s.portals.receivers.entry(portal.port.0).or_default();
        receiver.allowed = Some(remote);
        let mut header = Header::new(Kind::PortalAllow, ClusterId(0), remote, portal.port, 0);
        header.arg = MAX_PORTAL_TRANSFER as u32;
        s.send_or_queue(header, &[], true)
    });
    pump();
    result
}

/// Names portal `port` on cluster `remote`.
pub fn open(remote: ClusterId, port: PortId) -> Result<PortalTx, NocError> {
    check_cluster(remote)?;
    Ok(PortalTx { remote, port })
}

/// True if `remote` has allowed a transfer we have not made yet.
pub fn is_allowed(to: &PortalTx) -> bool {
    pump();
    with_state(|s| {
        s.portals
            .allowances
            .get(&(to.remote.0, to.port.0))
            .is_some_and(|&n| n > 0)
    })
}

/// Starts one transfer of `data` (≤ 1 MiB). Asynchronous: on `Ok` the data is in the TX ring
/// or the backlog (copied). `WouldBlock` if the receiver has not allowed us yet or the backlog
/// has no room; `Refused` if the receiver refused an earlier write.
pub fn write(to: &PortalTx, data: &[u8]) -> Result<(), NocError> {
    if data.len() > MAX_PORTAL_TRANSFER {
        return Err(NocError::TooLarge);
    }
    pump();
    let key = (to.remote.0, to.port.0);
    let result = with_state(|s| {
        if let Some(refusals) = s.portals.refusals.get_mut(&key).filter(|n| **n > 0) {
            *refusals -= 1;
            return Err(NocError::Refused);
        }
        if !s.portals.allowances.get(&key).is_some_and(|&n| n > 0) {
            return Err(NocError::WouldBlock);
        }
        if !s.backlog_room(data.len()) {
            return Err(NocError::WouldBlock);
        }
        if let Some(allowances) = s.portals.allowances.get_mut(&key) {
            *allowances -= 1;
        }
        for chunk in wire::portal_chunks(data.len()) {
            let mut header = Header::new(Kind::PortalData, ClusterId(0), to.remote, to.port, 0);
            header.flags = chunk.flags;
            header.arg = chunk.offset;
            let bytes = &data[chunk.offset as usize..(chunk.offset + chunk.len) as usize];
            s.send_or_queue(header, bytes, true)?;
        }
        Ok(())
    });
    pump();
    result
}

/// Takes the oldest completed transfer into `buffer`: `(sender, length)`. `WouldBlock` if none;
/// `BufferTooSmall` leaves it queued.
pub fn try_read(portal: &Portal, buffer: &mut [u8]) -> Result<(ClusterId, usize), NocError> {
    pump();
    with_state(|s| {
        let receiver = s
            .portals
            .receivers
            .get_mut(&portal.port.0)
            .ok_or(NocError::WouldBlock)?;
        let (source, data) = receiver.ready.front().ok_or(NocError::WouldBlock)?;
        let target = buffer
            .get_mut(..data.len())
            .ok_or(NocError::BufferTooSmall)?;
        target.copy_from_slice(data);
        let result = (*source, data.len());
        receiver.ready.pop_front();
        Ok(result)
    })
}

/// As [`try_read`], handing over the kernel's buffer.
pub fn try_read_vec(portal: &Portal) -> Result<(ClusterId, Vec<u8>), NocError> {
    pump();
    with_state(|s| {
        s.portals
            .receivers
            .get_mut(&portal.port.0)
            .and_then(|r| r.ready.pop_front())
            .ok_or(NocError::WouldBlock)
    })
}
