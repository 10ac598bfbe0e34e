//! Daemon messages waiting for room on the NoC.
//!
//! Every daemon sends through one outbox, so messages to one cluster leave in the order they
//! were sent and a full ring delays them instead of dropping them.

use abi::ClusterId;
use alloc::collections::VecDeque;
use kernel::noc::{mailbox, NocError};

use crate::chip;
use crate::ports::DAEMON_PORT;
use multikernel_proto::message::Message;

#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<(ClusterId, Message)>,
}

impl Outbox {
    /// Queues `message` for `to`'s daemons and sends what the NoC takes now.
    pub fn send(&mut self, to: ClusterId, message: Message) {
        self.queue.push_back((to, message));
        self.flush();
    }

    /// Sends `message` to every other cluster.
    pub fn broadcast(&mut self, message: Message) {
        for cluster in chip::others() {
            self.queue.push_back((cluster, message.clone()));
        }
        self.flush();
    }

    /// True if nothing waits for room on the NoC.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sends queued messages until the NoC pushes back. A message for a cluster that cannot
    /// be reached (gone, or out of range) is dropped: nobody is left to read it.
    pub fn flush(&mut self) {
        while let Some((to, message)) = self.queue.front() {
            let sent = mailbox::open(*to, DAEMON_PORT)
                .and_then(|tx| mailbox::write(&tx, &message.encode()));
            if sent == Err(NocError::WouldBlock) {
                break;
            }
            self.queue.pop_front();
        }
    }
}
