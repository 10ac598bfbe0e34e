//! The migration daemon: one per cluster, both ends of every migration.
//!
//! Source side: freeze, offer the manifest, stream the image over the destination's portal
//! (one allow per ≤ 1 MiB transfer), announce the body's CRC, and on the destination's
//! confirmation free the process here; on refusal, failure, timeout or a vanished destination,
//! thaw it unchanged. Destination side: accept at most one image at a time, restore it as it
//! arrives, confirm only once the process is runnable. Both sides are state machines stepped
//! from the scheduler loop, so user threads keep running while a migration is in flight.
//!
//! The birth cluster of every process (its *home*) keeps its current location, so any cluster
//! can ask for a migration by pid, and a process that exits far from home is reported there.

use abi::{ClusterId, Errno, Pid};
use alloc::collections::{BTreeMap, VecDeque};
use hal::noc::PortId;
use kernel::migstats::{self, Record, Strategy};
use kernel::noc::{self, mailbox, portal, NocError};
use kernel::process::{with_table, MigrationRequest, Table};
use migration::restore::Restorer;
use migration::snapshot::Snapshot;
use migration::{freeze, MigrationError};
use uarea::image::Manifest;

use crate::protocol::{reason, Message};

/// Mailbox port of every cluster's daemon.
pub const DAEMON_PORT: PortId = PortId(0xFF00);
/// Portal port migration images arrive on.
pub const IMAGE_PORT: PortId = PortId(0xFF01);
/// Exit code reported for a remote spawn that could not create the process (`-ENOENT`).
pub const SPAWN_FAILED: i32 = -2;
/// Largest portal transfer.
const CHUNK: usize = abi::PORTAL_MAX_TRANSFER;
/// A migration that makes no progress for this long is abandoned (generous: TCG on a loaded
/// two-core host can stall a cluster for seconds).
const STALL_NS: u64 = 20_000_000_000;
/// How often a cluster with a transfer in flight looks at it again without an interrupt.
const IN_FLIGHT_POLL_NS: u64 = 1_000_000;

struct Outgoing {
    request: MigrationRequest,
    sequence: u32,
    snapshot: Snapshot,
    image: portal::PortalTx,
    state: OutState,
    started_ns: u64,
    frozen_ns: u64,
    sent_ns: u64,
    progress_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    Offered,
    Sending,
    AwaitingCommit,
}

struct Incoming {
    source: ClusterId,
    sequence: u32,
    restorer: Restorer,
    done_crc: Option<u32>,
    progress_ns: u64,
}

/// The daemon's state.
pub struct Daemon {
    mailbox: mailbox::Mailbox,
    /// User mail arriving for processes that may have moved on.
    user_mail: mailbox::Mailbox,
    /// Where processes that left this cluster went (messages for them follow).
    forward: BTreeMap<Pid, ClusterId>,
    /// User mail waiting for room on the NoC.
    mail_backlog: VecDeque<(ClusterId, kernel::ipc::Mail)>,
    /// User mail for processes nobody knows.
    pub mail_dropped: u64,
    /// User portal transfers arrive here (one admitted sender at a time).
    user_portal: portal::Portal,
    /// The claim admitted on `user_portal`, and since when.
    inbound_claim: Option<(kernel::portal::Claim, u64)>,
    /// The user transfer being sent (claimed, waiting for the receiving kernel's allow).
    outbound: Option<(kernel::portal::Outgoing, u64)>,
    image_portal: portal::Portal,
    next_sequence: u32,
    queue: VecDeque<MigrationRequest>,
    outgoing: Option<Outgoing>,
    incoming: Option<Incoming>,
    /// Where the processes born here live now (absent: here, or exited).
    locations: BTreeMap<Pid, ClusterId>,
    /// Outcome of the latest migration of each pid that left from here.
    outcomes: BTreeMap<Pid, Result<ClusterId, MigrationError>>,
    /// Messages that could not be sent yet.
    outbox: VecDeque<(ClusterId, Message)>,
    /// Test switch: refuse every incoming migration.
    pub refusing: bool,
    /// Malformed daemon messages dropped.
    pub dropped: u64,
}

impl Daemon {
    pub fn new() -> Result<Daemon, NocError> {
        Ok(Daemon {
            mailbox: mailbox::create(DAEMON_PORT)?,
            user_mail: mailbox::create(kernel::ipc::USER_MAIL_PORT)?,
            user_portal: portal::create(kernel::portal::USER_PORTAL_PORT)?,
            inbound_claim: None,
            outbound: None,
            forward: BTreeMap::new(),
            mail_backlog: VecDeque::new(),
            mail_dropped: 0,
            image_portal: portal::create(IMAGE_PORT)?,
            next_sequence: 1,
            queue: VecDeque::new(),
            outgoing: None,
            incoming: None,
            locations: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            outbox: VecDeque::new(),
            refusing: false,
            dropped: 0,
        })
    }

    fn send(&mut self, to: ClusterId, message: Message) {
        self.outbox.push_back((to, message));
        self.flush();
    }

    fn flush(&mut self) {
        while let Some((to, message)) = self.outbox.front().cloned() {
            let Ok(tx) = mailbox::open(wire(to), DAEMON_PORT) else {
                self.outbox.pop_front();
                continue;
            };
            match mailbox::write(&tx, &message.encode()) {
                Ok(()) => {
                    self.outbox.pop_front();
                }
                Err(NocError::WouldBlock) => break,
                Err(_) => {
                    self.outbox.pop_front();
                }
            }
        }
    }

    /// Tells `cluster`'s daemon to refuse (or accept again) incoming migrations.
    pub fn set_refusing_on(&mut self, cluster: ClusterId, on: bool) {
        if cluster == here() {
            self.refusing = on;
        } else {
            self.send(cluster, Message::SetRefusing { on });
        }
    }

    /// Asks for `pid` to move to `destination`, wherever it lives now.
    pub fn request(&mut self, table: &Table, request: MigrationRequest) {
        let pid = request.pid;
        if table.is_alive(pid) {
            self.outcomes.remove(&pid);
            self.queue.push_back(request);
        } else if pid.birth_cluster() == table.cluster {
            match self.locations.get(&pid) {
                Some(&host) => self.send(
                    host,
                    Message::MigrateRequest {
                        pid,
                        destination: request.destination,
                    },
                ),
                None => {
                    self.outcomes
                        .insert(pid, Err(MigrationError::NoSuchProcess));
                }
            }
        } else {
            self.send(
                pid.birth_cluster(),
                Message::MigrateRequest {
                    pid,
                    destination: request.destination,
                },
            );
        }
    }

    /// The outcome of the latest migration of `pid` started here, if it ended.
    pub fn outcome(&self, pid: Pid) -> Option<Result<ClusterId, MigrationError>> {
        self.outcomes.get(&pid).cloned()
    }

    /// Where a process born here lives now (`None`: here or gone).
    pub fn location(&self, pid: Pid) -> Option<ClusterId> {
        self.locations.get(&pid).copied()
    }

    /// One pass: messages, incoming data, the outgoing migration, queued requests.
    pub fn step(&mut self) {
        noc::pump();
        self.flush();
        with_table(|table| {
            while let Some(request) = table.migration_requests.pop_front() {
                self.request(table, request);
            }
            while let Some((pid, code)) = table.remote_exits.pop_front() {
                self.send(pid.birth_cluster(), Message::Exited { pid, code });
            }
            while let Some(spawn) = table.remote_spawns.pop_front() {
                self.spawn_remote(spawn);
            }
            while let Some(pid) = table.remote_kills.pop_front() {
                self.kill(table, pid);
            }
        });
        self.broadcast_names();
        if kernel::process::MACHINE_LIST_REQUESTED.swap(false, core::sync::atomic::Ordering::SeqCst)
        {
            for cluster in (0..noc::cluster_count())
                .map(ClusterId)
                .filter(|c| *c != here())
            {
                self.send(cluster, Message::ListRequest);
            }
        }
        self.route_user_mail();
        self.move_user_portal_data();
        self.receive_image_data();
        while let Ok(message) = mailbox::try_read(&self.mailbox) {
            match Message::decode(&message.payload) {
                Some(decoded) => self.handle(ClusterId(message.source.0), decoded),
                None => self.dropped += 1,
            }
        }
        self.step_incoming();
        self.step_outgoing();
        self.register_deadlines();
    }

    /// The kernel is tickless (`hal::timer`): tell it when the next stall timer above falls
    /// due, and poll soon while a transfer is in flight (it may wait for TX space, which
    /// raises no interrupt).
    fn register_deadlines(&self) {
        let stall = |since: u64| hal::timer::wake_by(since.saturating_add(STALL_NS + 1));
        let in_flight = [
            self.outgoing.as_ref().map(|o| o.progress_ns),
            self.incoming.as_ref().map(|i| i.progress_ns),
            self.outbound.as_ref().map(|(_, since)| *since),
        ];
        for since in in_flight.into_iter().flatten() {
            stall(since);
            hal::timer::wake_after(IN_FLIGHT_POLL_NS);
        }
        if let Some((_, since)) = &self.inbound_claim {
            stall(*since);
        }
    }

    fn handle(&mut self, from: ClusterId, message: Message) {
        match message {
            Message::Offer { sequence, manifest } => self.offered(from, sequence, manifest),
            Message::Done { sequence, crc } => {
                if let Some(incoming) = self
                    .incoming
                    .as_mut()
                    .filter(|i| i.source == from && i.sequence == sequence)
                {
                    incoming.done_crc = Some(crc);
                }
            }
            Message::Accept { sequence } => {
                if let Some(out) = self
                    .outgoing
                    .as_mut()
                    .filter(|o| o.sequence == sequence && o.state == OutState::Offered)
                {
                    out.state = OutState::Sending;
                    out.progress_ns = hal::clock::now_ns();
                }
            }
            Message::Refuse { sequence, .. } => {
                self.fail_outgoing(sequence, MigrationError::Refused)
            }
            Message::Failed { sequence, reason } => {
                let error = if reason == reason::NO_MEMORY {
                    MigrationError::OutOfMemory
                } else {
                    MigrationError::LinkError
                };
                self.fail_outgoing(sequence, error)
            }
            Message::Committed { sequence } => self.commit_outgoing(sequence),
            Message::Located { pid, cluster } => {
                if cluster == here() {
                    self.locations.remove(&pid);
                } else {
                    self.locations.insert(pid, cluster);
                }
            }
            Message::Exited { pid, code } => {
                self.locations.remove(&pid);
                with_table(|table| table.record_remote_exit(pid, code));
            }
            Message::SetRefusing { on } => self.refusing = on,
            Message::Kill { pid } => with_table(|table| self.kill(table, pid)),
            Message::ListRequest => {
                for record in with_table(|table| table.list()) {
                    self.send(
                        from,
                        Message::ListEntry {
                            record: kernel::process::info_bytes(&record),
                        },
                    );
                }
            }
            Message::ListEntry { record } => {
                let from_text = alloc::format!("[c{}] ", from.0);
                kernel::monitor::print_record(
                    &kernel::process::info_from_bytes(&record),
                    &from_text,
                );
            }
            Message::NameLink { pid, name } => kernel::names::apply(kernel::names::Change::Link {
                name: name.as_str().into(),
                pid,
            }),
            Message::NameUnlink { pid, name } => {
                kernel::names::apply(kernel::names::Change::Unlink {
                    name: name.as_str().into(),
                    pid,
                })
            }
            Message::Spawn {
                pid,
                parent,
                program,
                args,
            } => {
                let args: alloc::vec::Vec<&str> =
                    args.split('\0').filter(|a| !a.is_empty()).collect();
                let result = with_table(|table| table.spawn_as(pid, &program, &args, Some(parent)));
                if let Err(error) = result {
                    log::warn!("remote spawn of `{program}` as {pid} failed: {error:?}");
                    self.send(
                        from,
                        Message::Exited {
                            pid,
                            code: SPAWN_FAILED,
                        },
                    );
                }
            }
            Message::MigrateRequest { pid, destination } => {
                with_table(|table| {
                    self.request(
                        table,
                        MigrationRequest {
                            pid,
                            destination,
                            caller: None,
                        },
                    )
                });
            }
        }
    }

    /// Announces the name changes made here to every other cluster.
    fn broadcast_names(&mut self) {
        for change in kernel::names::take_outbox() {
            let (pid, name, link) = match change {
                kernel::names::Change::Link { name, pid } => (pid, name, true),
                kernel::names::Change::Unlink { name, pid } => (pid, name, false),
            };
            let Ok(name) = crate::protocol::heapless_str::Name::try_from(name.as_str()) else {
                continue;
            };
            for cluster in (0..noc::cluster_count())
                .map(ClusterId)
                .filter(|c| *c != here())
            {
                let message = if link {
                    Message::NameLink {
                        pid,
                        name: name.clone(),
                    }
                } else {
                    Message::NameUnlink {
                        pid,
                        name: name.clone(),
                    }
                };
                self.send(cluster, message);
            }
        }
    }

    /// Ends `pid` here, or passes the kill on to where it lives (its home knows).
    fn kill(&mut self, table: &mut Table, pid: Pid) {
        if table.is_alive(pid) {
            table.exit_process(pid, kernel::process::KILLED_EXIT_CODE);
            return;
        }
        let next = if pid.birth_cluster() == table.cluster {
            self.locations.get(&pid).copied()
        } else {
            self.forward
                .get(&pid)
                .copied()
                .or(Some(pid.birth_cluster()))
        };
        if let Some(cluster) = next.filter(|c| *c != table.cluster) {
            self.send(cluster, Message::Kill { pid });
        }
    }

    // ---- user portals between clusters (see kernel::portal) ----

    fn move_user_portal_data(&mut self) {
        let now = hal::clock::now_ns();
        // Receiving: admit one claimed transfer at a time, hand its data to the process.
        while let Ok((from, data)) = portal::try_read_vec(&self.user_portal) {
            match self.inbound_claim.take() {
                Some((claim, _)) if claim.cluster.0 == from.0 => with_table(|table| {
                    if table.processes.contains_key(&claim.to.0) {
                        kernel::portal::deliver_data(table, claim.from.0, claim.to, data);
                    } else {
                        self.mail_dropped += 1; // the receiver left meanwhile
                    }
                }),
                other => self.inbound_claim = other,
            }
        }
        if self
            .inbound_claim
            .as_ref()
            .is_some_and(|(_, since)| now.saturating_sub(*since) > STALL_NS)
        {
            self.inbound_claim = None;
        }
        if self.inbound_claim.is_none() {
            if let Some(claim) = kernel::portal::next_claim() {
                if portal::allow(&self.user_portal, wire(claim.cluster)).is_ok() {
                    self.inbound_claim = Some((claim, now));
                }
            }
        }
        // Sending: claim the next transfer, then write it once the receiving kernel allows us.
        if self.outbound.is_none() {
            if let Some(transfer) = kernel::portal::next_outgoing() {
                let mut data = transfer.from.0.raw().to_le_bytes().to_vec();
                data.extend_from_slice(&transfer.from.1 .0.to_le_bytes());
                data.extend_from_slice(&here().0.to_le_bytes());
                let claim = kernel::ipc::Mail {
                    pid: transfer.to.0,
                    port: transfer.to.1,
                    kind: kernel::ipc::MailKind::PortalClaim,
                    data,
                };
                let sent = with_table(|table| kernel::ipc::send(table, claim.clone()));
                if sent.is_ok() {
                    self.outbound = Some((transfer, now));
                } else {
                    self.route(claim); // the home forwards it
                    self.outbound = Some((transfer, now));
                }
            }
        }
        if let Some((transfer, since)) = self.outbound.take() {
            let allowed = (0..noc::cluster_count())
                .filter(|c| *c != here().0)
                .filter_map(|c| {
                    portal::open(hal::noc::ClusterId(c), kernel::portal::USER_PORTAL_PORT).ok()
                })
                .find(portal::is_allowed);
            match allowed {
                Some(tx) if portal::write(&tx, &transfer.data).is_ok() => {}
                _ if now.saturating_sub(since) > STALL_NS => {
                    log::warn!("user portal transfer to {} abandoned", transfer.to.0);
                }
                _ => self.outbound = Some((transfer, since)),
            }
        }
    }

    // ---- spawner: create processes on other clusters ----

    fn spawn_remote(&mut self, spawn: kernel::process::RemoteSpawn) {
        let (Ok(program), Ok(args)) = (
            crate::protocol::heapless_str::Name::try_from(spawn.program.as_str()),
            crate::protocol::heapless_str::Args::try_from(spawn.args.as_str()),
        ) else {
            with_table(|table| table.record_remote_exit(spawn.pid, SPAWN_FAILED));
            return;
        };
        self.locations.insert(spawn.pid, spawn.cluster);
        self.send(
            spawn.cluster,
            Message::Spawn {
                pid: spawn.pid,
                parent: spawn.parent,
                program,
                args,
            },
        );
    }

    // ---- user mail: deliver here, or forward to where the process lives now ----

    fn route_user_mail(&mut self) {
        // Room may have appeared on the NoC: writers blocked on a full ring try again.
        with_table(|table| {
            let blocked: alloc::vec::Vec<(Pid, abi::Tid)> = table
                .processes
                .iter()
                .flat_map(|(pid, p)| {
                    p.uarea.threads.iter().filter_map(move |t| {
                        matches!(
                            t.state,
                            uarea::ThreadState::Blocked(uarea::BlockReason::MailboxWrite { .. })
                        )
                        .then_some((*pid, t.tid))
                    })
                })
                .collect();
            for (pid, tid) in blocked {
                table.restart_blocked(pid, tid);
            }
        });
        while let Some((to, mail)) = self.mail_backlog.pop_front() {
            if kernel::ipc::send_to(to, &mail).is_err() {
                self.mail_backlog.push_front((to, mail));
                break;
            }
        }
        while let Ok(message) = mailbox::try_read(&self.user_mail) {
            let Some(mail) = kernel::ipc::Mail::decode(&message.payload) else {
                self.mail_dropped += 1;
                continue;
            };
            self.route(mail);
        }
    }

    fn route(&mut self, mail: kernel::ipc::Mail) {
        let pid = mail.pid;
        let next_hop = with_table(|table| {
            if table.processes.contains_key(&pid) {
                kernel::ipc::deliver_local(table, mail.clone());
                return None;
            }
            self.forward
                .get(&pid)
                .or_else(|| self.locations.get(&pid))
                .copied()
        });
        match next_hop {
            Some(cluster) if cluster != here() => self.forward_mail(cluster, mail),
            Some(_) => {}
            None => {
                if !with_table(|t| t.processes.contains_key(&pid)) {
                    self.mail_dropped += 1;
                }
            }
        }
    }

    fn forward_mail(&mut self, to: ClusterId, mail: kernel::ipc::Mail) {
        if !self.mail_backlog.is_empty() || kernel::ipc::send_to(to, &mail).is_err() {
            self.mail_backlog.push_back((to, mail));
        }
    }

    // ---- destination side ----

    fn offered(&mut self, from: ClusterId, sequence: u32, manifest: Manifest) {
        let refusal = if self.incoming.is_some() {
            Some(reason::BUSY)
        } else if self.refusing {
            Some(reason::REFUSING)
        } else {
            None
        };
        if let Some(why) = refusal {
            self.send(
                from,
                Message::Refuse {
                    sequence,
                    reason: why,
                },
            );
            return;
        }
        match with_table(|table| Restorer::new(table, manifest)) {
            Ok(restorer) => {
                if portal::allow(&self.image_portal, wire(from)).is_err() {
                    self.send(
                        from,
                        Message::Refuse {
                            sequence,
                            reason: reason::BUSY,
                        },
                    );
                    return;
                }
                self.incoming = Some(Incoming {
                    source: from,
                    sequence,
                    restorer,
                    done_crc: None,
                    progress_ns: hal::clock::now_ns(),
                });
                self.send(from, Message::Accept { sequence });
            }
            Err(error) => {
                let why = match error {
                    MigrationError::OutOfMemory => reason::NO_MEMORY,
                    _ => reason::EXISTS,
                };
                self.send(
                    from,
                    Message::Refuse {
                        sequence,
                        reason: why,
                    },
                );
            }
        }
    }

    fn receive_image_data(&mut self) {
        while let Ok((from, data)) = portal::try_read_vec(&self.image_portal) {
            let from = ClusterId(from.0);
            let Some(incoming) = self.incoming.as_mut().filter(|i| i.source == from) else {
                continue; // stale data from an abandoned transfer
            };
            incoming.progress_ns = hal::clock::now_ns();
            if let Err(error) = incoming.restorer.feed(&data) {
                let (source, sequence) = (incoming.source, incoming.sequence);
                log::warn!("incoming migration from c{} rejected: {error:?}", source.0);
                self.incoming = None;
                let why = if error == MigrationError::OutOfMemory {
                    reason::NO_MEMORY
                } else {
                    reason::BAD_IMAGE
                };
                self.send(
                    source,
                    Message::Failed {
                        sequence,
                        reason: why,
                    },
                );
                return;
            }
            if !incoming.restorer.is_complete() {
                let _ = portal::allow(&self.image_portal, wire(from));
            }
        }
    }

    fn step_incoming(&mut self) {
        let Some(incoming) = self.incoming.as_ref() else {
            return;
        };
        let (source, sequence) = (incoming.source, incoming.sequence);
        if let Some(crc) = incoming
            .done_crc
            .filter(|_| incoming.restorer.is_complete())
        {
            let Some(incoming) = self.incoming.take() else {
                return;
            };
            match with_table(|table| incoming.restorer.finish(table, crc)) {
                Ok(pid) => {
                    log::info!("process {pid} arrived from c{}", source.0);
                    self.forward.remove(&pid);
                    if pid.birth_cluster() == here() {
                        self.locations.remove(&pid);
                    }
                    self.send(source, Message::Committed { sequence });
                }
                Err(error) => {
                    log::warn!("incoming migration from c{} failed: {error:?}", source.0);
                    self.send(
                        source,
                        Message::Failed {
                            sequence,
                            reason: reason::BAD_IMAGE,
                        },
                    );
                }
            }
        } else if hal::clock::now_ns().saturating_sub(incoming.progress_ns) > STALL_NS
            || !cluster_alive(source)
        {
            log::warn!(
                "incoming migration from c{} abandoned (stalled or source gone)",
                source.0
            );
            self.incoming = None;
            self.send(
                source,
                Message::Failed {
                    sequence,
                    reason: reason::TIMEOUT,
                },
            );
        }
    }

    // ---- source side ----

    fn step_outgoing(&mut self) {
        if self.outgoing.is_none() {
            if let Some(request) = self.queue.pop_front() {
                self.start(request);
            }
            return;
        }
        let now = hal::clock::now_ns();
        let Some(out) = self.outgoing.as_mut() else {
            return;
        };
        let destination = out.request.destination;
        if !cluster_alive(destination) {
            let sequence = out.sequence;
            return self.fail_outgoing(sequence, MigrationError::LinkError);
        }
        if now.saturating_sub(out.progress_ns) > STALL_NS {
            let sequence = out.sequence;
            return self.fail_outgoing(sequence, MigrationError::Timeout);
        }
        if out.state != OutState::Sending {
            return;
        }
        // Send as long as the destination keeps allowing (one allowance per transfer).
        while portal::is_allowed(&out.image) && !out.snapshot.is_done() {
            let chunk = with_table(|table| {
                let process = table
                    .processes
                    .get(&out.request.pid)
                    .ok_or(MigrationError::NoSuchProcess)?;
                out.snapshot.next_chunk(process, CHUNK)
            });
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    let sequence = out.sequence;
                    return self.fail_outgoing(sequence, error);
                }
            };
            match portal::write(&out.image, &chunk) {
                Ok(()) => out.progress_ns = now,
                Err(_) => {
                    let sequence = out.sequence;
                    return self.fail_outgoing(sequence, MigrationError::LinkError);
                }
            }
        }
        if out.snapshot.is_done() {
            if let Some(crc) = out.snapshot.crc() {
                out.state = OutState::AwaitingCommit;
                out.sent_ns = hal::clock::now_ns();
                let (sequence, destination) = (out.sequence, destination);
                self.send(destination, Message::Done { sequence, crc });
            }
        }
    }

    fn start(&mut self, request: MigrationRequest) {
        let started_ns = hal::clock::now_ns();
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        let destination = request.destination;
        let setup = with_table(|table| {
            if destination == table.cluster || destination.0 >= noc::cluster_count() {
                return Err(MigrationError::BadDestination);
            }
            freeze::freeze(table, request.pid)?;
            Snapshot::take(table, request.pid, destination, sequence)
                .inspect_err(|_| freeze::thaw(table, request.pid))
        });
        let snapshot = match setup {
            Ok(snapshot) => snapshot,
            Err(error) => return self.finish_failed(request, error, started_ns, started_ns),
        };
        let frozen_ns = hal::clock::now_ns();
        let image = match portal::open(wire(destination), IMAGE_PORT) {
            Ok(image) => image,
            Err(_) => {
                with_table(|table| freeze::thaw(table, request.pid));
                return self.finish_failed(
                    request,
                    MigrationError::LinkError,
                    started_ns,
                    frozen_ns,
                );
            }
        };
        let manifest = snapshot.manifest;
        self.outgoing = Some(Outgoing {
            request,
            sequence,
            snapshot,
            image,
            state: OutState::Offered,
            started_ns,
            frozen_ns,
            sent_ns: 0,
            progress_ns: frozen_ns,
        });
        self.send(destination, Message::Offer { sequence, manifest });
    }

    fn fail_outgoing(&mut self, sequence: u32, error: MigrationError) {
        let Some(out) = self.outgoing.take_if(|o| o.sequence == sequence) else {
            return;
        };
        with_table(|table| freeze::thaw(table, out.request.pid));
        self.finish_failed(out.request, error, out.started_ns, out.frozen_ns);
    }

    fn finish_failed(
        &mut self,
        request: MigrationRequest,
        error: MigrationError,
        started_ns: u64,
        frozen_ns: u64,
    ) {
        let pid = request.pid;
        if let Some((caller_pid, tid)) = request.caller {
            // The thread that called `migrate` gets the error, here.
            with_table(|table| {
                if let Some(thread) = table
                    .processes
                    .get_mut(&caller_pid)
                    .and_then(|p| p.uarea.thread_mut(tid))
                {
                    thread.context.rax = Errno::from(error.clone()).as_return() as u64;
                }
            });
        }
        let now = hal::clock::now_ns();
        migstats::record(Record {
            pid,
            source: here(),
            destination: request.destination,
            strategy: Strategy::StopAndCopy,
            preparation_ns: frozen_ns - started_ns,
            downtime_ns: now - frozen_ns,
            resume_ns: 0,
            total_ns: now - started_ns,
            bytes: 0,
            pages: 0,
            failure: Some(failure_name(&error)),
        });
        self.outcomes.insert(pid, Err(error));
    }

    fn commit_outgoing(&mut self, sequence: u32) {
        let Some(out) = self
            .outgoing
            .take_if(|o| o.sequence == sequence && o.state == OutState::AwaitingCommit)
        else {
            return;
        };
        let pid = out.request.pid;
        let destination = out.request.destination;
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
        self.forward.insert(pid, destination);
        for mail in kernel::ipc::drain(pid) {
            self.forward_mail(destination, mail);
        }
        let now = hal::clock::now_ns();
        let manifest = out.snapshot.manifest;
        migstats::record(Record {
            pid,
            source: here(),
            destination,
            strategy: Strategy::StopAndCopy,
            preparation_ns: out.frozen_ns - out.started_ns,
            downtime_ns: now - out.frozen_ns,
            resume_ns: now - out.sent_ns,
            total_ns: now - out.started_ns,
            bytes: manifest.body_len() + uarea::image::MANIFEST_LEN as u64,
            pages: manifest.page_count as u64,
            failure: None,
        });
        if pid.birth_cluster() == here() {
            self.locations.insert(pid, destination);
        } else {
            self.send(
                pid.birth_cluster(),
                Message::Located {
                    pid,
                    cluster: destination,
                },
            );
        }
        self.outcomes.insert(pid, Ok(destination));
    }
}

/// This cluster, as the ABI names it.
fn here() -> ClusterId {
    ClusterId(noc::cluster().0)
}

/// A cluster as the NoC layer names it.
fn wire(cluster: ClusterId) -> hal::noc::ClusterId {
    hal::noc::ClusterId(cluster.0)
}

fn cluster_alive(cluster: ClusterId) -> bool {
    hal::noc::live_clusters() & (1u64 << cluster.0) != 0
}

fn failure_name(error: &MigrationError) -> &'static str {
    match error {
        MigrationError::NoSuchProcess => "no such process",
        MigrationError::AlreadyFrozen => "already migrating",
        MigrationError::BadDestination => "bad destination",
        MigrationError::Refused => "refused by the destination",
        MigrationError::Image(_) => "bad image",
        MigrationError::OutOfMemory => "destination out of memory",
        MigrationError::LinkError => "link error or destination gone",
        MigrationError::Timeout => "timed out",
    }
}
