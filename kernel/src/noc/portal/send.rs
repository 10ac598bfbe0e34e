//! The sending side of a portal: allowances received, writes posted to the DMA engine, and
//! their completions. Kept apart from the receiving side (`super`) because the two never
//! share a step: a sender only spends what a receiver granted.

use alloc::collections::VecDeque;
use hal::noc::dma::{self, RangeList};
use hal::noc::{Kind, PortId};
use noc_proto::dma::Status;
use noc_proto::wire::MAX_PORTAL_TRANSFER;
use x86_64::structures::paging::{PhysFrame, Size4KiB};

use super::state::status_error;
use super::{PortalTx, WRITE_TIMEOUT_NS};
use crate::noc::{check_cluster, pump, with_state, ClusterId, NocError};

/// Names portal `port` on cluster `remote`.
pub fn open(remote: ClusterId, port: PortId) -> Result<PortalTx, NocError> {
    check_cluster(remote)?;
    Ok(PortalTx { remote, port })
}

/// True if `remote` has allowed transfer `transfer` ([`allow_as`]) and we have not made it.
pub fn is_allowed_as(to: &PortalTx, transfer: u32) -> bool {
    pump();
    with_state(|s| {
        s.portals
            .allowances
            .get(&(to.remote.0, to.port.0))
            .is_some_and(|ids| ids.contains(&transfer))
    })
}

/// True if `remote` has allowed a transfer we have not made yet.
pub fn is_allowed(to: &PortalTx) -> bool {
    pump();
    with_state(|s| {
        s.portals
            .allowances
            .get(&(to.remote.0, to.port.0))
            .is_some_and(|ids| !ids.is_empty())
    })
}

/// Moves `data` (≤ 1 MiB, frame-backed kernel memory) to the remote portal by DMA and waits
/// for the completion. `WouldBlock` (nothing sent) without an allowance; `Refused` if the
/// receiver refused; `TransferFailed` if the engine reported corruption or the peer vanished;
/// `TimedOut` if no completion came.
pub fn write(to: &PortalTx, data: &[u8]) -> Result<(), NocError> {
    if data.len() > MAX_PORTAL_TRANSFER {
        return Err(NocError::TooLarge);
    }
    write_list(to, || RangeList::of_buffer(data.as_ptr(), data.len()))
}

/// As [`write()`], from whole frames (≤ 1 MiB of them, in order): a frozen process's pages,
/// read by the engine where they are.
pub fn write_frames(to: &PortalTx, frames: &[PhysFrame<Size4KiB>]) -> Result<(), NocError> {
    write_list(to, || RangeList::of_frames(frames))
}

fn write_list(
    to: &PortalTx,
    describe: impl FnOnce() -> Result<RangeList, hal::noc::dma::ListError>,
) -> Result<(), NocError> {
    let posted = post_list(to, None, describe)?;
    let _ = crate::noc::wait_until(WRITE_TIMEOUT_NS, || {
        with_state(|s| s.portals.sent.contains_key(&posted.transfer))
    });
    // The router has read the list (or never will).
    take_completion(&posted).unwrap_or_else(|| {
        abandon(posted);
        Err(NocError::TimedOut)
    })
}

/// A write whose descriptor went to the router and whose completion has not been taken yet
/// ([`post_ranges`]). It owns the range list the router reads.
pub struct Posted {
    transfer: (u16, u16, u32),
    _list: RangeList,
}

/// Starts a write of physical pieces `(address, length)` (≤ 1 MiB in all, at most
/// `MAX_RANGES` after coalescing) and returns at once: the caller polls
/// [`take_completion`] and keeps the memory alive (pinned) until then — or, if it gives up,
/// until [`Fence::passed`]. Errors as [`write`], before anything was sent.
pub fn post_ranges(to: &PortalTx, ranges: &[(u64, u32)]) -> Result<Posted, NocError> {
    post_list(to, None, || RangeList::of_ranges(ranges))
}

/// As [`post_ranges`], from a kernel buffer (frame-backed, alive until the completion).
pub fn post_buffer(to: &PortalTx, data: &[u8]) -> Result<Posted, NocError> {
    if data.len() > MAX_PORTAL_TRANSFER {
        return Err(NocError::TooLarge);
    }
    post_list(to, None, || RangeList::of_buffer(data.as_ptr(), data.len()))
}

/// As [`post_ranges`], spending only the allowance of transfer `transfer` ([`allow_as`]):
/// `WouldBlock` until that one came, whatever other allowances `to` gave.
pub fn post_ranges_as(
    to: &PortalTx,
    transfer: u32,
    ranges: &[(u64, u32)],
) -> Result<Posted, NocError> {
    post_list(to, Some(transfer), || RangeList::of_ranges(ranges))
}

/// As [`post_buffer`], spending only the allowance of transfer `transfer`.
pub fn post_buffer_as(to: &PortalTx, transfer: u32, data: &[u8]) -> Result<Posted, NocError> {
    if data.len() > MAX_PORTAL_TRANSFER {
        return Err(NocError::TooLarge);
    }
    post_list(to, Some(transfer), || {
        RangeList::of_buffer(data.as_ptr(), data.len())
    })
}

/// The completion of `posted`, once it came: `Ok`, or the engine's error.
pub fn take_completion(posted: &Posted) -> Option<Result<(), NocError>> {
    let done = with_state(|s| {
        let done = s.portals.sent.remove(&posted.transfer)?;
        s.portals.writing.remove(&posted.transfer);
        Some(done)
    })?;
    Some(match done.status {
        Status::Ok => Ok(()),
        status => Err(status_error(status)),
    })
}

/// Gives up waiting for `posted` (a late completion is kept as unclaimed).
pub fn abandon(posted: Posted) {
    with_state(|s| s.portals.writing.remove(&posted.transfer));
}

/// Proof that the DMA engine is done with everything this cluster asked of it before the
/// fence was set: the router takes one cluster's requests in order, each to its end, so once
/// a request sent after them has left our TX ring it has finished with them (copied, failed
/// or dropped). What a timed-out write's pages wait for before they may be freed.
pub struct Fence {
    sent: bool,
}

impl Fence {
    /// Sets a fence behind every request sent so far (a revoke of a grant nobody holds:
    /// the router answers it, harmlessly, as an unclaimed completion).
    pub fn new() -> Fence {
        let mut fence = Fence { sent: false };
        fence.try_send();
        fence
    }

    fn try_send(&mut self) {
        if !self.sent {
            let revoke = dma::revoke_message(crate::noc::cluster(), 0).encode();
            let header = dma::request_header(Kind::DmaGrant, PortId(0));
            self.sent = with_state(|s| s.send_or_queue(header, &revoke, true)).is_ok();
        }
    }

    /// True once the fence itself left our TX ring.
    pub fn passed(&mut self) -> bool {
        self.try_send();
        pump();
        self.sent && crate::noc::backlog_bytes() == 0 && hal::noc::tx_idle()
    }
}

impl Default for Fence {
    fn default() -> Fence {
        Fence::new()
    }
}

/// Consumes an allowance of `to` (the oldest, or that of transfer `chosen`) and posts the
/// descriptor `describe` builds.
fn post_list(
    to: &PortalTx,
    chosen: Option<u32>,
    describe: impl FnOnce() -> Result<RangeList, hal::noc::dma::ListError>,
) -> Result<Posted, NocError> {
    pump();
    let key = (to.remote.0, to.port.0);
    let id = with_state(|s| {
        if let Some(refusals) = s.portals.refusals.get_mut(&key).filter(|n| **n > 0) {
            *refusals -= 1;
            return Err(NocError::Refused);
        }
        let ids = s.portals.allowances.get_mut(&key);
        match chosen {
            None => ids.and_then(VecDeque::pop_front),
            Some(id) => ids
                .and_then(|ids| ids.iter().position(|i| *i == id).map(|at| ids.remove(at)))
                .flatten(),
        }
        .ok_or(NocError::WouldBlock)
    })?;
    let list = match describe() {
        Ok(list) => list,
        Err(_) => {
            // Not describable (unmapped or too fragmented): keep the allowance.
            with_state(|s| s.portals.allowances.entry(key).or_default().push_front(id));
            return Err(NocError::TooLarge);
        }
    };
    let transfer = (to.remote.0, to.port.0, id);
    let descriptor = dma::descriptor_message(to.remote, id, &list).encode();
    with_state(|s| {
        s.portals.writing.insert(transfer);
        let header = dma::request_header(Kind::DmaDescriptor, to.port);
        s.send_or_queue(header, &descriptor, true)
    })
    .inspect_err(|_| {
        with_state(|s| s.portals.writing.remove(&transfer));
    })?;
    pump();
    Ok(Posted {
        transfer,
        _list: list,
    })
}
