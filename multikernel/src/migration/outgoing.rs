//! What leaves with a migration, on the source's side: the running process measured for a
//! live offer, its pages sent while it runs (pre-copy), the frozen process's snapshot, and
//! its image streamed to the destination.

use abi::{ClusterId, MigrateOptions, Pid, Strategy};
use alloc::collections::BTreeSet;
use kernel::noc::portal;
use kernel::process::with_table;
use migration::snapshot::Snapshot;
use migration::{freeze, precopy as dirty, MigrationError};
use multikernel_proto::migrate::MigrateError;
use uarea::image::PageTransport;

use super::precopy::Step;
use super::source::MigrationSource;
use super::transfer::Transfer;
use super::Ctx;
use crate::ports::{IMAGE_PAGES_PORT, IMAGE_PORT};

/// How long a freeze waits for a portal write of the process to end (the relay's stall limit
/// plus the engine's timeout); then the migration fails with `EBUSY`.
const WRITE_WAIT_NS: u64 = crate::STALL_NS + kernel::noc::portal::WRITE_TIMEOUT_NS;

impl MigrationSource {
    /// Counts `bytes` this end put on (or took off) the NoC for migration `sequence`.
    pub(super) fn charge(&mut self, sequence: u32, bytes: u64) {
        if let Some(p) = self.pending_by_sequence(sequence) {
            p.link_bytes += bytes;
        }
    }

    /// Sends what the destination allows — index chunks, then page batches; the sequence
    /// and result once the whole image left (or could not).
    pub(super) fn send_image(&mut self, now: u64) -> Option<(u32, Result<u32, MigrateError>)> {
        let transfer = self.transfer.as_mut()?;
        let sequence = transfer.sequence;
        match transfer.send_allowed() {
            Err(error) => {
                log::warn!(
                    "migration of {}: image transfer failed: {error:?}",
                    transfer.pid
                );
                let spent = transfer.link_bytes;
                self.transfer = None;
                self.charge(sequence, spent);
                return Some((sequence, Err(MigrateError::TransferFailed)));
            }
            Ok(true) => self.machine.on_transfer_progress(sequence, now),
            Ok(false) => {}
        }
        let done = transfer.is_done();
        let crc = transfer.snapshot.crc().filter(|_| done)?;
        let spent = transfer.link_bytes;
        self.transfer = None;
        self.charge(sequence, spent);
        if let Some(p) = self.pending_by_sequence(sequence) {
            p.at.sent_ns = now;
        }
        Some((sequence, Ok(crc)))
    }

    /// Pre-copy's next pieces; the sequence and result once its rounds ended (or failed).
    pub(super) fn send_precopy(&mut self, now: u64) -> Option<(u32, Result<(), MigrateError>)> {
        let precopy = self.precopy.as_mut().filter(|p| p.stats.rounds > 0)?;
        let sequence = precopy.sequence;
        if self.transfer.is_some() {
            return None; // frozen: the final image is on its way
        }
        let alive = with_table(|t| t.is_alive(precopy.pid));
        let result = match precopy.step() {
            _ if !alive => Err(MigrateError::NoSuchProcess),
            Err(error) => {
                log::warn!("pre-copy of {}: {error:?}", precopy.pid);
                Err(MigrateError::TransferFailed)
            }
            Ok(Step::Waiting) => return None,
            Ok(Step::Progress) => {
                self.machine.on_transfer_progress(sequence, now);
                return None;
            }
            Ok(Step::Converged) => Ok(()),
        };
        let stats = precopy.stats;
        if stats.outran {
            log::warn!(
                "pre-copy of {}: it dirties {} pages/s, faster than the link drains them (throttled {}%)",
                precopy.pid,
                stats.dirty_rate,
                stats.throttle_pct
            );
        } else if stats.throttle_pct > 0 && result.is_ok() {
            log::info!(
                "pre-copy of {}: converged throttled {}% ({} dirty pages/s)",
                precopy.pid,
                stats.throttle_pct,
                stats.dirty_rate
            );
        }
        if let Some(p) = self.pending_by_sequence(sequence) {
            p.precopy = Some(stats);
        }
        if result.is_err() {
            self.precopy = None;
        }
        Some((sequence, result))
    }

    /// Freezes `pid` now, or, while a portal write of it is in flight (the engine reads its
    /// held pages), on a later pass — for at most [`WRITE_WAIT_NS`].
    pub(super) fn freeze_or_wait(
        &mut self,
        pid: Pid,
        to: ClusterId,
        sequence: u32,
        since: u64,
        ctx: &mut Ctx,
    ) {
        let now = hal::clock::now_ns();
        let busy = with_table(|table| freeze::write_in_flight(table, pid));
        if busy && now.saturating_sub(since) <= WRITE_WAIT_NS {
            self.freezes_waiting.push((pid, to, sequence, since));
            hal::timer::wake_after(1_000_000);
            return;
        }
        let frozen = self.freeze(pid, to, sequence);
        let more = self.machine.on_frozen(sequence, frozen, now);
        self.run(more, ctx);
    }

    fn freeze(
        &mut self,
        pid: Pid,
        to: ClusterId,
        sequence: u32,
    ) -> Result<uarea::image::Manifest, MigrateError> {
        // After a pre-copy: what went and is clean since is carried, not sent again.
        let sent = self
            .precopy
            .as_mut()
            .filter(|p| p.sequence == sequence)
            .map(|p| core::mem::take(&mut p.sent));
        let strategy = self
            .pending
            .values()
            .find(|p| p.request.pid == pid && !p.committed)
            .map_or(Strategy::StopAndCopy, |p| p.request.options.strategy);
        let postcopy = matches!(strategy, Strategy::PostCopy | Strategy::Hybrid);
        if postcopy && self.servers.serving_to(to) {
            return Err(MigrateError::Busy); // one post-copy at a time to each cluster
        }
        let taken = with_table(|table| {
            if to.0 >= kernel::noc::cluster_count() {
                return Err(MigrationError::BadDestination);
            }
            // Its own pages still coming from a post-copy: it cannot leave before they are here.
            if table
                .processes
                .get(&pid)
                .is_some_and(|p| p.space.remote_count() > 0)
            {
                return Err(MigrationError::AlreadyFrozen);
            }
            freeze::freeze(table, pid)?;
            image(table, (pid, to, sequence), strategy, sent)
                .inspect_err(|_| freeze::thaw(table, pid))
        });
        let now = hal::clock::now_ns();
        let pending = self.pending.values_mut().find(|p| {
            p.request.pid == pid && p.sequence.is_none_or(|s| s == sequence) && !p.committed
        });
        let snapshot = match taken {
            Ok(snapshot) => snapshot,
            Err(error) => {
                let protocol_error = match error {
                    MigrationError::OutOfMemory => MigrateError::OutOfMemory,
                    MigrationError::WriteInFlight => MigrateError::Busy,
                    MigrationError::BadDestination => MigrateError::BadDestination,
                    _ => MigrateError::NoSuchProcess,
                };
                if let Some(p) = pending {
                    p.freeze_error = Some(error);
                }
                return Err(protocol_error);
            }
        };
        let manifest = snapshot.manifest;
        if let Some(p) = pending {
            p.sequence = Some(sequence);
            p.at.frozen_ns = Some(now);
            // Everything that crosses the NoC: manifest, UArea, page index and the pages
            // (after a pre-copy: those of its rounds too, and not the carried ones).
            let before = p.precopy.map_or(0, |s| s.pages);
            let stopped = snapshot.dma_pages() as u64;
            let pages = stopped + before;
            p.size = (
                uarea::image::MANIFEST_LEN as u64 + manifest.body_len() + pages * 4096,
                pages,
            );
            p.stop = (
                uarea::image::MANIFEST_LEN as u64 + manifest.body_len() + stopped * 4096,
                stopped,
            );
            if postcopy {
                p.remote_pages = snapshot.remote_pages().count() as u64;
            }
        }
        if postcopy {
            // Kept until the commit; then they are served from here.
            let remote = snapshot.remote_pages().collect();
            self.postcopy_remote.insert(pid, remote);
        }
        self.snapshots.insert(sequence, snapshot);
        Ok(manifest)
    }

    /// Starts streaming the image of `sequence`; false if it cannot start.
    pub(super) fn start_transfer(&mut self, pid: Pid, to: ClusterId, sequence: u32) -> bool {
        let Some(snapshot) = self.snapshots.remove(&sequence) else {
            return false;
        };
        // After a pre-copy the final image goes the same way, announced by the final piece.
        if let Some(precopy) = self.precopy.take().filter(|p| p.sequence == sequence) {
            let preamble = uarea::precopy::encode_final(precopy.stats.rounds, &snapshot.manifest);
            self.transfer = Some(Transfer {
                sequence,
                pid,
                snapshot,
                image: precopy.image,
                pages: precopy.pages,
                preamble: Some(preamble),
                batches_sent: 0,
                held: None,
                link_bytes: 0,
            });
            return true;
        }
        let (Ok(image), Ok(pages)) = (
            portal::open(to, IMAGE_PORT),
            portal::open(to, IMAGE_PAGES_PORT),
        ) else {
            log::warn!(
                "migration {pid}: cannot open the image portals of c{}",
                to.0
            );
            return false;
        };
        self.transfer = Some(Transfer {
            sequence,
            pid,
            snapshot,
            image,
            pages,
            preamble: None,
            batches_sent: 0,
            held: None,
            link_bytes: 0,
        });
        true
    }

    /// Live strategies: the running process's offer (nothing frozen yet). The manifest's
    /// lengths are what it has now; the final image announces its own.
    pub(super) fn survey(
        &mut self,
        pid: Pid,
        to: ClusterId,
        sequence: u32,
    ) -> Result<uarea::image::Manifest, MigrateError> {
        let strategy = self
            .pending
            .values()
            .find(|p| p.request.pid == pid && p.sequence.is_none())
            .map_or(Strategy::PreCopy, |p| p.request.options.strategy);
        with_table(|table| {
            if to.0 >= kernel::noc::cluster_count() {
                return Err(MigrateError::BadDestination);
            }
            let process = table.processes.get(&pid).filter(|_| table.is_alive(pid));
            let process = process.ok_or(MigrateError::NoSuchProcess)?;
            let mut pages = 0u32;
            for s in &process.uarea.memory.segments {
                process
                    .space
                    .for_each_mapped(s.start, s.end(), |_| pages += 1);
            }
            Ok(uarea::image::Manifest {
                pid,
                source: table.cluster,
                destination: to,
                uarea_len: 0,
                page_count: pages,
                sequence,
                // Hybrid ends in post-copy: the destination must know it from the offer.
                transport: match strategy {
                    Strategy::Hybrid => PageTransport::Hybrid,
                    _ => PageTransport::Delta,
                },
            })
        })
        .inspect(|_| {
            if let Some(p) = self
                .pending
                .values_mut()
                .find(|p| p.request.pid == pid && p.sequence.is_none())
            {
                p.sequence = Some(sequence);
            }
        })
    }

    pub(super) fn options_of(&self, sequence: u32) -> MigrateOptions {
        self.pending
            .values()
            .find(|p| p.sequence == Some(sequence))
            .map_or(MigrateOptions::new(Strategy::PreCopy), |p| {
                p.request.options
            })
    }
}

/// The frozen process's image for `strategy`. After pre-copy rounds (`sent`: the pages that
/// went), the ones clean since are carried; post-copy leaves all but the threads' hot pages
/// remote; hybrid does both.
fn image(
    table: &mut kernel::process::Table,
    (pid, to, sequence): (Pid, ClusterId, u32),
    strategy: Strategy,
    sent: Option<BTreeSet<u64>>,
) -> Result<Snapshot, MigrationError> {
    let mut carried = sent.unwrap_or_default();
    if !carried.is_empty() {
        for page in dirty::take_dirty(table, pid)? {
            carried.remove(&page);
        }
    }
    let transport = match strategy {
        Strategy::StopAndCopy => PageTransport::Direct,
        Strategy::PreCopy => PageTransport::Delta,
        Strategy::PostCopy => PageTransport::PostCopy,
        Strategy::Hybrid => PageTransport::Hybrid,
    };
    let remote = match transport {
        PageTransport::PostCopy | PageTransport::Hybrid => remote_pages(table, pid, &carried)?,
        _ => BTreeSet::new(),
    };
    Snapshot::take_delta(table, pid, to, sequence, transport, carried, remote)
}

/// Every page of `pid` but those under its threads' instruction and stack pointers (they go
/// with the context) and those already at the destination (`carried`).
fn remote_pages(
    table: &kernel::process::Table,
    pid: Pid,
    carried: &BTreeSet<u64>,
) -> Result<BTreeSet<u64>, MigrationError> {
    let process = table
        .processes
        .get(&pid)
        .ok_or(MigrationError::NoSuchProcess)?;
    let mut hot = BTreeSet::new();
    for thread in &process.uarea.threads {
        let (rip, rsp) = (thread.context.rip & !0xFFF, thread.context.rsp & !0xFFF);
        hot.extend([rip, rsp.saturating_sub(4096), rsp, rsp.saturating_add(4096)]);
    }
    let mut remote = BTreeSet::new();
    for segment in &process.uarea.memory.segments {
        process
            .space
            .for_each_mapped(segment.start, segment.end(), |page| {
                if !hot.contains(&page) && !carried.contains(&page) {
                    remote.insert(page);
                }
            });
    }
    Ok(remote)
}
