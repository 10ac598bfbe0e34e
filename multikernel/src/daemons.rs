//! The daemons of one cluster and the dispatcher above them.
//!
//! Each daemon owns its state and its ports; this module only routes work to them: requests
//! from the kernel (`kernel::requests`), messages from the other clusters' daemons, the
//! router's news of a cluster leaving, and one `step` per scheduler pass for those with work
//! in flight.

use abi::ClusterId;
use kernel::noc::{self, mailbox, NocError};
use kernel::process::with_table;
use kernel::requests::{self, MigrationRequest, Request};
use multikernel_proto::message::Message;
use multikernel_proto::migrate::{self, Role};

use crate::chip;
use crate::forwarding::MailForwarder;
use crate::listing::Listing;
use crate::migration::{Ctx, MigrationDestination, MigrationSource};
use crate::names::NameReplica;
use crate::outbox::Outbox;
use crate::portal_relay::PortalRelay;
use crate::ports::DAEMON_PORT;
use crate::registry::LocationRegistry;
use crate::spawner::Spawner;

/// How often a cluster with data in flight looks at it again without an interrupt.
const IN_FLIGHT_POLL_NS: u64 = 1_000_000;

pub struct Daemons {
    inbox: mailbox::Mailbox,
    /// The clusters the router counted as connected at the last pass.
    live: u64,
    /// Migrations asked for a process still arriving here (prepared, waiting for Commit):
    /// served once it runs here.
    deferred: alloc::vec::Vec<MigrationRequest>,
    pub out: Outbox,
    pub registry: LocationRegistry,
    pub forwarder: MailForwarder,
    pub relay: PortalRelay,
    pub spawner: Spawner,
    pub names: NameReplica,
    pub listing: Listing,
    pub source: MigrationSource,
    pub destination: MigrationDestination,
    /// Malformed daemon messages dropped.
    pub dropped: u64,
}

impl Daemons {
    pub fn new() -> Result<Daemons, NocError> {
        Ok(Daemons {
            inbox: mailbox::create(DAEMON_PORT)?,
            live: hal::noc::live_clusters(),
            deferred: alloc::vec::Vec::new(),
            out: Outbox::default(),
            registry: LocationRegistry::default(),
            forwarder: MailForwarder::new()?,
            relay: PortalRelay::new()?,
            spawner: Spawner,
            names: NameReplica,
            listing: Listing,
            source: MigrationSource::new(),
            destination: MigrationDestination::new()?,
            dropped: 0,
        })
    }

    fn ctx(&mut self) -> (Ctx<'_>, &mut MigrationSource, &mut MigrationDestination) {
        let ctx = Ctx {
            out: &mut self.out,
            forwarder: &mut self.forwarder,
            registry: &mut self.registry,
        };
        (ctx, &mut self.source, &mut self.destination)
    }

    /// One pass: the NoC, the kernel's requests, the other daemons' messages, work in flight.
    pub fn step(&mut self) {
        noc::pump();
        self.out.flush();
        self.notice_departures();
        // Past its bound the outbox takes no new work: the requests wait in the kernel's
        // queue, which is bounded (user calls get `EAGAIN`), until the NoC drains.
        if !self.out.is_congested() {
            let deferred = core::mem::take(&mut self.deferred);
            for request in deferred
                .into_iter()
                .map(Request::Migrate)
                .chain(requests::take_all())
            {
                self.serve(request);
            }
        }
        self.forwarder.step(&self.registry);
        with_table(kernel::services::tick);
        self.relay.step(&mut self.forwarder, &self.registry);
        while let Ok(message) = mailbox::try_read(&self.inbox) {
            match Message::decode(&message.payload) {
                Ok(decoded) => self.handle(message.source, decoded),
                Err(_) => self.dropped += 1,
            }
        }
        let (mut ctx, source, destination) = self.ctx();
        destination.step(&mut ctx);
        source.step(&mut ctx);
        self.register_deadlines();
    }

    /// The kernel is tickless (`hal::timer`): tell it when the protocol machines' next timer
    /// falls due, and poll soon while data is in flight (waiting for TX space, or for a DMA
    /// completion, raises no interrupt of its own).
    fn register_deadlines(&self) {
        let timers = [
            self.source.next_deadline(),
            self.destination.next_deadline(),
            self.relay.next_deadline(),
        ];
        for deadline in timers.into_iter().flatten() {
            hal::timer::wake_by(deadline);
        }
        if self.source.is_transferring()
            || self.destination.is_receiving()
            || self.relay.is_busy()
            || !self.out.is_empty()
        {
            hal::timer::wake_after(IN_FLIGHT_POLL_NS);
        }
    }

    /// The router tells when a cluster leaves; both migration machines must hear of it.
    fn notice_departures(&mut self) {
        let live = hal::noc::live_clusters();
        let gone = self.live & !live;
        self.live = live;
        for cluster in (0..64u16).filter(|c| gone & (1 << c) != 0).map(ClusterId) {
            let (mut ctx, source, destination) = self.ctx();
            source.on_peer_gone(cluster, &mut ctx);
            destination.on_peer_gone(cluster, &mut ctx);
            for pid in self.registry.living_on(cluster) {
                log::warn!("process {pid} lost: cluster {} left the machine", cluster.0);
            }
            // Writers whose message went there, and parents waiting for a child there.
            with_table(|table| {
                kernel::acceptance::cluster_gone(table, cluster);
                table.wake_all_child_waiters();
            });
        }
    }

    /// A request from this cluster's kernel.
    fn serve(&mut self, request: Request) {
        match request {
            Request::Migrate(migrate) => self.migrate(migrate),
            Request::Spawn(spawn) => {
                self.spawner
                    .spawn_remote(spawn, &mut self.registry, &mut self.out)
            }
            Request::Kill(pid) => self.kill(pid),
            Request::ExitReport { pid, code } => self.spawner.report_exit(pid, code, &mut self.out),
            Request::ListMachine => self.listing.ask_all(&mut self.out),
            Request::Name(change) => self.names.publish(change, &mut self.out),
            Request::PortalOut(transfer) => self.relay.send(transfer),
            Request::PortalClaim(claim) => self.relay.claimed(claim),
            Request::PageFault { pid, page } => {
                let (mut ctx, _, destination) = self.ctx();
                destination.on_page_fault(pid, page, &mut ctx);
            }
            Request::ChildNews {
                parent,
                child,
                news,
            } => self.forwarder.send(
                kernel::envelope::Mail {
                    pid: parent,
                    port: abi::PortId(0),
                    kind: kernel::envelope::MailKind::ChildNews,
                    data: kernel::requests::ChildNews::encode(child, news).to_vec(),
                    from: None,
                },
                &self.registry,
            ),
        }
    }

    /// A message from `from`'s daemons.
    fn handle(&mut self, from: ClusterId, message: Message) {
        let (mut ctx, source, destination) = self.ctx();
        match migrate::role(&message) {
            Some(Role::Source) => return source.on_message(from, &message, &mut ctx),
            Some(Role::Destination) => return destination.on_message(from, &message, &mut ctx),
            None => {}
        }
        let out = &mut self.out;
        match message {
            Message::MigrateRequest {
                pid,
                destination,
                options,
            } => self.migrate(MigrationRequest {
                pid,
                destination,
                caller: None,
                options,
            }),
            Message::SetRefusing { on } => self.destination.set_refusing(on),
            Message::PageRequest { pid, page } => self.source.on_page_request(from, pid, page),
            Message::PostCopyDone { pid } => self.source.on_postcopy_done(from, pid),
            Message::PostCopyReport(report) => self.source.on_postcopy_report(from, report),
            Message::Located { pid, cluster } => self.registry.set(pid, cluster),
            Message::Exited { pid, code } => self.spawner.on_exited(pid, code, &mut self.registry),
            Message::Spawn {
                pid,
                parent,
                program,
                args,
            } => self
                .spawner
                .on_spawn(from, (pid, parent, &program, &args), out),
            Message::Kill { pid } => self.kill(pid),
            Message::ListRequest => self.listing.on_request(from, out),
            Message::ListEntry { record } => self.listing.on_entry(from, &record),
            Message::NameLink { pid, name } => self.names.apply_link(pid, &name),
            Message::NameUnlink { pid, name } => self.names.apply_unlink(pid, &name),
            _ => self.dropped += 1, // a migration message: routed above
        }
    }

    /// Moves a process: now, or once it has finished arriving here.
    fn migrate(&mut self, request: MigrationRequest) {
        if self.destination.holds(request.pid) {
            self.deferred.push(request);
            return;
        }
        let (mut ctx, source, _) = self.ctx();
        source.request(request, &mut ctx)
    }

    /// Ends `pid`: held by a migration in flight here, applied here, or passed on.
    fn kill(&mut self, pid: abi::Pid) {
        let code = kernel::process::KILLED_EXIT_CODE;
        if self.source.hold_kill(pid, code) || self.destination.hold_kill(pid, code) {
            return;
        }
        with_table(|table| {
            self.spawner
                .kill(table, pid, &self.forwarder, &self.registry, &mut self.out)
        });
    }

    /// Tells `cluster`'s daemons to refuse (or accept again) incoming migrations.
    pub fn set_refusing_on(&mut self, cluster: ClusterId, on: bool) {
        if cluster == chip::here() {
            self.destination.set_refusing(on);
        } else {
            self.out.send(cluster, Message::SetRefusing { on });
        }
    }
}
