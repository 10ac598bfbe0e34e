//! Daemon messages waiting for room on the NoC.
//!
//! Every daemon sends through one outbox, so messages to one cluster leave in the order they
//! were sent and a full ring delays them instead of dropping them. The queueing — one queue
//! per destination, and the bound past which the daemons take no new user requests — is
//! `multikernel_proto::outqueue`, tested on the host.

use abi::ClusterId;
use kernel::noc::{mailbox, NocError};
use multikernel_proto::message::Message;
use multikernel_proto::outqueue::{OutQueue, Sent};

use crate::chip;
use crate::ports::DAEMON_PORT;

#[derive(Default)]
pub struct Outbox {
    queue: OutQueue<Message>,
}

impl Outbox {
    /// Queues `message` for `to`'s daemons and sends what the NoC takes now.
    pub fn send(&mut self, to: ClusterId, message: Message) {
        self.queue.push(to, message);
        self.flush();
    }

    /// Sends `message` to every other cluster.
    pub fn broadcast(&mut self, message: Message) {
        for cluster in chip::others() {
            self.queue.push(cluster, message.clone());
        }
        self.flush();
    }

    /// True if nothing waits for room on the NoC.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True while so much waits that the daemons take no new user requests.
    pub fn is_congested(&self) -> bool {
        self.queue.is_congested()
    }

    /// Sends queued messages until each destination's ring pushes back. A message for a
    /// cluster that cannot be reached (gone, or out of range) is dropped: nobody is left to
    /// read it.
    pub fn flush(&mut self) {
        self.queue.flush(|to, message| {
            match mailbox::open(to, DAEMON_PORT)
                .and_then(|tx| mailbox::write(&tx, &message.encode()))
            {
                Ok(()) => Sent::Yes,
                Err(NocError::WouldBlock) => Sent::Full,
                Err(_) => Sent::Unreachable,
            }
        });
    }
}
