//! The source side of every migration that leaves this cluster: the driver of
//! [`multikernel_proto::migrate::Source`] against the real process table.
//!
//! The protocol machine decides; this driver does what it says — freeze and snapshot, stream
//! the image over the destination's portal (one allow per ≤ 1 MiB chunk), thaw on abort, free
//! the frozen copy and leave a forwarding pointer on commit — and tells the machine what
//! happened. Requests are kept here with the caller's thread and the timestamps the
//! migration's record needs.

use abi::{ClusterId, Pid};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use kernel::noc::portal;
use kernel::process::with_table;
use kernel::requests::MigrationRequest;
use migration::snapshot::Snapshot;
use migration::{freeze, MigrationError};
use multikernel_proto::message::Message;
use multikernel_proto::migrate::{Action, Config, MigrateError, RequestId, Source};
use uarea::image::PageTransport;

use super::caller::{answer, migration_error};
use super::stats::{self, Timeline};
use super::Ctx;
use crate::chip;
use crate::ports::{IMAGE_PAGES_PORT, IMAGE_PORT};

/// Largest portal transfer.
const CHUNK: usize = abi::PORTAL_MAX_TRANSFER;

/// A request the machine took, until its record is written.
struct Pending {
    request: MigrationRequest,
    at: Timeline,
    /// Image bytes and pages, once the snapshot was taken.
    size: (u64, u64),
    /// The sequence the machine gave it, once frozen.
    sequence: Option<u32>,
    /// Commit decided: the record waits for the destination's `Committed`.
    committed: bool,
    /// Why freezing failed, in the kernel's words (finer than the protocol's).
    freeze_error: Option<MigrationError>,
}

/// The image being streamed: the UArea and page index over the image portal, then the
/// pages frame to frame, one DMA transfer per batch the destination granted.
struct Transfer {
    sequence: u32,
    pid: Pid,
    snapshot: Snapshot,
    image: portal::PortalTx,
    pages: portal::PortalTx,
    /// Page batches sent so far.
    batches_sent: usize,
}

/// Where a migration leaving from here stands (for the monitor and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Behind another migration.
    Queued,
    /// Frozen and offered; waiting for the destination's answer.
    Offered,
    /// The image is streaming.
    Transferring,
    /// The image left; waiting for the destination to prepare.
    AwaitingPrepared,
    /// Commit decided; waiting for the destination's confirmation.
    Committing,
}

pub struct MigrationSource {
    machine: Source,
    pending: BTreeMap<RequestId, Pending>,
    /// Snapshots taken at freeze, until their transfer starts.
    snapshots: BTreeMap<u32, Snapshot>,
    transfer: Option<Transfer>,
    /// Outcome of the latest migration of each pid that left from here.
    outcomes: BTreeMap<Pid, Result<ClusterId, MigrationError>>,
    /// Freezes waiting for a portal write of the process to end: (pid, to, sequence, since).
    freezes_waiting: Vec<(Pid, ClusterId, u32, u64)>,
}

/// How long a freeze waits for a portal write of the process to end (the relay's stall limit
/// plus the engine's timeout); then the migration fails with `EBUSY`.
const WRITE_WAIT_NS: u64 = crate::STALL_NS + kernel::noc::portal::WRITE_TIMEOUT_NS;

impl Default for MigrationSource {
    fn default() -> MigrationSource {
        MigrationSource::new()
    }
}

impl MigrationSource {
    pub fn new() -> MigrationSource {
        MigrationSource {
            machine: Source::new(chip::here(), Config::default()),
            pending: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            transfer: None,
            outcomes: BTreeMap::new(),
            freezes_waiting: Vec::new(),
        }
    }

    /// The outcome of the latest migration of `pid` started here, if it ended.
    pub fn outcome(&self, pid: Pid) -> Option<Result<ClusterId, MigrationError>> {
        self.outcomes.get(&pid).cloned()
    }

    /// True while `pid` is migrating away from here (a kill or mail for it is held).
    pub fn holds(&self, pid: Pid) -> bool {
        self.machine.holds(pid)
    }

    /// Holds a kill of `pid` until the decision; false if `pid` is not migrating from here.
    pub fn hold_kill(&mut self, pid: Pid, code: i32) -> bool {
        self.machine.hold_kill(pid, code)
    }

    /// True while an image is streaming from here.
    pub fn is_transferring(&self) -> bool {
        self.transfer.is_some()
    }

    /// Nothing in flight, queued, or waiting for a destination's confirmation.
    pub fn is_idle(&self) -> bool {
        self.machine.is_idle()
    }

    /// Where the migration of `pid` from here stands, if one is under way.
    pub fn phase(&self, pid: Pid) -> Option<Phase> {
        let p = self.pending.values().find(|p| p.request.pid == pid)?;
        Some(if p.committed {
            Phase::Committing
        } else if self.transfer.as_ref().is_some_and(|t| t.pid == pid) {
            Phase::Transferring
        } else if p.at.sent_ns != 0 {
            Phase::AwaitingPrepared
        } else if p.sequence.is_some() {
            Phase::Offered
        } else {
            Phase::Queued
        })
    }

    /// The earliest time the machine must be stepped again.
    pub fn next_deadline(&self) -> Option<u64> {
        self.machine.next_deadline()
    }

    /// Asks for `pid` to move: from here if it lives here, else from where its home says.
    pub fn request(&mut self, request: MigrationRequest, ctx: &mut Ctx) {
        let pid = request.pid;
        let ask = |cluster, ctx: &mut Ctx| {
            ctx.out.send(
                cluster,
                Message::MigrateRequest {
                    pid,
                    destination: request.destination,
                },
            )
        };
        if with_table(|table| table.is_alive(pid)) {
            if self.pending.values().any(|p| p.request.pid == pid) && request.caller.is_some() {
                // Its own `migrate` while another migration of it is under way: `EBUSY`.
                answer(request.caller, Err(MigrationError::AlreadyFrozen));
                return;
            }
            self.outcomes.remove(&pid);
            let now = hal::clock::now_ns();
            let (id, actions) = self.machine.request(pid, request.destination, now);
            self.pending.insert(
                id,
                Pending {
                    request,
                    at: Timeline {
                        started_ns: now,
                        frozen_ns: now,
                        sent_ns: 0,
                    },
                    size: (0, 0),
                    sequence: None,
                    committed: false,
                    freeze_error: None,
                },
            );
            self.run(actions, ctx);
        } else if pid.birth_cluster() != chip::here() {
            ask(pid.birth_cluster(), ctx);
        } else if let Some(host) = ctx.registry.get(pid) {
            ask(host, ctx);
        } else {
            self.outcomes
                .insert(pid, Err(MigrationError::NoSuchProcess));
        }
    }

    /// A protocol message for the source side.
    pub fn on_message(&mut self, from: ClusterId, message: &Message, ctx: &mut Ctx) {
        if let Message::Committed { sequence } = message {
            self.record_commit(*sequence);
        }
        let actions = self.machine.on_message(from, message, hal::clock::now_ns());
        self.run(actions, ctx);
    }

    /// `cluster` left the machine for good.
    pub fn on_peer_gone(&mut self, cluster: ClusterId, ctx: &mut Ctx) {
        let actions = self.machine.on_peer_gone(cluster, hal::clock::now_ns());
        self.run(actions, ctx);
        // Commits whose destination is gone will never be acknowledged.
        let open: Vec<u32> = self.machine.unacknowledged().map(|(s, _)| s).collect();
        let lost: Vec<u32> = self
            .pending
            .values()
            .filter(|p| p.committed && p.sequence.is_some_and(|s| !open.contains(&s)))
            .filter_map(|p| p.sequence)
            .collect();
        for sequence in lost {
            self.record_commit(sequence);
        }
    }

    /// One pass: waiting freezes, stream the image, then let the machine's timers run.
    pub fn step(&mut self, ctx: &mut Ctx) {
        let now = hal::clock::now_ns();
        for (pid, to, sequence, since) in core::mem::take(&mut self.freezes_waiting) {
            self.freeze_or_wait(pid, to, sequence, since, ctx);
        }
        if let Some(done) = self.send_image(now) {
            let actions = self.machine.on_transfer_done(done.0, done.1, now);
            self.run(actions, ctx);
        }
        let actions = self.machine.on_tick(now);
        self.run(actions, ctx);
    }

    /// Sends what the destination allows — index chunks, then page batches; the sequence
    /// and result once the whole image left (or could not).
    fn send_image(&mut self, now: u64) -> Option<(u32, Result<u32, MigrateError>)> {
        let transfer = self.transfer.as_mut()?;
        let sequence = transfer.sequence;
        match send_allowed(transfer) {
            Err(error) => {
                log::warn!(
                    "migration of {}: image transfer failed: {error:?}",
                    transfer.pid
                );
                self.transfer = None;
                return Some((sequence, Err(MigrateError::TransferFailed)));
            }
            Ok(true) => self.machine.on_transfer_progress(sequence, now),
            Ok(false) => {}
        }
        let done = transfer.snapshot.is_done()
            && transfer.batches_sent == transfer.snapshot.page_batches();
        let crc = transfer.snapshot.crc().filter(|_| done)?;
        self.transfer = None;
        if let Some(p) = self.pending_by_sequence(sequence) {
            p.at.sent_ns = now;
        }
        Some((sequence, Ok(crc)))
    }

    /// Does what the machine says, in order (follow-up actions first).
    fn run(&mut self, actions: Vec<Action>, ctx: &mut Ctx) {
        for action in actions {
            match action {
                Action::Send { to, message } => ctx.out.send(to, message),
                Action::Freeze { pid, to, sequence } => {
                    self.freeze_or_wait(pid, to, sequence, hal::clock::now_ns(), ctx)
                }
                Action::StartTransfer { pid, to, sequence } => {
                    if !self.start_transfer(pid, to, sequence) {
                        let failed = Err(MigrateError::TransferFailed);
                        let more =
                            self.machine
                                .on_transfer_done(sequence, failed, hal::clock::now_ns());
                        self.run(more, ctx);
                    }
                }
                Action::Thaw { pid } => {
                    self.forget_transfer(pid);
                    with_table(|table| freeze::thaw(table, pid));
                }
                Action::Free { pid, to } => self.free(pid, to, ctx),
                Action::ApplyKill { pid, code } => {
                    with_table(|table| table.exit_process(pid, code));
                }
                Action::ForwardKill { pid, to, .. } => ctx.out.send(to, Message::Kill { pid }),
                Action::Report {
                    request,
                    pid,
                    outcome,
                } => self.report(request, pid, outcome),
                // Mail is never handed to the machine: a frozen process's mail waits in its
                // queues here and leaves with it on `Free` (or stays, on `Thaw`).
                Action::DeliverMail { .. }
                | Action::ForwardMail { .. }
                | Action::DropMail { .. } => {}
                // Destination-side actions never come from a source.
                Action::Admit { .. }
                | Action::Restore { .. }
                | Action::Discard { .. }
                | Action::Resume { .. } => {}
            }
        }
    }

    /// Freezes `pid` now, or, while a portal write of it is in flight (the engine reads its
    /// held pages), on a later pass — for at most [`WRITE_WAIT_NS`].
    fn freeze_or_wait(
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
        let taken = with_table(|table| {
            if to.0 >= kernel::noc::cluster_count() {
                return Err(MigrationError::BadDestination);
            }
            freeze::freeze(table, pid)?;
            Snapshot::take(table, pid, to, sequence, PageTransport::Direct)
                .inspect_err(|_| freeze::thaw(table, pid))
        });
        let now = hal::clock::now_ns();
        let pending = self
            .pending
            .values_mut()
            .find(|p| p.request.pid == pid && p.sequence.is_none());
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
            p.at.frozen_ns = now;
            // Everything that crosses the NoC: manifest, UArea, page index and the pages.
            p.size = (
                uarea::image::MANIFEST_LEN as u64 + manifest.body_len() + manifest.page_bytes(),
                manifest.page_count as u64,
            );
        }
        self.snapshots.insert(sequence, snapshot);
        Ok(manifest)
    }

    /// Starts streaming the image of `sequence`; false if it cannot start.
    fn start_transfer(&mut self, pid: Pid, to: ClusterId, sequence: u32) -> bool {
        let Some(snapshot) = self.snapshots.remove(&sequence) else {
            return false;
        };
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
            batches_sent: 0,
        });
        true
    }

    fn forget_transfer(&mut self, pid: Pid) {
        if self.transfer.as_ref().is_some_and(|t| t.pid == pid) {
            self.transfer = None;
        }
        self.snapshots.retain(|_, s| s.manifest.pid != pid);
    }

    /// Commit decided: the copy here goes, and whatever comes for `pid` follows it.
    fn free(&mut self, pid: Pid, to: ClusterId, ctx: &mut Ctx) {
        self.forget_transfer(pid);
        with_table(|table| {
            if let Some(process) = table.remove_migrated(pid) {
                // A parent here can still wait for it: its exit is reported home.
                if let Some(parent) = process.uarea.header.parent {
                    if pid.birth_cluster() == table.cluster {
                        table.adopt_remote_child(parent, pid);
                    }
                }
            }
        });
        // Messages that arrived while it was frozen follow it, and so will later ones.
        ctx.forwarder.leave_pointer(pid, to);
        for mail in kernel::services::drain(pid) {
            ctx.forwarder.forward(to, mail);
        }
        if pid.birth_cluster() == chip::here() {
            ctx.registry.set(pid, to);
        } else {
            ctx.out
                .send(pid.birth_cluster(), Message::Located { pid, cluster: to });
        }
    }

    fn report(&mut self, id: RequestId, pid: Pid, outcome: Result<ClusterId, MigrateError>) {
        let error = match outcome {
            Ok(to) => {
                self.outcomes.insert(pid, Ok(to));
                if let Some(p) = self.pending.get_mut(&id) {
                    p.committed = true; // recorded when the destination confirms
                }
                return;
            }
            Err(error) => error,
        };
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let error = p.freeze_error.clone().unwrap_or(migration_error(error));
        answer(p.request.caller, Err(error.clone()));
        stats::failed(pid, (chip::here(), p.request.destination), p.at, &error);
        self.outcomes.insert(pid, Err(error));
    }

    /// The destination runs the process (or is gone): the migration's record is complete.
    fn record_commit(&mut self, sequence: u32) {
        let id = self
            .pending
            .iter()
            .find(|(_, p)| p.committed && p.sequence == Some(sequence))
            .map(|(id, _)| *id);
        if let Some(p) = id.and_then(|id| self.pending.remove(&id)) {
            let route = (chip::here(), p.request.destination);
            stats::succeeded(p.request.pid, route, p.at, p.size.0, p.size.1);
        }
    }

    fn pending_by_sequence(&mut self, sequence: u32) -> Option<&mut Pending> {
        self.pending
            .values_mut()
            .find(|p| p.sequence == Some(sequence))
    }
}

/// Sends every chunk and page batch the destination has allowed so far; true if it sent any.
fn send_allowed(transfer: &mut Transfer) -> Result<bool, kernel::noc::NocError> {
    let mut sent = false;
    while portal::is_allowed(&transfer.image) && !transfer.snapshot.is_done() {
        let chunk = with_table(|table| {
            let process = table.processes.get(&transfer.pid)?;
            transfer.snapshot.next_chunk(process, CHUNK).ok()
        })
        .ok_or(kernel::noc::NocError::TransferFailed)?;
        portal::write(&transfer.image, &chunk)?;
        sent = true;
    }
    while transfer.snapshot.is_done()
        && transfer.batches_sent < transfer.snapshot.page_batches()
        && portal::is_allowed(&transfer.pages)
    {
        let batch = transfer.batches_sent;
        let frames = with_table(|table| {
            let process = table.processes.get(&transfer.pid)?;
            transfer.snapshot.batch_frames(process, batch).ok()
        })
        .ok_or(kernel::noc::NocError::TransferFailed)?;
        portal::write_frames(&transfer.pages, &frames)?;
        transfer.batches_sent += 1;
        sent = true;
    }
    Ok(sent)
}
