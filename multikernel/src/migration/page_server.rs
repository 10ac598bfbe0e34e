//! Post-copy at the cluster a process left: its remaining pages, kept after the commit and
//! sent to its new cluster — a requested page first, the rest in the background
//! (`multikernel_proto::postcopy::Pusher`), named in pieces on the new cluster's post-copy
//! index portal and copied frame to frame into the frames it grants, as pre-copy does.
//!
//! Every DMA write completes before the kernel goes on, so once the last page is written the
//! new cluster has them all and the frames here are freed: the residual dependency ends.

use crate::ports::{POSTCOPY_INDEX_PORT, POSTCOPY_PAGES_PORT};
use abi::{ClusterId, Pid};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use hal::paging::AddressSpace;
use kernel::noc::{portal, NocError};
use multikernel_proto::postcopy::Pusher;
use uarea::precopy::{encode_round, MAX_PIECE_PAGES};
use x86_64::structures::paging::{PhysFrame, Size4KiB};

/// Pieces one scheduler pass may send.
const PIECES_PER_PASS: usize = 4;

pub struct PageServer {
    pub pid: Pid,
    pub to: ClusterId,
    /// The frozen process's memory, kept for its pages.
    space: AddressSpace,
    pusher: Pusher,
    index: portal::PortalTx,
    pages: portal::PortalTx,
    /// Pieces named, whose pages are not written yet.
    unwritten: VecDeque<Vec<u64>>,
    started_ns: u64,
}

impl PageServer {
    pub fn new(
        pid: Pid,
        to: ClusterId,
        space: AddressSpace,
        remote: Vec<u64>,
    ) -> Result<PageServer, NocError> {
        Ok(PageServer {
            pid,
            to,
            space,
            pusher: Pusher::new(remote),
            index: portal::open(to, POSTCOPY_INDEX_PORT)?,
            pages: portal::open(to, POSTCOPY_PAGES_PORT)?,
            unwritten: VecDeque::new(),
            started_ns: hal::clock::now_ns(),
        })
    }

    /// A thread at the new cluster waits for `page`.
    pub fn on_request(&mut self, page: u64) {
        self.pusher.on_request(page);
    }

    /// One pass: name and write what the new cluster allows. True once every page went.
    pub fn step(&mut self) -> Result<bool, NocError> {
        for _ in 0..PIECES_PER_PASS {
            let mut moved = false;
            if self.unwritten.len() < 2 && !self.pusher.is_done() && portal::is_allowed(&self.index)
            {
                let piece = self.pusher.next(MAX_PIECE_PAGES);
                if !piece.is_empty() {
                    if let Err(error) =
                        portal::write(&self.index, &encode_round(self.pid.raw(), &piece))
                    {
                        // Not named (a stale allowance, a fault): those pages go again.
                        self.pusher.resend(piece);
                        return Err(error);
                    }
                    self.unwritten.push_back(piece);
                    moved = true;
                }
            }
            if !self.unwritten.is_empty() && portal::is_allowed(&self.pages) {
                if let Some(piece) = self.unwritten.pop_front() {
                    let frames = self.frames_of(&piece)?;
                    if let Err(error) = portal::write_frames(&self.pages, &frames) {
                        // Not delivered: those pages go again.
                        self.pusher.resend(piece);
                        return Err(error);
                    }
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        let done = self.pusher.is_done() && self.unwritten.is_empty();
        if done {
            let ms = hal::clock::now_ns().saturating_sub(self.started_ns) / 1_000_000;
            log::info!(
                "post-copy of {} to c{}: every page sent ({} pulled on demand, {} pushed) {} ms after the commit",
                self.pid,
                self.to.0,
                self.pusher.pulled,
                self.pusher.pushed,
                ms
            );
        }
        Ok(done)
    }

    fn frames_of(&self, pages: &[u64]) -> Result<Vec<PhysFrame<Size4KiB>>, NocError> {
        pages
            .iter()
            .map(|&page| {
                self.space
                    .translate(x86_64::VirtAddr::new(page))
                    .map(|(phys, _)| PhysFrame::containing_address(phys))
                    .ok_or(NocError::TransferFailed)
            })
            .collect()
    }
}

/// Every post-copy served from here (at most one per destination at a time).
#[derive(Default)]
pub struct PageServers {
    servers: Vec<PageServer>,
}

impl PageServers {
    /// Whether any post-copy is still being served.
    pub fn is_serving(&self) -> bool {
        !self.servers.is_empty()
    }

    /// Whether a post-copy to `to` is still being served.
    pub fn serving_to(&self, to: ClusterId) -> bool {
        self.servers.iter().any(|s| s.to == to)
    }

    /// Keeps `space` (the process just committed away) and starts sending `remote` to `to`.
    pub fn start(&mut self, pid: Pid, to: ClusterId, space: AddressSpace, remote: Vec<u64>) {
        let count = remote.len();
        match PageServer::new(pid, to, space, remote) {
            Ok(server) => {
                log::info!(
                    "post-copy of {pid}: serving its {count} remaining pages to c{}",
                    to.0
                );
                self.servers.push(server)
            }
            Err(error) => log::warn!("post-copy of {pid}: cannot serve its pages: {error:?}"),
        }
    }

    pub fn on_request(&mut self, from: ClusterId, pid: Pid, page: u64) {
        if let Some(s) = self
            .servers
            .iter_mut()
            .find(|s| s.pid == pid && s.to == from)
        {
            s.on_request(page);
        }
    }

    /// The new cluster has every page, or the process ended there: drop what is kept.
    pub fn on_done(&mut self, from: ClusterId, pid: Pid) {
        self.servers.retain(|s| !(s.pid == pid && s.to == from));
    }

    /// `cluster` left: its processes' pages are needed no more.
    pub fn on_peer_gone(&mut self, cluster: ClusterId) {
        self.servers.retain(|s| s.to != cluster);
    }

    /// One pass of every server; a finished one frees its frames.
    pub fn step(&mut self) {
        self.servers.retain_mut(|server| match server.step() {
            Ok(done) => !done,
            Err(error) => {
                // The link failed mid-piece: keep serving; the piece goes again on request.
                log::warn!("post-copy of {}: {error:?}", server.pid);
                true
            }
        });
    }
}
