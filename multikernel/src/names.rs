//! The name service's replication: every cluster keeps a full replica (`kernel::names`);
//! this daemon announces the changes made here and applies the others'.

use kernel::names::{self, Change};

use crate::outbox::Outbox;
use multikernel_proto::message::{heapless_str, Message};

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

    /// Another cluster linked `name` to `pid`.
    pub fn apply_link(&mut self, pid: abi::Pid, name: &str) {
        names::apply(Change::Link {
            name: name.into(),
            pid,
        });
    }

    /// Another cluster unlinked `name` from `pid`.
    pub fn apply_unlink(&mut self, pid: abi::Pid, name: &str) {
        names::apply(Change::Unlink {
            name: name.into(),
            pid,
        });
    }
}
