//! The migration daemon, both ends of every migration, stepped from the scheduler loop so
//! user threads keep running while a migration is in flight.
//!
//! The protocol — presumed-abort two-phase commit — is `multikernel_proto::migrate`, sans-IO
//! and checked on the host by a deterministic simulation; these modules drive its machines
//! against the process table, the portals and the other daemons.

mod caller;
pub mod destination;
mod incoming;
mod outgoing;
mod page_client;
mod page_server;
mod precopy;
pub mod source;
pub mod stats;
mod transfer;

pub use destination::MigrationDestination;
pub use page_client::PAGES_LOST_EXIT;
pub use source::MigrationSource;

use crate::forwarding::MailForwarder;
use crate::outbox::Outbox;
use crate::registry::LocationRegistry;

/// The other daemons a migration acts through.
pub struct Ctx<'a> {
    pub out: &'a mut Outbox,
    pub forwarder: &'a mut MailForwarder,
    pub registry: &'a mut LocationRegistry,
}
