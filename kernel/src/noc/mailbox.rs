//! Mailboxes: fixed-size (120-byte) asynchronous messages to a (cluster, port).
//!
//! `create(port)` claims a local port and returns the receive end; `open(cluster, port)` names
//! a remote one. `write` is asynchronous (the message is in the TX ring or the backlog when it
//! returns); `try_read` takes the oldest message or says `WouldBlock`.

use alloc::collections::{BTreeMap, VecDeque};
use hal::noc::{ClusterId, Delivery, Header, PortId};
use noc_proto::wire::MAILBOX_PAYLOAD;

use super::{check_cluster, pump, with_state, Event, NocError, PORT_QUEUE_LIMIT};

/// One mailbox message's payload.
pub type Payload = [u8; MAILBOX_PAYLOAD];

/// The receive end of a local mailbox port (from [`create`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Mailbox {
    port: PortId,
}

impl Mailbox {
    pub fn port(&self) -> PortId {
        self.port
    }
}

/// The send end: a remote mailbox (from [`open`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxTx {
    pub remote: ClusterId,
    pub port: PortId,
}

/// A received message.
#[derive(Clone, Copy, Debug)]
pub struct Message {
    pub source: ClusterId,
    pub payload: Payload,
    /// The sender's 4-byte tag (the wire header's `arg`; 0 from [`write`]).
    pub tag: u32,
}

#[derive(Default)]
struct Queue {
    created: bool,
    messages: VecDeque<Message>,
}

pub(crate) struct Mailboxes {
    ports: BTreeMap<u16, Queue>,
    pub(crate) received: u64,
}

impl Mailboxes {
    pub(crate) const fn new() -> Self {
        Mailboxes {
            ports: BTreeMap::new(),
            received: 0,
        }
    }

    pub(crate) fn deliver(
        &mut self,
        header: &Header,
        payload: &[u8],
        events: &mut alloc::vec::Vec<Event>,
    ) -> Delivery {
        let Ok(payload) = Payload::try_from(payload) else {
            return Delivery::Accept; // decode already checked the size; never trust twice
        };
        let queue = self.ports.entry(header.port.0).or_default();
        if queue.messages.len() >= PORT_QUEUE_LIMIT {
            return Delivery::Defer;
        }
        queue.messages.push_back(Message {
            source: header.src,
            payload,
            tag: header.arg,
        });
        self.received += 1;
        events.push(Event::Mailbox(header.port));
        Delivery::Accept
    }
}

/// Claims local mailbox `port`. Messages that arrived for it before are kept.
pub fn create(port: PortId) -> Result<Mailbox, NocError> {
    if !hal::noc::present() {
        return Err(NocError::NotPresent);
    }
    with_state(|s| {
        let queue = s.mailboxes.ports.entry(port.0).or_default();
        if queue.created {
            return Err(NocError::PortInUse);
        }
        queue.created = true;
        Ok(Mailbox { port })
    })
}

/// Releases a local port; messages still queued are discarded.
pub fn unlink(mailbox: Mailbox) {
    with_state(|s| s.mailboxes.ports.remove(&mailbox.port.0));
}

/// Names mailbox `port` on cluster `remote` (which may be this cluster).
pub fn open(remote: ClusterId, port: PortId) -> Result<MailboxTx, NocError> {
    check_cluster(remote)?;
    Ok(MailboxTx { remote, port })
}

/// Sends one message. `WouldBlock` when the TX ring and backlog are full.
pub fn write(to: &MailboxTx, payload: &Payload) -> Result<(), NocError> {
    write_tagged(to, payload, 0)
}

/// Sends one message with a 4-byte tag beside the payload (it travels in the wire header's
/// `arg`, which mailbox messages leave free): the user-mail envelope carries its sender's
/// pid there, so the 120-byte payload keeps room for a full user message.
pub fn write_tagged(to: &MailboxTx, payload: &Payload, tag: u32) -> Result<(), NocError> {
    let mut header = Header::mailbox(ClusterId(0), to.remote, to.port, 0);
    header.arg = tag;
    let result = with_state(|s| s.send_or_queue(header, payload, false));
    if result == Err(NocError::WouldBlock) {
        pump();
    }
    result
}

/// Takes the oldest message, or `WouldBlock` if there is none.
pub fn try_read(mailbox: &Mailbox) -> Result<Message, NocError> {
    pump();
    with_state(|s| {
        s.mailboxes
            .ports
            .get_mut(&mailbox.port.0)
            .and_then(|q| q.messages.pop_front())
            .ok_or(NocError::WouldBlock)
    })
}

/// Messages waiting on a local port.
pub fn pending(mailbox: &Mailbox) -> usize {
    with_state(|s| {
        s.mailboxes
            .ports
            .get(&mailbox.port.0)
            .map_or(0, |q| q.messages.len())
    })
}
