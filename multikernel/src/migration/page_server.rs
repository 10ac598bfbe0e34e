//! Post-copy at the cluster a process left: its remaining pages, kept after the commit and
//! sent to its new cluster — a requested page first, the rest in the background
//! (`multikernel_proto::postcopy::Pusher`), copied frame to frame by DMA into the landing
//! frames the new cluster grants on its post-copy portal.
//!
//! Each transfer describes itself: its first frame is a header naming the pages the others
//! hold ([`uarea::precopy::encode_round`], the process's pid as the round). So nothing pairs a
//! grant with a piece by order, and a lost or repeated allowance on a cut link can never put
//! one page's bytes under another's address — it only costs a grant, which the new cluster
//! re-announces. A write that fails (a cut link, a refused stale allowance, a corrupted copy)
//! puts its pages back at the head of the queue: they go again, nothing is lost.
//!
//! Every DMA write completes before the kernel goes on, so once the last page is written the
//! new cluster has them all and the frames here are freed: the residual dependency ends.

use crate::ports::POSTCOPY_PAGES_PORT;
use abi::{ClusterId, Pid};
use alloc::vec::Vec;
use hal::paging::AddressSpace;
use kernel::noc::{portal, NocError};
use multikernel_proto::postcopy::Pusher;
use uarea::precopy::encode_round;
use x86_64::structures::paging::{PhysFrame, Size4KiB};

/// Pieces one scheduler pass may send.
const PIECES_PER_PASS: usize = 4;
/// Pages one transfer carries: a 1 MiB transfer is the header frame and this many pages.
pub const PIECE_PAGES: usize = uarea::precopy::MAX_PIECE_PAGES - 1;

/// Why a post-copy cannot be served.
#[derive(Debug)]
pub enum ServeError {
    Portal(NocError),
    /// No frame for the transfers' header.
    NoFrame,
}

pub struct PageServer {
    pub pid: Pid,
    pub to: ClusterId,
    /// The frozen process's memory, kept for its pages.
    space: AddressSpace,
    pusher: Pusher,
    pages: portal::PortalTx,
    /// Each transfer's first frame: which pages follow (rewritten per piece; a write
    /// completes before the next begins).
    header: PhysFrame<Size4KiB>,
    started_ns: u64,
}

impl PageServer {
    pub fn new(
        pid: Pid,
        to: ClusterId,
        space: AddressSpace,
        remote: Vec<u64>,
    ) -> Result<PageServer, ServeError> {
        let pages = portal::open(to, POSTCOPY_PAGES_PORT).map_err(ServeError::Portal)?;
        let header = hal::frames::alloc().map_err(|_| ServeError::NoFrame)?;
        Ok(PageServer {
            pid,
            to,
            space,
            pusher: Pusher::new(remote),
            pages,
            header,
            started_ns: hal::clock::now_ns(),
        })
    }

    /// A thread at the new cluster waits for `page`.
    pub fn on_request(&mut self, page: u64) {
        self.pusher.on_request(page);
    }

    /// One pass: write what the new cluster allows. True once every page went.
    pub fn step(&mut self) -> Result<bool, NocError> {
        for _ in 0..PIECES_PER_PASS {
            if self.pusher.is_done() || !portal::is_allowed(&self.pages) {
                break;
            }
            let piece = self.pusher.next(PIECE_PAGES);
            if piece.is_empty() {
                break;
            }
            let written = self
                .frames_of(&piece)
                .and_then(|frames| portal::write_frames(&self.pages, &frames));
            if let Err(error) = written {
                // Not delivered: those pages go again, first.
                self.pusher.resend(piece);
                return Err(error);
            }
        }
        let done = self.pusher.is_done();
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

    /// The header frame, filled in for `pages`, then the frames that hold them.
    fn frames_of(&self, pages: &[u64]) -> Result<Vec<PhysFrame<Size4KiB>>, NocError> {
        let header = encode_round(self.pid.raw(), pages);
        if header.len() > 4096 {
            return Err(NocError::TooLarge);
        }
        let at = hal::physmap::phys_to_virt(self.header.start_address());
        // SAFETY: `self.header` is a frame this server allocated and alone uses (freed on
        // drop), reached through the physical map; `header` fits in it (checked above), and
        // no DMA reads it now (each write completed before this one is built).
        unsafe {
            core::ptr::copy_nonoverlapping(header.as_ptr(), at.as_mut_ptr::<u8>(), header.len())
        };
        let mut frames = Vec::new();
        frames
            .try_reserve_exact(pages.len() + 1)
            .map_err(|_| NocError::TooLarge)?;
        frames.push(self.header);
        for &page in pages {
            let (phys, _) = self
                .space
                .translate(x86_64::VirtAddr::new(page))
                .ok_or(NocError::TransferFailed)?;
            frames.push(PhysFrame::containing_address(phys));
        }
        Ok(frames)
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        // No write is in flight: `write_frames` returns only once the engine is done with it.
        let _ = hal::frames::free(self.header);
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
            Err(ServeError::Portal(error)) => {
                log::warn!("post-copy of {pid}: cannot serve its pages: {error:?}")
            }
            Err(ServeError::NoFrame) => {
                log::warn!("post-copy of {pid}: cannot serve its pages: no frame for a header")
            }
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
                // The link failed mid-piece (cut, refused, corrupted): keep serving; the
                // piece goes again with the next allowance.
                log::warn!("post-copy of {}: {error:?}", server.pid);
                true
            }
        });
    }
}
