//! What the NoC driver keeps for portals: receive buffers and frames granted to the router,
//! allowances and refusals received, writes waiting for their completion — and how each
//! message from the router or a peer changes it.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use hal::noc::dma::RangeList;
use hal::noc::{ClusterId, Delivery, Header, Kind, PortId};
use noc_proto::dma::{Completion, Role, Status};
use noc_proto::wire::{flags, MAX_PORTAL_TRANSFER};

use super::super::{Counters, Event, NocError};

/// Unmatched completions kept for inspection ([`super::take_unclaimed`]).
const UNCLAIMED_LIMIT: usize = 64;

/// Where a granted transfer lands.
pub(super) enum Landing {
    /// A kernel receive buffer, handed to the reader.
    Buffer(Vec<u8>),
    /// Frames the caller owns (a migrating process's pages): it only hears they are filled.
    Frames,
}

/// A grant given to the router, and the frame holding its range list.
pub(super) struct Granted {
    pub(super) landing: Landing,
    pub(super) list: RangeList,
    /// When its `PortalAllow` was last sent ([`super::reannounce`]).
    pub(super) announced_ns: u64,
}

/// A transfer into granted frames ([`super::allow_frames`]), completed or failed: which
/// grant it used, so a reader with several grants open knows which frames it filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramesArrival {
    pub from: ClusterId,
    /// The transfer id [`super::allow_frames`] returned.
    pub transfer: u32,
    /// The bytes that landed, or why none did (the grant is used up either way).
    pub landed: Result<u32, NocError>,
}

/// A completed transfer, as the reader takes it.
pub(super) enum Arrival {
    /// From a sender, under a transfer id.
    Data(ClusterId, u32, Vec<u8>),
    Frames(FramesArrival),
}

pub(super) type Transfer = Result<Arrival, NocError>;

#[derive(Default)]
pub(super) struct Receiver {
    pub(super) created: bool,
    /// (sender, transfer id) → the buffer granted to it.
    pub(super) granted: BTreeMap<(u16, u32), Granted>,
    pub(super) ready: VecDeque<Transfer>,
}

pub(crate) struct Portals {
    pub(super) receivers: BTreeMap<u16, Receiver>,
    /// (remote, port) → transfer ids allowed and not yet used.
    pub(super) allowances: BTreeMap<(u16, u16), VecDeque<u32>>,
    /// (remote, port) → refusals received and not yet reported.
    pub(super) refusals: BTreeMap<(u16, u16), u32>,
    /// (remote, port, id) of writes waiting for their completion, and the completions.
    pub(super) writing: BTreeSet<(u16, u16, u32)>,
    pub(super) sent: BTreeMap<(u16, u16, u32), Completion>,
    /// (port, sender, id) → revoked grants waiting for the router's confirmation.
    pub(super) retired: BTreeMap<(u16, u16, u32), Granted>,
    pub(super) unclaimed: VecDeque<(PortId, Completion)>,
    pub(super) next_transfer: u32,
}

pub(super) fn status_error(status: Status) -> NocError {
    match status {
        Status::NoGrant => NocError::Refused,
        Status::TooLarge | Status::OutOfGrant => NocError::TooLarge,
        _ => NocError::TransferFailed,
    }
}

impl Portals {
    pub(crate) const fn new() -> Self {
        Portals {
            receivers: BTreeMap::new(),
            allowances: BTreeMap::new(),
            refusals: BTreeMap::new(),
            writing: BTreeSet::new(),
            sent: BTreeMap::new(),
            retired: BTreeMap::new(),
            unclaimed: VecDeque::new(),
            next_transfer: 1,
        }
    }

    /// A `PortalData` chunk: data no longer travels in messages, so this is forged or stale.
    /// Dropped and counted; the first chunk is answered with a refusal.
    pub(crate) fn deliver_data(
        &mut self,
        header: &Header,
        counters: &mut Counters,
        replies: &mut Vec<Header>,
    ) -> Delivery {
        counters.portal_chunks_refused += 1;
        if header.flags & flags::FIRST != 0 {
            let refusal = Header::new(Kind::PortalAllow, ClusterId(0), header.src, header.port, 0);
            replies.push(refusal);
        }
        Delivery::Accept
    }

    pub(crate) fn deliver_allow(
        &mut self,
        header: &Header,
        payload: &[u8],
        events: &mut Vec<Event>,
        counters: &mut Counters,
    ) {
        let key = (header.src.0, header.port.0);
        let id = payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        match id {
            Some(id) if header.arg != 0 => self.allowances.entry(key).or_default().push_back(id),
            None if header.arg != 0 => counters.unexpected += 1,
            _ => {
                *self.refusals.entry(key).or_default() += 1;
                counters.portal_refusals_received += 1;
            }
        }
        events.push(Event::PortalAllow {
            remote: header.src,
            port: header.port,
        });
    }

    /// The router's `DmaComplete` for one side of a transfer.
    pub(crate) fn deliver_complete(
        &mut self,
        header: &Header,
        payload: &[u8],
        events: &mut Vec<Event>,
        counters: &mut Counters,
    ) {
        let Ok(done) = Completion::decode(payload) else {
            counters.unexpected += 1;
            return;
        };
        let port = header.port;
        match done.role {
            Role::Receiver => {
                let key = (done.peer, done.transfer);
                let granted = self
                    .receivers
                    .get_mut(&port.0)
                    .and_then(|r| r.granted.remove(&key).map(|g| (r, g)));
                if let Some((receiver, granted)) = granted {
                    let ok =
                        done.status == Status::Ok && done.bytes as usize <= MAX_PORTAL_TRANSFER;
                    if ok {
                        counters.portal_transfers_rx += 1;
                    } else {
                        counters.portal_dma_errors += 1;
                    }
                    let from = ClusterId(done.peer);
                    let error = status_error(done.status);
                    let arrival = match granted.landing {
                        Landing::Buffer(mut buffer) if ok => {
                            // SAFETY: the engine wrote `bytes` bytes at the start of the
                            // buffer (its capacity is MAX_PORTAL_TRANSFER, the grant's
                            // limit); u8 has no invalid values.
                            unsafe { buffer.set_len(done.bytes as usize) };
                            Ok(Arrival::Data(from, done.transfer, buffer))
                        }
                        Landing::Buffer(_) => Err(error),
                        Landing::Frames => Ok(Arrival::Frames(FramesArrival {
                            from,
                            transfer: done.transfer,
                            landed: if ok { Ok(done.bytes) } else { Err(error) },
                        })),
                    };
                    receiver.ready.push_back(arrival);
                    events.push(Event::PortalData(port));
                } else if self
                    .retired
                    .remove(&(port.0, done.peer, done.transfer))
                    .is_none()
                {
                    self.keep_unclaimed(port, done);
                }
            }
            Role::Sender => {
                let key = (done.peer, port.0, done.transfer);
                if self.writing.contains(&key) {
                    if done.status != Status::Ok {
                        counters.portal_dma_errors += 1;
                    }
                    self.sent.insert(key, done);
                } else {
                    if done.status == Status::NoGrant {
                        *self.refusals.entry((done.peer, port.0)).or_default() += 1;
                        counters.portal_refusals_received += 1;
                    }
                    self.keep_unclaimed(port, done);
                }
                events.push(Event::PortalAllow {
                    remote: ClusterId(done.peer),
                    port,
                });
            }
        }
    }

    pub(super) fn keep_unclaimed(&mut self, port: PortId, done: Completion) {
        if self.unclaimed.len() >= UNCLAIMED_LIMIT {
            self.unclaimed.pop_front();
        }
        self.unclaimed.push_back((port, done));
    }
}
