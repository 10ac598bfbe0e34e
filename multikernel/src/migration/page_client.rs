//! Post-copy at a process's new cluster: it runs while some of its pages are still at the
//! cluster it left. A thread that touches one waits (`kernel::process::remote`); this asks the
//! old cluster for the page (again while the link is down: `multikernel_proto::postcopy::
//! Puller`), keeps [`LANDINGS`] sets of landing frames granted to the old cluster, maps each
//! page as it lands and lets its waiters go. When every page is here it tells the old
//! cluster, which frees its copy. If the old cluster leaves first, the process cannot be
//! whole: it is ended with [`PAGES_LOST_EXIT`] and a report, never run with missing memory.
//! Either way it reports what it measured to the old cluster's stats daemon, which keeps the
//! migration's record.
//!
//! **A cut link is not the old cluster leaving** (docs/migration.md, "Failures"): only the
//! router's notice that it left (`on_peer_gone`) ends the process. While the link is cut,
//! requests are asked again every [`RETRANSMIT_NS`], a failed transfer gives its landing
//! back (the old cluster sends those pages again) and a grant whose allowance may have been
//! lost is announced again every [`REALLOW_NS`]; nothing here gives up on a timer. Each
//! landing's first frame says which pages the others hold (`page_server`), so a landing is
//! never matched to pages by order.

use crate::ports::POSTCOPY_PAGES_PORT;
use abi::{ClusterId, Pid};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use kernel::noc::{link_cost, portal, NocError};
use kernel::process::with_table;
use multikernel_proto::message::{Message, PostCopyReport};
use multikernel_proto::postcopy::Puller;
use uarea::precopy::{self, Piece, PIECE_HEADER_LEN};
use x86_64::structures::paging::{Page, PhysFrame, Size4KiB};

use super::page_server::PIECE_PAGES;
use crate::outbox::Outbox;

/// Exit code of a process whose old cluster left during post-copy with pages still there
/// (`docs/abi.md`: what its parent's `wait` sees).
pub const PAGES_LOST_EXIT: i32 = -12;
/// A request with no page after this long is asked again (lost, or the link is down).
const RETRANSMIT_NS: u64 = 50_000_000;
/// A landing unused this long is announced again (its allowance may have been lost).
pub(super) const REALLOW_NS: u64 = 250_000_000;
/// Landings granted per process at once: the old cluster never waits for a round trip.
const LANDINGS: usize = 2;
const PAGE_SIZE: usize = 4096;

/// Frames granted for one transfer: a header frame, then room for [`PIECE_PAGES`] pages.
struct Landing {
    frames: Vec<PhysFrame<Size4KiB>>,
}

/// One process whose pages are still coming.
struct Client {
    pid: Pid,
    from: ClusterId,
    puller: Puller,
    /// Landings granted and not yet used, by transfer id.
    landings: BTreeMap<u32, Landing>,
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
    pages: portal::Portal,
    clients: Vec<Client>,
    /// Frames of abandoned landings the engine may still write (freed when no grant is open).
    retiring: Vec<PhysFrame<Size4KiB>>,
}

impl PageClients {
    pub fn new() -> Result<PageClients, NocError> {
        Ok(PageClients {
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
        let mut client = Client {
            pid,
            from,
            puller: Puller::new(remote, RETRANSMIT_NS),
            landings: BTreeMap::new(),
            waits: BTreeMap::new(),
            wait_ns: 0,
            pulled: 0,
            pushed: 0,
            started_ns: hal::clock::now_ns(),
            link_bytes: 0,
        };
        refill(&self.pages, &mut client);
        self.clients.push(client);
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

    /// One pass: map what landed, keep the landings granted, ask again what did not come.
    pub fn step(&mut self, out: &mut Outbox) {
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
            refill(&self.pages, client);
            portal::reannounce(&self.pages, client.from, REALLOW_NS);
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

    /// The earliest time a request must be asked again (landings are announced again from
    /// the passes the daemons make while pages are away).
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

    /// True while there is something to poll for: pages away, or landings to free once the
    /// router confirms their revocation.
    pub fn has_work(&self) -> bool {
        self.is_busy() || !self.retiring.is_empty()
    }

    fn take_pages(&mut self, out: &mut Outbox) {
        while let Ok(arrival) = portal::take_frames(&self.pages) {
            let Some(i) = self.clients.iter().position(|c| c.from == arrival.from) else {
                continue; // its process ended meanwhile (its landings were retired)
            };
            let client = &mut self.clients[i];
            let Some(landing) = client.landings.remove(&arrival.transfer) else {
                continue;
            };
            match arrival.landed {
                Ok(bytes) => land(client, landing.frames, bytes),
                Err(error) => {
                    // The grant is used up and nothing landed (a cut link, a corrupted copy):
                    // the old cluster sends those pages again into a fresh landing.
                    log::warn!(
                        "post-copy of {}: a page transfer failed: {error:?}",
                        client.pid
                    );
                    free_all(landing.frames);
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
                // The landings it did not use must not serve a later post-copy.
                self.abandon(client);
            }
        }
    }

    /// Drops a client whose grants may still be open: revoked, frames kept until unused.
    fn abandon(&mut self, mut client: Client) {
        portal::revoke(&self.pages, client.from);
        for (_, landing) in core::mem::take(&mut client.landings) {
            self.retiring.extend(landing.frames);
        }
    }
}

/// Grants `client` landings until it has [`LANDINGS`] (fewer while frames are short: the
/// next pass tries again).
fn refill(pages: &portal::Portal, client: &mut Client) {
    while client.landings.len() < LANDINGS {
        let mut frames = Vec::new();
        if frames.try_reserve_exact(PIECE_PAGES + 1).is_err() {
            return;
        }
        for _ in 0..=PIECE_PAGES {
            match hal::frames::alloc() {
                Ok(frame) => frames.push(frame),
                Err(_) => {
                    log::warn!("post-copy of {}: no frames for a landing", client.pid);
                    return free_all(frames);
                }
            }
        }
        match portal::allow_frames(pages, client.from, &frames) {
            Ok(id) => {
                client.landings.insert(id, Landing { frames });
            }
            Err(_) => return free_all(frames),
        }
    }
}

/// `bytes` landed in `frames`: maps the pages its header names and frees the rest.
fn land(client: &mut Client, mut frames: Vec<PhysFrame<Size4KiB>>, bytes: u32) {
    client.link_bytes += link_cost::transfer(bytes as usize);
    let pages = match frames.first().map(|&header| read_header(header)) {
        Some(Some((round, pages)))
            if round == client.pid.raw() && bytes as usize == (pages.len() + 1) * PAGE_SIZE =>
        {
            pages
        }
        _ => {
            log::warn!(
                "post-copy of {}: a transfer with a bad header dropped",
                client.pid
            );
            return free_all(frames);
        }
    };
    let data = frames.split_off(1);
    free_all(frames);
    let now = hal::clock::now_ns();
    let mut data = data.into_iter();
    for page in pages {
        let Some(frame) = data.next() else {
            break;
        };
        let mapped = client.puller.on_arrived(page) && map(client.pid, page, frame);
        if !mapped {
            // Already here (sent twice) or no longer the process's.
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
    free_all(data.collect());
}

/// The pid and pages a landing's header frame names (checked by `precopy::decode`).
fn read_header(frame: PhysFrame<Size4KiB>) -> Option<(u32, Vec<u64>)> {
    let at = hal::physmap::phys_to_virt(frame.start_address());
    // SAFETY: the frame is ours (allocated for this landing, not mapped anywhere else), the
    // physical map covers its 4096 bytes, and the engine is done with it (its completion
    // came); any bit pattern is a valid u8.
    let bytes = unsafe { core::slice::from_raw_parts(at.as_ptr::<u8>(), PAGE_SIZE) };
    let count = bytes
        .get(12..16)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)? as usize;
    let len = PIECE_HEADER_LEN.checked_add(count.checked_mul(8)?)?;
    match precopy::decode(bytes.get(..len)?) {
        Ok(Piece::Round { round, pages }) if pages.len() <= PIECE_PAGES => Some((round, pages)),
        _ => None,
    }
}

fn free_all(frames: Vec<PhysFrame<Size4KiB>>) {
    for frame in frames {
        let _ = hal::frames::free(frame);
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
