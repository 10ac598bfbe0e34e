//! The daemons of one cluster and the dispatcher above them.
//!
//! Each daemon owns its state and its ports; this module only routes work to them: requests
//! from the kernel (`kernel::requests`), messages from the other clusters' daemons, and one
//! `step` per scheduler pass for those with work in flight.

use abi::ClusterId;
use kernel::noc::{self, mailbox, NocError};
use kernel::process::with_table;
use kernel::requests::{self, Request};

use crate::forwarding::MailForwarder;
use crate::listing::Listing;
use crate::migration::{MigrationDestination, MigrationSource};
use crate::names::NameReplica;
use crate::outbox::Outbox;
use crate::portal_relay::PortalRelay;
use crate::ports::DAEMON_PORT;
use crate::protocol::Message;
use crate::registry::LocationRegistry;
use crate::spawner::Spawner;

pub struct Daemons {
    inbox: mailbox::Mailbox,
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
            out: Outbox::default(),
            registry: LocationRegistry::default(),
            forwarder: MailForwarder::new()?,
            relay: PortalRelay::new()?,
            spawner: Spawner,
            names: NameReplica,
            listing: Listing,
            source: MigrationSource::default(),
            destination: MigrationDestination::new()?,
            dropped: 0,
        })
    }

    /// One pass: the NoC, the kernel's requests, the other daemons' messages, work in flight.
    pub fn step(&mut self) {
        noc::pump();
        self.out.flush();
        for request in requests::take_all() {
            self.serve(request);
        }
        self.forwarder.step(&self.registry);
        self.relay.step(&mut self.forwarder, &self.registry);
        self.destination
            .step(&mut self.forwarder, &mut self.registry, &mut self.out);
        while let Ok(message) = mailbox::try_read(&self.inbox) {
            match Message::decode(&message.payload) {
                Some(decoded) => self.handle(ClusterId(message.source.0), decoded),
                None => self.dropped += 1,
            }
        }
        self.source.step(&mut self.out);
    }

    /// A request from this cluster's kernel.
    fn serve(&mut self, request: Request) {
        let out = &mut self.out;
        match request {
            Request::Migrate(migrate) => {
                with_table(|table| self.source.request(table, migrate, &self.registry, out))
            }
            Request::Spawn(spawn) => self.spawner.spawn_remote(spawn, &mut self.registry, out),
            Request::Kill(pid) => with_table(|table| {
                self.spawner
                    .kill(table, pid, &self.forwarder, &self.registry, out)
            }),
            Request::ExitReport { pid, code } => self.spawner.report_exit(pid, code, out),
            Request::ListMachine => self.listing.ask_all(out),
            Request::Name(change) => self.names.publish(change, out),
            Request::PortalOut(transfer) => self.relay.send(transfer),
            Request::PortalClaim(claim) => self.relay.claimed(claim),
        }
    }

    /// A message from `from`'s daemons.
    fn handle(&mut self, from: ClusterId, message: Message) {
        let (out, registry, forwarder) = (&mut self.out, &mut self.registry, &mut self.forwarder);
        match message {
            Message::Offer { sequence, manifest } => {
                self.destination.on_offer(from, sequence, manifest, out)
            }
            Message::Done { sequence, crc } => self.destination.on_done(from, sequence, crc),
            Message::Accept { sequence } => self.source.on_accept(sequence),
            Message::Refuse { sequence, .. } => self.source.on_refuse(sequence),
            Message::Failed { sequence, reason } => self.source.on_failed(sequence, reason),
            Message::Committed { sequence } => {
                self.source.on_committed(sequence, forwarder, registry, out)
            }
            Message::MigrateRequest { pid, destination } => {
                let migrate = requests::MigrationRequest {
                    pid,
                    destination,
                    caller: None,
                };
                with_table(|table| self.source.request(table, migrate, registry, out))
            }
            Message::SetRefusing { on } => self.destination.refusing = on,
            Message::Located { pid, cluster } => registry.set(pid, cluster),
            Message::Exited { pid, code } => self.spawner.on_exited(pid, code, registry),
            Message::Spawn {
                pid,
                parent,
                program,
                args,
            } => self
                .spawner
                .on_spawn(from, (pid, parent, &program, &args), out),
            Message::Kill { pid } => {
                with_table(|table| self.spawner.kill(table, pid, forwarder, registry, out))
            }
            Message::ListRequest => self.listing.on_request(from, out),
            Message::ListEntry { record } => self.listing.on_entry(from, &record),
            Message::NameLink { pid, name } => self.names.apply(kernel::names::Change::Link {
                name: name.as_str().into(),
                pid,
            }),
            Message::NameUnlink { pid, name } => self.names.apply(kernel::names::Change::Unlink {
                name: name.as_str().into(),
                pid,
            }),
        }
    }

    /// Tells `cluster`'s daemons to refuse (or accept again) incoming migrations.
    pub fn set_refusing_on(&mut self, cluster: ClusterId, on: bool) {
        if cluster == crate::chip::here() {
            self.destination.refusing = on;
        } else {
            self.out.send(cluster, Message::SetRefusing { on });
        }
    }
}
