//! Post-copy at a process's new cluster: it runs while some of its pages are still at the
//! cluster it left. A thread that touches one waits (`kernel::process::remote`); this asks the
//! old cluster for the page (again while the link is down: `multikernel_proto::postcopy::
//! Puller`), grants frames for every piece the old cluster names, maps each page as it lands
//! and lets its waiters go. When every page is here it tells the old cluster, which frees its
//! copy, and reports what it measured to the old cluster's stats daemon, which keeps the
//! migration's record. If the old cluster leaves first, the process cannot be whole: it is
//! ended with [`PAGES_LOST_EXIT`] and a report, never run with missing memory.

use crate::ports::{POSTCOPY_INDEX_PORT, POSTCOPY_PAGES_PORT};
use abi::{ClusterId, Pid};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use kernel::noc::{link_cost, portal, NocError};
use kernel::process::with_table;
use multikernel_proto::message::{Message, PostCopyReport};
use multikernel_proto::postcopy::Puller;
use uarea::precopy::{self, Piece};
use x86_64::structures::paging::{Page, PhysFrame, Size4KiB};

use crate::outbox::Outbox;

/// Exit code of a process whose old cluster left during post-copy with pages still there
/// (`docs/abi.md`: what its parent's `wait` sees).
pub const PAGES_LOST_EXIT: i32 = -12;
/// A request with no page after this long is asked again (lost, or the link is down).
const RETRANSMIT_NS: u64 = 50_000_000;

/// One process whose pages are still coming.
struct Client {
    pid: Pid,
    from: ClusterId,
    puller: Puller,
    /// Pieces granted, in order, awaiting their transfer: the pages and their frames.
    granted: VecDeque<(Vec<u64>, Vec<PhysFrame<Size4KiB>>)>,
    /// When a thread started waiting for each requested page.
    waits: BTreeMap<u64, u64>,
    wait_ns: u64,
    pulled: u64,
    pushed: u64,
    started_ns: u64,
    /// Bytes this post-copy put on the NoC, counted here (for the record's `link_bytes`).
    link_bytes: u64,
}

impl Client {
    /// What this post-copy measured (`whole`: every page arrived), counting the report and
    /// the `PostCopyDone` that goes with it.
    fn report(&mut self, whole: bool) -> Message {
        self.link_bytes += 2 * link_cost::message();
        Message::PostCopyReport(PostCopyReport {
            pid: self.pid,
            whole,
            pulled: self.pulled,
            pushed: self.pushed,
            fault_wait_ns: self.wait_ns,
            residual_ns: hal::clock::now_ns().saturating_sub(self.started_ns),
            link_bytes: self.link_bytes,
        })
    }
}

pub struct PageClients {
    index: portal::Portal,
    pages: portal::Portal,
    clients: Vec<Client>,
    /// Frames of abandoned pieces the engine may still write (freed when no grant is open).
    retiring: Vec<PhysFrame<Size4KiB>>,
}

impl PageClients {
    pub fn new() -> Result<PageClients, NocError> {
        Ok(PageClients {
            index: portal::create(POSTCOPY_INDEX_PORT)?,
            pages: portal::create(POSTCOPY_PAGES_PORT)?,
            clients: Vec::new(),
            retiring: Vec::new(),
        })
    }

    /// `pid` runs here now, its remote pages still at `from`.
    pub fn start(&mut self, pid: Pid, from: ClusterId) {
        let remote: Vec<u64> = with_table(|t| {
            t.processes
                .get(&pid)
                .map(|p| p.space.remote_pages().collect())
        })
        .unwrap_or_default();
        log::info!(
            "post-copy of {pid}: resumed with {} pages still at c{}",
            remote.len(),
            from.0
        );
        if remote.is_empty() {
            return;
        }
        // Two pieces in flight: the old cluster never waits for a round trip.
        let _ = portal::allow(&self.index, from);
        let _ = portal::allow(&self.index, from);
        self.clients.push(Client {
            pid,
            from,
            puller: Puller::new(remote, RETRANSMIT_NS),
            granted: VecDeque::new(),
            waits: BTreeMap::new(),
            wait_ns: 0,
            pulled: 0,
            pushed: 0,
            started_ns: hal::clock::now_ns(),
            link_bytes: 0,
        });
    }

    /// A thread of `pid` waits for `page`.
    pub fn on_fault(&mut self, pid: Pid, page: u64, out: &mut Outbox) {
        let now = hal::clock::now_ns();
        let Some(client) = self.clients.iter_mut().find(|c| c.pid == pid) else {
            return;
        };
        client.waits.entry(page).or_insert(now);
        if let Some(page) = client.puller.on_fault(page, now) {
            client.link_bytes += link_cost::message();
            out.send(client.from, Message::PageRequest { pid, page });
        }
    }

    /// One pass: grant what was named, map what landed, ask again what did not come.
    pub fn step(&mut self, out: &mut Outbox) {
        self.take_pieces();
        self.take_pages(out);
        let now = hal::clock::now_ns();
        for client in &mut self.clients {
            for page in client.puller.on_tick(now) {
                client.link_bytes += link_cost::message();
                out.send(
                    client.from,
                    Message::PageRequest {
                        pid: client.pid,
                        page,
                    },
                );
            }
        }
        // A process that ended here needs nothing more.
        let ended: Vec<usize> = (0..self.clients.len())
            .filter(|&i| !with_table(|t| t.is_alive(self.clients[i].pid)))
            .collect();
        for i in ended.into_iter().rev() {
            let mut client = self.clients.swap_remove(i);
            out.send(client.from, client.report(false));
            out.send(client.from, Message::PostCopyDone { pid: client.pid });
            self.abandon(client);
        }
        if !self.retiring.is_empty() && portal::grants_outstanding(&self.pages) == 0 {
            for frame in self.retiring.drain(..) {
                let _ = hal::frames::free(frame);
            }
        }
    }

    /// The earliest time a request must be asked again.
    pub fn next_deadline(&self) -> Option<u64> {
        self.clients
            .iter()
            .filter_map(|c| c.puller.next_deadline())
            .min()
    }

    /// `cluster` left for good: a process whose pages were there cannot be whole.
    pub fn on_peer_gone(&mut self, cluster: ClusterId) {
        while let Some(i) = self.clients.iter().position(|c| c.from == cluster) {
            let client = self.clients.swap_remove(i);
            let (pid, left) = (client.pid, client.puller.remaining());
            log::warn!(
                "post-copy of {pid}: c{} left with {left} of its pages; it is ended",
                cluster.0
            );
            with_table(|t| {
                let report = alloc::format!(
                    "killed: the cluster it came from (c{}) left with {left} of its pages\n",
                    cluster.0
                );
                t.console_write(pid, report.as_bytes());
                t.exit_process(pid, PAGES_LOST_EXIT);
            });
            self.abandon(client);
        }
    }

    /// True while some process here still has pages away.
    pub fn is_busy(&self) -> bool {
        !self.clients.is_empty()
    }

    fn take_pieces(&mut self) {
        while let Ok((from, data)) = portal::try_read_vec(&self.index) {
            let Ok(Piece::Round { round, pages }) = precopy::decode(&data) else {
                log::warn!("post-copy: a bad piece from c{} dropped", from.0);
                continue;
            };
            let Some(client) = self
                .clients
                .iter_mut()
                .find(|c| c.from == from && c.pid.raw() == round)
            else {
                continue; // its process ended meanwhile
            };
            client.link_bytes += link_cost::transfer(data.len());
            let mut frames = Vec::new();
            for _ in &pages {
                match hal::frames::alloc() {
                    Ok(frame) => frames.push(frame),
                    Err(_) => break,
                }
            }
            if frames.len() < pages.len()
                || portal::allow_frames(&self.pages, from, &frames).is_err()
            {
                // No frames now: give these back; the pages come again on request.
                log::warn!("post-copy of {}: no frames for a piece", client.pid);
                for frame in frames {
                    let _ = hal::frames::free(frame);
                }
                let _ = portal::allow(&self.index, from);
                continue;
            }
            client.granted.push_back((pages, frames));
            let _ = portal::allow(&self.index, from);
        }
    }

    fn take_pages(&mut self, out: &mut Outbox) {
        loop {
            let (from, ok) = match portal::try_read_frames(&self.pages) {
                Ok((from, _)) => (from, true),
                Err(NocError::WouldBlock) => return,
                Err(error) => {
                    log::warn!("post-copy: a page transfer failed: {error:?}");
                    (ClusterId(u16::MAX), false)
                }
            };
            let Some(i) = self.clients.iter().position(|c| c.from == from) else {
                if !ok {
                    // A failed transfer: every client's oldest piece is suspect; it will be
                    // asked again. Without the sender we cannot tell whose it was.
                    for client in &mut self.clients {
                        if let Some((_, frames)) = client.granted.pop_front() {
                            self.retiring.extend(frames);
                        }
                    }
                }
                continue;
            };
            let Some((pages, frames)) = self.clients[i].granted.pop_front() else {
                continue;
            };
            let client = &mut self.clients[i];
            client.link_bytes += link_cost::frames(pages.len());
            let now = hal::clock::now_ns();
            for (page, frame) in pages.into_iter().zip(frames) {
                let mapped = client.puller.on_arrived(page) && map(client.pid, page, frame);
                if !mapped {
                    let _ = hal::frames::free(frame);
                    continue;
                }
                match client.waits.remove(&page) {
                    Some(since) => {
                        client.pulled += 1;
                        client.wait_ns += now.saturating_sub(since);
                    }
                    None => client.pushed += 1,
                }
            }
            if client.puller.is_complete() {
                let mut client = self.clients.swap_remove(i);
                let ms = hal::clock::now_ns().saturating_sub(client.started_ns) / 1_000_000;
                log::info!(
                    "post-copy of {} from c{} complete: {} pages pulled on demand, {} pushed, threads waited {} us in all, {} ms after it resumed",
                    client.pid,
                    client.from.0,
                    client.pulled,
                    client.pushed,
                    client.wait_ns / 1000,
                    ms
                );
                out.send(client.from, client.report(true));
                out.send(client.from, Message::PostCopyDone { pid: client.pid });
                // The index allowances it did not use must not serve a later post-copy.
                portal::revoke(&self.index, client.from);
            }
        }
    }

    /// Drops a client whose grants may still be open: revoked, frames kept until unused.
    fn abandon(&mut self, mut client: Client) {
        portal::revoke(&self.index, client.from);
        portal::revoke(&self.pages, client.from);
        for (_, frames) in client.granted.drain(..) {
            self.retiring.extend(frames);
        }
    }
}

/// Maps a page that arrived into `pid`'s space and wakes its waiters; false if the process
/// no longer has that page (the caller frees the frame).
fn map(pid: Pid, page: u64, frame: PhysFrame<Size4KiB>) -> bool {
    with_table(|table| {
        let Some(process) = table.processes.get_mut(&pid) else {
            return false;
        };
        let Some(segment) = process.uarea.memory.segment_at(page) else {
            return false;
        };
        if !process.space.arrived(page) {
            return false;
        }
        if segment.perms.contains(uarea::Perms::X) {
            // Written by DMA and about to run as code: QEMU must drop stale translations.
            hal::noc::dma_code::prepare_to_execute(frame);
        }
        let flags = kernel::process::memory::page_flags(segment.perms);
        let target = Page::containing_address(x86_64::VirtAddr::new(page));
        if process.space.map(target, frame, flags).is_err() {
            return false;
        }
        table.page_arrived(pid, page);
        true
    })
}
