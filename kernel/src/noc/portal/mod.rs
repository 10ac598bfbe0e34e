//! Portals: bulk transfers of up to 1 MiB from one cluster to a port of another, which the
//! receiver must **allow** first. The data moves by DMA (noc-sim's engine, docs/noc.md §13):
//! no guest CPU copies or checksums it.
//!
//! * The receiver's `allow(remote)` sets aside a 1 MiB kernel receive buffer, **grants** its
//!   frames to `remote` under a fresh transfer id (a `DmaGrant` to the router, whose range
//!   list lives in a frame of ours), then tells `remote` with a `PortalAllow` (arg = max
//!   bytes, payload = the transfer id). The grant goes first through our TX ring, so the
//!   router holds it before the sender can know the id.
//! * The sender's `write` consumes one received allowance, posts a **descriptor** of its
//!   source buffer's frames, and waits (halting; the completion is an MSI-X) for the router's
//!   `DmaComplete`. **Without an allowance `write` returns `WouldBlock` and sends nothing** —
//!   the blocking layer waits for [`super::Event::PortalAllow`].
//! * `try_read` returns once the completion for a granted transfer arrived: the receive
//!   buffer becomes the data (no copy for `try_read_vec`).
//! * Errors: a descriptor the router rejects for lack of a grant is a refusal (the sender's
//!   next `write` to that portal returns [`NocError::Refused`]); oversized or out-of-grant
//!   is `TooLarge`; an integrity failure or a vanished peer reaches **both** sides as
//!   [`NocError::TransferFailed`] (the receiver's `try_read` returns it once); no completion
//!   within [`WRITE_TIMEOUT_NS`] is `TimedOut` for the writer.
//! * `unlink` revokes outstanding grants; their buffers are freed only when the router
//!   confirms (`Revoked`), so it can never write into freed memory.

use alloc::vec::Vec;
use hal::noc::dma::{self, RangeList};
use hal::noc::{ClusterId, Header, Kind, PortId};
use noc_proto::dma::Completion;
use noc_proto::wire::MAX_PORTAL_TRANSFER;
use x86_64::structures::paging::{PhysFrame, Size4KiB};

mod send;
mod state;

pub use send::*;
pub use state::FramesArrival;
pub(crate) use state::Portals;
use state::{Arrival, Granted, Landing};

use super::{check_cluster, pump, with_state, NocError};

/// How long a writer waits for its completion (the engine completes in microseconds of model
/// time; only a dropped transfer waits this long).
pub const WRITE_TIMEOUT_NS: u64 = 5_000_000_000;

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

/// Releases a local portal: data still queued is discarded, outstanding grants revoked.
pub fn unlink(portal: Portal) {
    with_state(|s| {
        let Some(receiver) = s.portals.receivers.remove(&portal.port.0) else {
            return;
        };
        for ((sender, id), granted) in receiver.granted {
            let revoke = dma::revoke_message(ClusterId(sender), id).encode();
            let header = dma::request_header(Kind::DmaGrant, portal.port);
            let _ = s.send_or_queue(header, &revoke, true);
            s.portals
                .retired
                .insert((portal.port.0, sender, id), granted);
        }
    });
    pump();
}

/// Lets `remote` write one transfer (≤ 1 MiB) to `portal`: grants it a receive buffer and
/// tells it so.
pub fn allow(portal: &Portal, remote: ClusterId) -> Result<(), NocError> {
    check_cluster(remote)?;
    let buffer: Vec<u8> = Vec::with_capacity(MAX_PORTAL_TRANSFER);
    let list = RangeList::of_buffer(buffer.as_ptr(), MAX_PORTAL_TRANSFER)
        .map_err(|_| NocError::TooLarge)?;
    grant(portal, remote, Landing::Buffer(buffer), list, None).map(|_| ())
}

/// As [`allow`], under the transfer id `transfer` the sender chose (and named in its own
/// request for the allowance): it uses this allowance only for that transfer
/// ([`post_buffer_as`]), and [`try_read_vec_as`] says which transfer landed — so a transfer
/// is bound end to end to the one it was allowed for. `BadEndpoint` if `remote` already holds
/// a grant of that id here.
pub fn allow_as(portal: &Portal, remote: ClusterId, transfer: u32) -> Result<(), NocError> {
    check_cluster(remote)?;
    let taken = with_state(|s| {
        s.portals
            .receivers
            .get(&portal.port.0)
            .is_some_and(|r| r.granted.contains_key(&(remote.0, transfer)))
    });
    if taken {
        return Err(NocError::BadEndpoint);
    }
    let buffer: Vec<u8> = Vec::with_capacity(MAX_PORTAL_TRANSFER);
    let list = RangeList::of_buffer(buffer.as_ptr(), MAX_PORTAL_TRANSFER)
        .map_err(|_| NocError::TooLarge)?;
    grant(
        portal,
        remote,
        Landing::Buffer(buffer),
        list,
        Some(transfer),
    )
    .map(|_| ())
}

/// Lets `remote` write one transfer straight into `frames` (≤ 1 MiB of them, in order): the
/// direct transport of a migration image. Returns the grant's transfer id (what
/// [`take_frames`] reports). The caller keeps the frames alive until the transfer completed
/// ([`try_read_frames`], [`take_frames`]) or [`grants_outstanding`] says the router gave the
/// grant up.
pub fn allow_frames(
    portal: &Portal,
    remote: ClusterId,
    frames: &[PhysFrame<Size4KiB>],
) -> Result<u32, NocError> {
    check_cluster(remote)?;
    let list = RangeList::of_frames(frames).map_err(|_| NocError::TooLarge)?;
    grant(portal, remote, Landing::Frames, list, None)
}

/// Sends `remote` again the `PortalAllow` of every grant of `portal` to it still unused
/// `after_ns` after it was last announced, oldest first: the first may have been lost on a
/// cut link. If it was not, `remote` holds the id twice and its second write is refused
/// (`NoGrant`): nothing lands twice. Returns how many went again.
pub fn reannounce(portal: &Portal, remote: ClusterId, after_ns: u64) -> usize {
    let now = hal::clock::now_ns();
    let count = with_state(|s| {
        let Some(receiver) = s.portals.receivers.get_mut(&portal.port.0) else {
            return 0;
        };
        let mut stale = Vec::new();
        let mine = (remote.0, 0)..=(remote.0, u32::MAX);
        for ((_, id), granted) in receiver.granted.range_mut(mine) {
            if now.saturating_sub(granted.announced_ns) >= after_ns {
                granted.announced_ns = now;
                stale.push((*id, granted.list.bytes()));
            }
        }
        for &(id, limit) in &stale {
            let mut header = Header::new(Kind::PortalAllow, ClusterId(0), remote, portal.port, 0);
            header.arg = limit;
            let _ = s.send_or_queue(header, &id.to_le_bytes(), true);
        }
        stale.len()
    });
    if count > 0 {
        pump();
    }
    count
}

/// Grants `list` to `remote` under transfer id `chosen` or a fresh one, then tells `remote`
/// (the grant goes first through our TX ring, so the router holds it before the sender knows
/// the id).
fn grant(
    portal: &Portal,
    remote: ClusterId,
    landing: Landing,
    list: RangeList,
    chosen: Option<u32>,
) -> Result<u32, NocError> {
    let limit = list.bytes();
    let result = with_state(|s| {
        let id = chosen.unwrap_or_else(|| {
            let id = s.portals.next_transfer;
            s.portals.next_transfer = id.wrapping_add(1).max(1);
            id
        });
        let grant = dma::grant_message(remote, id, &list, limit).encode();
        s.send_or_queue(
            dma::request_header(Kind::DmaGrant, portal.port),
            &grant,
            true,
        )?;
        let mut header = Header::new(Kind::PortalAllow, ClusterId(0), remote, portal.port, 0);
        header.arg = limit;
        s.send_or_queue(header, &id.to_le_bytes(), true)?;
        let receiver = s.portals.receivers.entry(portal.port.0).or_default();
        let granted = Granted {
            landing,
            list,
            announced_ns: hal::clock::now_ns(),
        };
        receiver.granted.insert((remote.0, id), granted);
        Ok(id)
    });
    pump();
    result
}

/// Revokes every grant of `portal` to `remote` not yet used (a transfer abandoned). Their
/// memory must stay untouched until [`grants_outstanding`] reaches 0.
pub fn revoke(portal: &Portal, remote: ClusterId) {
    with_state(|s| {
        let Some(receiver) = s.portals.receivers.get_mut(&portal.port.0) else {
            return;
        };
        let mine: Vec<(u16, u32)> = receiver
            .granted
            .keys()
            .filter(|(sender, _)| *sender == remote.0)
            .copied()
            .collect();
        let taken: Vec<(u32, Granted)> = mine
            .into_iter()
            .filter_map(|key| receiver.granted.remove(&key).map(|g| (key.1, g)))
            .collect();
        for (id, granted) in taken {
            let revoke = dma::revoke_message(remote, id).encode();
            let header = dma::request_header(Kind::DmaGrant, portal.port);
            let _ = s.send_or_queue(header, &revoke, true);
            s.portals
                .retired
                .insert((portal.port.0, remote.0, id), granted);
        }
    });
    pump();
}

/// Grants of `portal` the router may still write into (given and not completed, or revoked
/// and not yet confirmed).
pub fn grants_outstanding(portal: &Portal) -> usize {
    pump();
    with_state(|s| {
        let granted = s
            .portals
            .receivers
            .get(&portal.port.0)
            .map_or(0, |r| r.granted.len());
        let retired = s
            .portals
            .retired
            .keys()
            .filter(|(port, _, _)| *port == portal.port.0)
            .count();
        granted + retired
    })
}

/// Takes the oldest completed transfer into `buffer`: `(sender, length)`. `WouldBlock` if none;
/// `BufferTooSmall` leaves it queued; a failed transfer is returned (once) as its error.
pub fn try_read(portal: &Portal, buffer: &mut [u8]) -> Result<(ClusterId, usize), NocError> {
    pump();
    with_state(|s| {
        let receiver = s
            .portals
            .receivers
            .get_mut(&portal.port.0)
            .ok_or(NocError::WouldBlock)?;
        let result = match receiver.ready.front().ok_or(NocError::WouldBlock)? {
            Err(error) => Err(*error),
            Ok(Arrival::Data(source, _, data)) => {
                let target = buffer
                    .get_mut(..data.len())
                    .ok_or(NocError::BufferTooSmall)?;
                target.copy_from_slice(data);
                Ok((*source, data.len()))
            }
            Ok(Arrival::Frames(..)) => return Err(NocError::WouldBlock),
        };
        receiver.ready.pop_front();
        result
    })
}

/// As [`try_read`], handing over the kernel's buffer.
pub fn try_read_vec(portal: &Portal) -> Result<(ClusterId, Vec<u8>), NocError> {
    take_arrival(portal, |arrival| match arrival {
        Arrival::Data(from, _, data) => Ok((from, data)),
        other => Err(other),
    })
}

/// As [`try_read_vec`], with the transfer id the data landed under (see [`allow_as`]).
pub fn try_read_vec_as(portal: &Portal) -> Result<(ClusterId, u32, Vec<u8>), NocError> {
    take_arrival(portal, |arrival| match arrival {
        Arrival::Data(from, transfer, data) => Ok((from, transfer, data)),
        other => Err(other),
    })
}

/// The oldest transfer into granted frames ([`allow_frames`]): `(sender, bytes)`. A failed
/// transfer is returned (once) as its error.
pub fn try_read_frames(portal: &Portal) -> Result<(ClusterId, u32), NocError> {
    let arrival = take_frames(portal)?;
    arrival.landed.map(|bytes| (arrival.from, bytes))
}

/// As [`try_read_frames`], with the grant it used (failed or not): for a reader with several
/// grants open at once. `WouldBlock` if none.
pub fn take_frames(portal: &Portal) -> Result<FramesArrival, NocError> {
    take_arrival(portal, |arrival| match arrival {
        Arrival::Frames(arrival) => Ok(arrival),
        other => Err(other),
    })
}

/// Takes the oldest arrival of `portal` if `wanted` accepts its kind (or it is an error);
/// `WouldBlock`, leaving it queued, otherwise.
fn take_arrival<T>(
    portal: &Portal,
    wanted: impl FnOnce(Arrival) -> Result<T, Arrival>,
) -> Result<T, NocError> {
    pump();
    with_state(|s| {
        let ready = &mut s
            .portals
            .receivers
            .get_mut(&portal.port.0)
            .ok_or(NocError::WouldBlock)?
            .ready;
        match ready.pop_front() {
            None => Err(NocError::WouldBlock),
            Some(Err(error)) => Err(error),
            Some(Ok(arrival)) => wanted(arrival).map_err(|other| {
                ready.push_front(Ok(other));
                NocError::WouldBlock
            }),
        }
    })
}

/// Completions that matched no write or grant of ours on `port` (e.g. rejections of
/// descriptors posted with the raw driver), oldest first.
pub fn take_unclaimed(port: PortId) -> Vec<Completion> {
    with_state(|s| {
        let (mine, rest) = s.portals.unclaimed.drain(..).partition(|(p, _)| *p == port);
        s.portals.unclaimed = rest;
        mine.into_iter().map(|(_, c)| c).collect()
    })
}
