//! The name service's replication: every cluster keeps a full replica (`kernel::names`);
//! this daemon announces the changes made here and applies the others'.

use kernel::names::{self, Change};

use crate::outbox::Outbox;
use crate::protocol::{heapless_str, Message};

#[derive(Default)]
pub struct NameReplica;

impl NameReplica {
    /// A change made here: every other replica hears of it.
    pub fn publish(&mut self, change: Change, out: &mut Outbox) {
        let (pid, name, link) = match change {
            Change::Link { name, pid } => (pid, name, true),
            Change::Unlink { name, pid } => (pid, name, false),
        };
        let Ok(name) = heapless_str::Name::try_from(name.as_str()) else {
            return; // longer than the name service allows: never linked
        };
        out.broadcast(if link {
            Message::NameLink { pid, name }
        } else {
            Message::NameUnlink { pid, name }
        });
    }

    /// A change made on another cluster.
    pub fn apply(&mut self, change: Change) {
        names::apply(change);
    }
}
