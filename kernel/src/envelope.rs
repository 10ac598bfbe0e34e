//! The envelope of every routed user service: one small message addressed to a process by
//! pid, wherever it lives.
//!
//! Mailbox messages, sync signals and portal control all travel as one [`Mail`]: delivered
//! directly to a process on this cluster, otherwise sent to the process's birth cluster, whose
//! daemons know where it lives now and forward it. The services (`ipc`, `sync`, `portal`)
//! build and consume envelopes; which of them a local envelope goes to is decided above them,
//! by the hook `services` installs, so none of them depends on another.

use abi::{Errno, Pid, PortId, MAILBOX_PAYLOAD_SIZE};
use alloc::vec::Vec;
use spin::Mutex;

use crate::process::Table;

/// NoC port every cluster receives user mail on.
pub const USER_MAIL_PORT: hal::noc::PortId = hal::noc::PortId(0xFE00);
/// Bytes of the kernel's header in front of the user data.
pub const HEADER_LEN: usize = 8;

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MailKind {
    /// A mailbox message for the inbox on `port`.
    Mailbox = 0,
    /// A sync signal for the sync point whose id is `port`; the data is the sender's pid.
    SyncSignal = 1,
    /// A portal allowance for the sending portal on `port`; the data is the receiver's
    /// pid and port.
    PortalAllow = 2,
    /// A sender's request to deliver a transfer to the portal on `port`; the data is the
    /// sender's pid and port and cluster.
    PortalClaim = 3,
    /// News of a child for its parent (`pid`): it exited, or moved (see `process::children`).
    ChildNews = 4,
    /// The answer to a mailbox message for its sender (`pid`): queued on the inbox `port`
    /// of the receiver, or refused (see `ipc::Answer`).
    MailAnswer = 5,
    /// A mailbox message already accepted, following its receiver to another cluster: it is
    /// queued there whatever the quotas (it was counted against them when accepted).
    MailboxMoved = 6,
}

/// One user message in transit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub pid: Pid,
    pub port: PortId,
    pub kind: MailKind,
    pub data: Vec<u8>,
    /// The process that sent it (mailbox messages: what `mailbox_read_from` reports, and
    /// where the answer goes). It travels beside the payload, in the NoC message's tag.
    pub from: Option<Pid>,
}

impl Mail {
    /// The NoC tag that carries [`Mail::from`].
    pub fn tag(&self) -> u32 {
        self.from.map_or(0, |p| p.raw())
    }

    /// The NoC payload.
    pub fn encode(&self) -> [u8; 120] {
        let mut out = [0u8; 120];
        out[0..4].copy_from_slice(&self.pid.raw().to_le_bytes());
        out[4..6].copy_from_slice(&self.port.0.to_le_bytes());
        out[6] = self.data.len() as u8;
        out[7] = self.kind as u8;
        out[HEADER_LEN..HEADER_LEN + self.data.len()].copy_from_slice(&self.data);
        out
    }

    /// Parses a NoC payload and its tag; `None` if malformed.
    pub fn decode(bytes: &[u8; 120], tag: u32) -> Option<Mail> {
        let pid = Pid::from_raw(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))?;
        let port = PortId(u16::from_le_bytes([bytes[4], bytes[5]]));
        let len = bytes[6] as usize;
        let kind = match bytes[7] {
            0 => MailKind::Mailbox,
            1 => MailKind::SyncSignal,
            2 => MailKind::PortalAllow,
            3 => MailKind::PortalClaim,
            4 => MailKind::ChildNews,
            5 => MailKind::MailAnswer,
            6 => MailKind::MailboxMoved,
            _ => return None,
        };
        if len == 0 || len > MAILBOX_PAYLOAD_SIZE {
            return None;
        }
        let from = match tag {
            0 => None,
            raw => Some(Pid::from_raw(raw)?),
        };
        Some(Mail {
            kind,
            pid,
            port,
            data: bytes[HEADER_LEN..HEADER_LEN + len].to_vec(),
            from,
        })
    }
}

/// Hands a local envelope to the service of its kind; the error says why it was refused
/// (`ESRCH` no such process, `ECONNREFUSED` no inbox, `EAGAIN` a queue or quota full).
pub type LocalDelivery = fn(&mut Table, Mail) -> Result<(), Errno>;

static LOCAL_DELIVERY: Mutex<Option<LocalDelivery>> = Mutex::new(None);

/// Installs the local delivery (once, at boot).
pub fn set_local_delivery(deliver: LocalDelivery) {
    hal::cpu::without_interrupts(|| *LOCAL_DELIVERY.lock() = Some(deliver));
}

/// Delivers an envelope to a process on this cluster; the error if nobody took it.
pub fn deliver_local(table: &mut Table, mail: Mail) -> Result<(), Errno> {
    let deliver = *LOCAL_DELIVERY.lock();
    deliver.map_or(Err(Errno::ESRCH), |deliver| deliver(table, mail))
}

/// How a message left: handed to a local process, or put on the NoC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The process is here; the local delivery's verdict.
    Local(Result<(), Errno>),
    /// On its way to this cluster (the process's home or, with no NoC, here).
    Noc(abi::ClusterId),
}

/// Sends a message: directly if the process is here, else through its birth cluster.
pub fn send(table: &mut Table, mail: Mail) -> Result<(), Errno> {
    send_traced(table, mail).map(|_| ())
}

/// [`send`], saying where the message went. A birth cluster the router counts as gone is
/// `EHOSTDOWN` (nothing was sent).
pub fn send_traced(table: &mut Table, mail: Mail) -> Result<Sent, Errno> {
    if table.processes.contains_key(&mail.pid) {
        return Ok(Sent::Local(deliver_local(table, mail)));
    }
    if !hal::noc::present() {
        return Err(Errno::ESRCH); // one cluster: not here is nowhere
    }
    let home = mail.pid.birth_cluster();
    if home == table.cluster {
        // Born here but not here: gone, or the daemon forwards it (it knows where).
        return send_to(table.cluster, &mail).map(|_| Sent::Noc(table.cluster));
    }
    if !is_live(home) {
        return Err(Errno::EHOSTDOWN);
    }
    send_to(home, &mail).map(|_| Sent::Noc(home))
}

/// True while the router counts `cluster` as connected (always, without a NoC).
pub fn is_live(cluster: abi::ClusterId) -> bool {
    !hal::noc::present() || (cluster.0 < 64 && hal::noc::live_clusters() & (1u64 << cluster.0) != 0)
}

/// Puts a message on the NoC for `cluster`.
pub fn send_to(cluster: abi::ClusterId, mail: &Mail) -> Result<(), Errno> {
    if !hal::noc::present() {
        return Err(Errno::EHOSTUNREACH);
    }
    let to = crate::noc::mailbox::open(cluster, USER_MAIL_PORT).map_err(|_| Errno::EHOSTUNREACH)?;
    match crate::noc::mailbox::write_tagged(&to, &mail.encode(), mail.tag()) {
        Ok(()) => Ok(()),
        Err(crate::noc::NocError::WouldBlock) => Err(Errno::EAGAIN),
        Err(_) => Err(Errno::EHOSTUNREACH),
    }
}
