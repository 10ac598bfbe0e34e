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
pub const QUEUE_LIMIT: usize = abi::limits::INBOX_MESSAGES;

/// What one process has queued on all its inboxes.
#[derive(Default, Clone, Copy)]
struct Usage {
    messages: usize,
    bytes: usize,
}

/// One inbox's queue with its key, as `remove_queues` hands it back.
type KeyedQueue = ((Pid, u16), VecDeque<Vec<u8>>);

struct Store {
    queues: BTreeMap<(Pid, u16), VecDeque<Vec<u8>>>,
    /// Queued per process (the quota of `abi::limits`), and on the whole cluster.
    usage: BTreeMap<Pid, Usage>,
    total_messages: usize,
    /// Messages dropped: no such inbox, or a queue or quota full.
    dropped: u64,
}

static STORE: Mutex<Store> = Mutex::new(Store {
    queues: BTreeMap::new(),
    usage: BTreeMap::new(),
    total_messages: 0,
    dropped: 0,
});

impl Store {
    /// Queues `data` for `(pid, port)` if the inbox, the process and the cluster all have
    /// room; false otherwise. Allocation failures count as no room.
    fn push(&mut self, pid: Pid, port: u16, data: Vec<u8>) -> bool {
        let usage = self.usage.get(&pid).copied().unwrap_or_default();
        if usage.messages >= abi::limits::QUEUED_MESSAGES_PER_PROCESS
            || usage.bytes + data.len() > abi::limits::QUEUED_BYTES_PER_PROCESS
            || self.total_messages >= abi::limits::QUEUED_MESSAGES_PER_CLUSTER
        {
            return false;
        }
        let queue = self.queues.entry((pid, port)).or_default();
        if queue.len() >= QUEUE_LIMIT || queue.try_reserve(1).is_err() {
            return false;
        }
        let len = data.len();
        queue.push_back(data);
        let usage = self.usage.entry(pid).or_default();
        usage.messages += 1;
        usage.bytes += len;
        self.total_messages += 1;
        true
    }

    /// Accounts for `messages` messages of `bytes` bytes of `pid` leaving the queues.
    fn release(&mut self, pid: Pid, messages: usize, bytes: usize) {
        if let Some(usage) = self.usage.get_mut(&pid) {
            usage.messages = usage.messages.saturating_sub(messages);
            usage.bytes = usage.bytes.saturating_sub(bytes);
            if usage.messages == 0 {
                self.usage.remove(&pid);
            }
        }
        self.total_messages = self.total_messages.saturating_sub(messages);
    }

    /// Removes whole queues matching `which`, releasing their accounting.
    fn remove_queues(&mut self, which: impl Fn(Pid, u16) -> bool) -> Vec<KeyedQueue> {
        let keys: Vec<(Pid, u16)> = self
            .queues
            .keys()
            .filter(|(p, q)| which(*p, *q))
            .copied()
            .collect();
        let mut removed = Vec::new();
        for key in keys {
            if let Some(queue) = self.queues.remove(&key) {
                let bytes = queue.iter().map(Vec::len).sum();
                self.release(key.0, queue.len(), bytes);
                removed.push((key, queue));
            }
        }
        removed
    }
}

/// Messages queued for `pid` on all its inboxes here (tests and the quota).
pub fn queued(pid: Pid) -> usize {
    with_store(|s| s.usage.get(&pid).map_or(0, |u| u.messages))
}

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
        let queued = store.push(mail.pid, mail.port.0, mail.data);
        if !queued {
            store.dropped += 1;
        }
        queued
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
        let data = store
            .queues
            .get_mut(&(pid, port.0))
            .and_then(|q| q.pop_front())?;
        store.release(pid, 1, data.len());
        Some(data)
    })
}

/// Drops an inbox's queue (the inbox was closed, or its process ended).
pub fn discard(pid: Pid, port: Option<PortId>) {
    with_store(|store| {
        store.remove_queues(|p, q| p == pid && port.is_none_or(|port| port.0 == q));
    });
}

/// Removes every queued message of `pid` (it is leaving this cluster).
pub fn drain(pid: Pid) -> Vec<Mail> {
    with_store(|store| {
        let mut mails = Vec::new();
        for (key, queue) in store.remove_queues(|p, _| p == pid) {
            mails.extend(queue.into_iter().map(|data| Mail {
                pid,
                port: PortId(key.1),
                kind: MailKind::Mailbox,
                data,
            }));
        }
        mails
    })
}

/// Messages dropped on this cluster so far.
pub fn dropped() -> u64 {
    with_store(|s| s.dropped)
}
