//! User mailboxes: messages between processes, addressed by `(pid, port)`, wherever the
//! processes live.
//!
//! A message travels as one 120-byte NoC mailbox message on the kernel's user-mail port: an
//! 8-byte header (destination pid and port, length) and up to 112 bytes of data. A sender
//! never needs to know where its peer runs: a message for a process on this cluster is
//! delivered directly; otherwise it goes to the process's birth cluster, whose daemon knows
//! where it lives now and forwards it, as does a cluster the process has left. Messages that
//! arrive while a process is frozen for migration wait in its queue here and are forwarded
//! with it, so every message is delivered exactly once at the process's current home.
//!
//! The queues are kernel-local (not in the UArea): what moves is the process's endpoints, and
//! the messages follow them over the NoC.

use abi::{Errno, Pid, PortId, MAILBOX_PAYLOAD_SIZE};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use spin::Mutex;
use uarea::{BlockReason, EndpointKind, Role};

use crate::process::Table;

/// NoC port every cluster receives user mail on.
pub const USER_MAIL_PORT: hal::noc::PortId = hal::noc::PortId(0xFE00);
/// Bytes of the kernel's header in front of the user data.
pub const HEADER_LEN: usize = 8;
/// Messages kept per inbox before further ones are dropped and counted.
pub const QUEUE_LIMIT: usize = 1024;

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
}

/// One user message in transit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub pid: Pid,
    pub port: PortId,
    pub kind: MailKind,
    pub data: Vec<u8>,
}

impl Mail {
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

    /// Parses a NoC payload; `None` if malformed.
    pub fn decode(bytes: &[u8; 120]) -> Option<Mail> {
        let pid = Pid::from_raw(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))?;
        let port = PortId(u16::from_le_bytes([bytes[4], bytes[5]]));
        let len = bytes[6] as usize;
        let kind = match bytes[7] {
            0 => MailKind::Mailbox,
            1 => MailKind::SyncSignal,
            2 => MailKind::PortalAllow,
            3 => MailKind::PortalClaim,
            _ => return None,
        };
        if len == 0 || len > MAILBOX_PAYLOAD_SIZE {
            return None;
        }
        Some(Mail {
            kind,
            pid,
            port,
            data: bytes[HEADER_LEN..HEADER_LEN + len].to_vec(),
        })
    }
}

struct Store {
    queues: BTreeMap<(Pid, u16), VecDeque<Vec<u8>>>,
    /// Messages dropped: no such inbox, or its queue full.
    dropped: u64,
}

static STORE: Mutex<Store> = Mutex::new(Store {
    queues: BTreeMap::new(),
    dropped: 0,
});

fn with_store<R>(f: impl FnOnce(&mut Store) -> R) -> R {
    hal::cpu::without_interrupts(|| f(&mut STORE.lock()))
}

/// True if `pid` (here) has an inbox on `port`.
fn has_inbox(table: &Table, pid: Pid, port: PortId) -> bool {
    table.processes.get(&pid).is_some_and(|p| {
        p.uarea.endpoints.iter().any(|e| {
            e.kind == EndpointKind::Mailbox && e.role == Role::Receiver && e.local_port == port
        })
    })
}

/// Delivers a message to a process on this cluster and wakes its readers. Returns false (and
/// counts a drop) if it has no inbox on that port or the queue is full.
pub fn deliver_local(table: &mut Table, mail: Mail) -> bool {
    match mail.kind {
        MailKind::SyncSignal => return crate::sync::deliver_signal(table, mail),
        MailKind::PortalAllow | MailKind::PortalClaim => {
            return crate::portal::deliver(table, mail)
        }
        MailKind::Mailbox => {}
    }
    if !has_inbox(table, mail.pid, mail.port) {
        with_store(|s| s.dropped += 1);
        return false;
    }
    let queued = with_store(|store| {
        let queue = store.queues.entry((mail.pid, mail.port.0)).or_default();
        if queue.len() >= QUEUE_LIMIT {
            store.dropped += 1;
            return false;
        }
        queue.push_back(mail.data);
        true
    });
    if queued {
        wake_readers(table, mail.pid, mail.port);
    }
    queued
}

fn wake_readers(table: &mut Table, pid: Pid, port: PortId) {
    table.wake_endpoint_waiters(pid, EndpointKind::Mailbox, port, |reason| match reason {
        BlockReason::MailboxRead { descriptor } => Some(*descriptor),
        _ => None,
    });
}

/// Takes the oldest message of `(pid, port)`.
pub fn take(pid: Pid, port: PortId) -> Option<Vec<u8>> {
    with_store(|store| {
        store
            .queues
            .get_mut(&(pid, port.0))
            .and_then(|q| q.pop_front())
    })
}

/// Drops an inbox's queue (the inbox was closed, or its process ended).
pub fn discard(pid: Pid, port: Option<PortId>) {
    with_store(|store| {
        store
            .queues
            .retain(|(p, q), _| !(*p == pid && port.is_none_or(|port| port.0 == *q)))
    });
}

/// Removes every queued message and sync signal of `pid` (it is leaving this cluster).
pub fn drain(pid: Pid) -> Vec<Mail> {
    let mut signals = crate::sync::drain(pid);
    let mut mails = with_store(|store| {
        let keys: Vec<(Pid, u16)> = store
            .queues
            .keys()
            .filter(|(p, _)| *p == pid)
            .copied()
            .collect();
        let mut mails = Vec::new();
        for key in keys {
            if let Some(queue) = store.queues.remove(&key) {
                mails.extend(queue.into_iter().map(|data| Mail {
                    pid,
                    port: PortId(key.1),
                    kind: MailKind::Mailbox,
                    data,
                }));
            }
        }
        mails
    });
    mails.append(&mut signals);
    mails
}

/// Messages dropped on this cluster so far.
pub fn dropped() -> u64 {
    with_store(|s| s.dropped)
}

/// Sends a message: directly if the process is here, else through its birth cluster.
pub fn send(table: &mut Table, mail: Mail) -> Result<(), Errno> {
    if table.processes.contains_key(&mail.pid) {
        deliver_local(table, mail);
        return Ok(());
    }
    let home = mail.pid.birth_cluster();
    if home == table.cluster || !hal::noc::present() {
        // Born here but not here: gone, or the daemon forwards it (it knows where).
        return send_to(table.cluster, &mail);
    }
    send_to(home, &mail)
}

/// Puts a message on the NoC for `cluster`.
pub fn send_to(cluster: abi::ClusterId, mail: &Mail) -> Result<(), Errno> {
    if !hal::noc::present() {
        return Err(Errno::EHOSTUNREACH);
    }
    let to = crate::noc::mailbox::open(hal::noc::ClusterId(cluster.0), USER_MAIL_PORT)
        .map_err(|_| Errno::EHOSTUNREACH)?;
    match crate::noc::mailbox::write(&to, &mail.encode()) {
        Ok(()) => Ok(()),
        Err(crate::noc::NocError::WouldBlock) => Err(Errno::EAGAIN),
        Err(_) => Err(Errno::EHOSTUNREACH),
    }
}
