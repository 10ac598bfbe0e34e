//! User mailboxes: messages between processes, addressed by `(pid, port)`, wherever the
//! processes live.
//!
//! A message travels as one [`Mail`] envelope (see `envelope`), so a sender never needs to
//! know where its peer runs. Messages that
//! arrive while a process is frozen for migration wait in its queue here and are forwarded
//! with it, so every message is delivered exactly once at the process's current home.
//!
//! The queues are kernel-local (not in the UArea): what moves is the process's endpoints, and
//! the messages follow them over the NoC.

use abi::{Pid, PortId};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use spin::Mutex;
use uarea::{BlockReason, EndpointKind, Role};

use crate::envelope::{Mail, MailKind};
use crate::process::Table;

/// Messages kept per inbox before further ones are dropped and counted.
pub const QUEUE_LIMIT: usize = 1024;

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
pub fn deliver(table: &mut Table, mail: Mail) -> bool {
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

/// Removes every queued message of `pid` (it is leaving this cluster).
pub fn drain(pid: Pid) -> Vec<Mail> {
    with_store(|store| {
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
    })
}

/// Messages dropped on this cluster so far.
pub fn dropped() -> u64 {
    with_store(|s| s.dropped)
}
