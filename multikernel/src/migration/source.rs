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
use kernel::process::with_table;
use kernel::requests::MigrationRequest;
use migration::snapshot::Snapshot;
use migration::{freeze, MigrationError};
use multikernel_proto::message::{Message, PostCopyReport};
use multikernel_proto::migrate::{Action, Config, MigrateError, RequestId, Source};

use super::caller::{answer, migration_error};
use super::page_server::PageServers;
use super::precopy::{PreCopy, PreCopyStats};
use super::stats::{self, Timeline};
use super::transfer::Transfer;
use super::Ctx;
use crate::chip;

/// A request the machine took, until its record is written.
pub(super) struct Pending {
    pub(super) request: MigrationRequest,
    pub(super) at: Timeline,
    /// Image bytes and pages, once the snapshot was taken.
    pub(super) size: (u64, u64),
    /// The sequence the machine gave it, once frozen.
    pub(super) sequence: Option<u32>,
    /// Commit decided: the record waits for the destination's `Committed`.
    pub(super) committed: bool,
    /// Why freezing failed, in the kernel's words (finer than the protocol's).
    pub(super) freeze_error: Option<MigrationError>,
    /// What pre-copy measured (live strategies), once its rounds ended.
    pub(super) precopy: Option<PreCopyStats>,
    /// The image sent while it was stopped: bytes, pages.
    pub(super) stop: (u64, u64),
    /// Post-copy: pages left here when it resumes there.
    pub(super) remote_pages: u64,
    /// Bytes this end's messages, image and pieces put on the NoC (pre-copy's are in
    /// `precopy`).
    pub(super) link_bytes: u64,
    /// Post-copy's report, if it came before the destination's `Committed` (that was lost).
    pub(super) early_report: Option<PostCopyReport>,
}

/// Where a migration leaving from here stands (for the monitor and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Behind another migration.
    Queued,
    /// Frozen and offered (live: offered while running); waiting for the destination.
    Offered,
    /// Live: pages are copied while it runs.
    PreCopying,
    /// The image is streaming.
    Transferring,
    /// The image left; waiting for the destination to prepare.
    AwaitingPrepared,
    /// Commit decided; waiting for the destination's confirmation.
    Committing,
}

pub struct MigrationSource {
    pub(super) machine: Source,
    pub(super) pending: BTreeMap<RequestId, Pending>,
    /// Snapshots taken at freeze, until their transfer starts.
    pub(super) snapshots: BTreeMap<u32, Snapshot>,
    pub(super) transfer: Option<Transfer>,
    /// The pre-copy rounds in progress (at most one: one migration leaves at a time), then
    /// kept until its final image starts.
    pub(super) precopy: Option<PreCopy>,
    /// Post-copy: the pages that stay here until the commit, by pid.
    pub(super) postcopy_remote: BTreeMap<Pid, Vec<u64>>,
    /// Post-copy: the pages served after the commit.
    pub(super) servers: PageServers,
    /// Requests for processes whose own post-copy is not over yet.
    deferred: Vec<MigrationRequest>,
    /// Outcome of the latest migration of each pid that left from here.
    pub(super) outcomes: BTreeMap<Pid, Result<ClusterId, MigrationError>>,
    /// Freezes waiting for a portal write of the process to end: (pid, to, sequence, since).
    pub(super) freezes_waiting: Vec<(Pid, ClusterId, u32, u64)>,
}

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
            precopy: None,
            postcopy_remote: BTreeMap::new(),
            servers: PageServers::default(),
            deferred: Vec::new(),
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

    /// True while pages are streaming from here: an image, pre-copy rounds, or post-copy's
    /// remaining pages (the daemons then poll: a DMA completion raises no interrupt).
    /// True while post-copy pages of a process that left for `to` are still kept here.
    pub fn serves_postcopy_to(&self, to: ClusterId) -> bool {
        self.servers.serving_to(to)
    }

    pub fn is_transferring(&self) -> bool {
        self.transfer.is_some() || self.precopy.is_some() || self.servers.is_serving()
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
        } else if self.precopy.as_ref().is_some_and(|t| t.pid == pid) {
            Phase::PreCopying
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
        // Its own pages still coming from a post-copy: it leaves once they are all here.
        if with_table(|t| {
            t.processes
                .get(&pid)
                .is_some_and(|p| p.space.remote_count() > 0)
        }) {
            self.deferred.push(request);
            return;
        }
        let ask = |cluster, ctx: &mut Ctx| {
            ctx.out.send(
                cluster,
                Message::MigrateRequest {
                    pid,
                    destination: request.destination,
                    options: request.options,
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
            let strategy = request.options.strategy;
            let (id, actions) = self
                .machine
                .request(pid, request.destination, strategy, now);
            self.pending.insert(
                id,
                Pending {
                    request,
                    at: Timeline {
                        started_ns: now,
                        frozen_ns: None,
                        sent_ns: 0,
                    },
                    size: (0, 0),
                    sequence: None,
                    committed: false,
                    freeze_error: None,
                    precopy: None,
                    stop: (0, 0),
                    remote_pages: 0,
                    link_bytes: 0,
                    early_report: None,
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
        self.charge(message.sequence(), kernel::noc::link_cost::message());
        if let Message::Committed { sequence } = message {
            self.record_commit(*sequence);
        }
        let actions = self.machine.on_message(from, message, hal::clock::now_ns());
        self.run(actions, ctx);
    }

    /// `cluster` left the machine for good.
    /// Post-copy: a thread at `from` waits for `page` of `pid`.
    pub fn on_page_request(&mut self, from: ClusterId, pid: Pid, page: u64) {
        self.servers.on_request(from, pid, page);
    }

    /// Post-copy: `from` has every page of `pid` (or it ended there).
    pub fn on_postcopy_done(&mut self, from: ClusterId, pid: Pid) {
        self.servers.on_done(from, pid);
    }

    /// Post-copy: what `from` measured; it completes the record (kept until the record is
    /// written if the destination's `Committed` has not come yet).
    pub fn on_postcopy_report(&mut self, from: ClusterId, report: PostCopyReport) {
        let waiting = self
            .pending
            .values_mut()
            .find(|p| p.committed && p.request.pid == report.pid && p.request.destination == from);
        match waiting {
            Some(p) => p.early_report = Some(report),
            None => stats::postcopy_report(from, &report),
        }
    }

    pub fn on_peer_gone(&mut self, cluster: ClusterId, ctx: &mut Ctx) {
        self.servers.on_peer_gone(cluster);
        stats::destination_gone(cluster);
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

    /// One pass: stream the image, then let the machine's timers run.
    pub fn step(&mut self, ctx: &mut Ctx) {
        let now = hal::clock::now_ns();
        for (pid, to, sequence, since) in core::mem::take(&mut self.freezes_waiting) {
            self.freeze_or_wait(pid, to, sequence, since, ctx);
        }
        if let Some(done) = self.send_precopy(now) {
            let actions = self.machine.on_precopy_done(done.0, done.1, now);
            self.run(actions, ctx);
        }
        if let Some(done) = self.send_image(now) {
            let actions = self.machine.on_transfer_done(done.0, done.1, now);
            self.run(actions, ctx);
        }
        self.servers.step();
        if !self.deferred.is_empty() {
            let ready: Vec<MigrationRequest> = core::mem::take(&mut self.deferred);
            for request in ready {
                self.request(request, ctx); // deferred again if still pulling
            }
        }
        let actions = self.machine.on_tick(now);
        self.run(actions, ctx);
    }

    /// Does what the machine says, in order (follow-up actions first).
    pub(super) fn run(&mut self, actions: Vec<Action>, ctx: &mut Ctx) {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    self.charge(message.sequence(), kernel::noc::link_cost::message());
                    ctx.out.send(to, message)
                }
                Action::Freeze { pid, to, sequence } => {
                    self.freeze_or_wait(pid, to, sequence, hal::clock::now_ns(), ctx)
                }
                Action::Survey { pid, to, sequence } => {
                    let surveyed = self.survey(pid, to, sequence);
                    let now = hal::clock::now_ns();
                    let more = self.machine.on_surveyed(sequence, surveyed, now);
                    self.run(more, ctx);
                }
                Action::StartPreCopy { pid, to, sequence } => {
                    let options = self.options_of(sequence);
                    match PreCopy::start(pid, to, sequence, options) {
                        Ok(precopy) => self.precopy = Some(precopy),
                        Err(error) => {
                            log::warn!("pre-copy of {pid} cannot start: {error:?}");
                            let failed = Err(MigrateError::TransferFailed);
                            let now = hal::clock::now_ns();
                            let more = self.machine.on_precopy_done(sequence, failed, now);
                            self.run(more, ctx);
                        }
                    }
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
                } => {
                    if outcome.is_err() {
                        self.forget_transfer(pid);
                    }
                    self.report(request, pid, outcome)
                }
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

    pub(super) fn forget_transfer(&mut self, pid: Pid) {
        if !self
            .pending
            .values()
            .any(|p| p.request.pid == pid && p.committed)
        {
            self.postcopy_remote.remove(&pid);
        }
        if self.transfer.as_ref().is_some_and(|t| t.pid == pid) {
            self.transfer = None;
        }
        if self.precopy.as_ref().is_some_and(|p| p.pid == pid) {
            self.precopy = None;
        }
        self.snapshots.retain(|_, s| s.manifest.pid != pid);
    }

    /// Commit decided: the copy here goes, and whatever comes for `pid` follows it.
    fn free(&mut self, pid: Pid, to: ClusterId, ctx: &mut Ctx) {
        let remote = self.postcopy_remote.remove(&pid);
        self.forget_transfer(pid);
        // Its parent, wherever it lives, learns where it went.
        let space = with_table(|table| table.remove_departed_child(pid, to))
            .map(|process| process.into_parts().1);
        // Post-copy: its remaining pages are served from here until they are all there.
        if let (Some(remote), Some(space)) = (remote, space) {
            self.servers.start(pid, to, space, remote);
        }
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
        let link_bytes = p.link_bytes + p.precopy.map_or(0, |s| s.link_bytes);
        let throttle_pct = p.precopy.map_or(0, |s| s.throttle_pct);
        let strategy = (p.request.options.strategy, link_bytes, throttle_pct);
        let route = (chip::here(), p.request.destination);
        stats::failed(pid, route, p.at, strategy, &error);
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
            let moved = stats::Moved {
                strategy: p.request.options.strategy,
                bytes: p.size.0,
                pages: p.size.1,
                stop: p.stop,
                remote_pages: p.remote_pages,
                link_bytes: p.link_bytes,
                precopy: p.precopy,
            };
            stats::succeeded(p.request.pid, route, p.at, moved);
            if let Some(report) = p.early_report {
                stats::postcopy_report(route.1, &report);
            }
        }
    }

    pub(super) fn pending_by_sequence(&mut self, sequence: u32) -> Option<&mut Pending> {
        self.pending
            .values_mut()
            .find(|p| p.sequence == Some(sequence))
    }
}
