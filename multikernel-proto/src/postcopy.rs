//! Post-copy's residual dependency, sans-IO: after the commit the process runs at its new
//! cluster while its remaining pages are still at the old one. The old cluster's [`Pusher`]
//! sends them all, a requested page first and its neighbours next; the new cluster's
//! [`Puller`] asks for a page a thread waits on, asks again while the link is down, and knows
//! when nothing is left.
//!
//! The order follows QEMU and CRIU: a request jumps the queue and the scan restarts after the
//! requested page (a fault's neighbours are likely next); while no request comes the pushes
//! grow, from 16 pages (64 KiB) to 1024 (4 MiB) a pass. Every page is sent once (pushed or
//! pulled): a request for a page already sent is ignored, the page is on its way; a request
//! lost on the link is asked again every `retransmit_ns`, so a link that heals resumes the
//! waiting threads and loses nothing. If the old cluster is gone for good with pages left,
//! the process cannot be whole and must end (the driver's job, `Puller::remaining`).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

/// Pages a pass pushes after a request (64 KiB).
pub const FIRST_CHUNK: usize = 16;
/// Most pages a pass pushes once no request came for a while (4 MiB).
pub const MAX_CHUNK: usize = 1024;

/// The old cluster's side: which pages to send next.
#[derive(Debug)]
pub struct Pusher {
    pending: BTreeSet<u64>,
    urgent: VecDeque<u64>,
    /// The scan goes on from here (wrapping).
    cursor: u64,
    chunk: usize,
    /// Pages sent because a thread waited on them / in the background.
    pub pulled: u64,
    pub pushed: u64,
}

impl Pusher {
    pub fn new(pages: impl IntoIterator<Item = u64>) -> Pusher {
        Pusher {
            pending: pages.into_iter().collect(),
            urgent: VecDeque::new(),
            cursor: 0,
            chunk: FIRST_CHUNK,
            pulled: 0,
            pushed: 0,
        }
    }

    /// The new cluster waits for `page`: it goes next (ignored if it was sent already).
    pub fn on_request(&mut self, page: u64) {
        if self.pending.contains(&page) && !self.urgent.contains(&page) {
            self.urgent.push_back(page);
            self.cursor = page;
            self.chunk = FIRST_CHUNK;
        }
    }

    /// The next pages to send, at most `max`: requested ones first, then the scan.
    pub fn next(&mut self, max: usize) -> Vec<u64> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(page) = self.urgent.pop_front() else {
                break;
            };
            if self.pending.remove(&page) {
                self.pulled += 1;
                out.push(page);
            }
        }
        let budget = max.min(self.chunk.max(out.len()));
        while out.len() < budget {
            let next = self
                .pending
                .range(self.cursor..)
                .next()
                .or_else(|| self.pending.iter().next())
                .copied();
            let Some(page) = next else {
                break;
            };
            self.pending.remove(&page);
            self.cursor = page;
            self.pushed += 1;
            out.push(page);
        }
        if self.urgent.is_empty() {
            self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        }
        out
    }

    /// `pages` did not get through (the transfer failed): they go again, first.
    pub fn resend(&mut self, pages: Vec<u64>) {
        for page in pages {
            if self.pending.insert(page) {
                self.urgent.push_back(page);
            }
        }
    }

    /// Pages not sent yet.
    pub fn remaining(&self) -> usize {
        self.pending.len()
    }

    /// Every page was sent.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The new cluster's side: which pages are still away and which were asked for.
#[derive(Debug)]
pub struct Puller {
    remote: BTreeSet<u64>,
    /// Pages asked for, with when they were last asked.
    asked: BTreeMap<u64, u64>,
    retransmit_ns: u64,
}

impl Puller {
    pub fn new(pages: impl IntoIterator<Item = u64>, retransmit_ns: u64) -> Puller {
        Puller {
            remote: pages.into_iter().collect(),
            asked: BTreeMap::new(),
            retransmit_ns,
        }
    }

    /// A thread waits for `page`: `Some(page)` if a request must go out now.
    pub fn on_fault(&mut self, page: u64, now_ns: u64) -> Option<u64> {
        if !self.remote.contains(&page) || self.asked.contains_key(&page) {
            return None;
        }
        self.asked.insert(page, now_ns);
        Some(page)
    }

    /// `page` arrived: true if it was still away (map it), false if it is stale.
    pub fn on_arrived(&mut self, page: u64) -> bool {
        self.asked.remove(&page);
        self.remote.remove(&page)
    }

    /// The process no longer has `page` (unmapped): nothing to wait for.
    pub fn forget(&mut self, page: u64) {
        self.asked.remove(&page);
        self.remote.remove(&page);
    }

    /// Requests to send again (no page came for `retransmit_ns`: lost, or the link is down).
    pub fn on_tick(&mut self, now_ns: u64) -> Vec<u64> {
        let mut again = Vec::new();
        for (page, at) in self.asked.iter_mut() {
            if now_ns.saturating_sub(*at) >= self.retransmit_ns {
                *at = now_ns;
                again.push(*page);
            }
        }
        again
    }

    /// When [`Puller::on_tick`] next has work.
    pub fn next_deadline(&self) -> Option<u64> {
        self.asked
            .values()
            .map(|at| at.saturating_add(self.retransmit_ns))
            .min()
    }

    /// Pages still away.
    pub fn remaining(&self) -> usize {
        self.remote.len()
    }

    /// Every page is here.
    pub fn is_complete(&self) -> bool {
        self.remote.is_empty()
    }
}

#[cfg(test)]
mod partition;
#[cfg(test)]
mod tests;
