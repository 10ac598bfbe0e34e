//! User mailboxes: messages between processes, addressed by `(pid, port)`, wherever the
//! processes live.
//!
//! A message travels as one [`Mail`] envelope (see `envelope`), so a sender never needs to
//! know where its peer runs, and carries its sender's pid, which the receiver can read. A
//! message is *accepted* only when it is queued here, on its receiver's inbox; a message that
//! cannot be queued (no such process, no inbox, the inbox or a quota full) is refused with
//! the reason, which reaches the sender (`acceptance`). So nothing accepted is dropped.
//! Messages that arrive while a process is frozen for migration wait in its queue here and
//! are forwarded with it, already accepted: the destination queues them whatever its quotas.
//!
//! The queues are kernel-local (not in the UArea): what moves is the process's endpoints, and
//! the messages follow them over the NoC.

use abi::{Errno, Pid, PortId};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use spin::Mutex;
use uarea::{BlockReason, EndpointKind, Role};

use crate::envelope::{Mail, MailKind};
use crate::process::Table;

/// Messages kept per inbox before further ones are refused.
pub const QUEUE_LIMIT: usize = abi::limits::INBOX_MESSAGES;

/// One queued message: its sender (if a process) and its payload.
pub type Queued = (Option<Pid>, Vec<u8>);

/// What one process has queued on all its inboxes.
#[derive(Default, Clone, Copy)]
struct Usage {
    messages: usize,
    bytes: usize,
}

/// One inbox's queue with its key, as `remove_queues` hands it back.
type KeyedQueue = ((Pid, u16), VecDeque<Queued>);

struct Store {
    queues: BTreeMap<(Pid, u16), VecDeque<Queued>>,
    /// Queued per process (the quota of `abi::limits`), and on the whole cluster.
    usage: BTreeMap<Pid, Usage>,
    total_messages: usize,
    /// Messages refused: no such inbox, or a queue or quota full.
    refused: u64,
}

static STORE: Mutex<Store> = Mutex::new(Store {
    queues: BTreeMap::new(),
    usage: BTreeMap::new(),
    total_messages: 0,
    refused: 0,
});

impl Store {
    /// Queues a message for `(pid, port)` if the inbox, the process, the cluster and the
    /// kernel heap's budget all have room (`EAGAIN` otherwise); `forced` (a message accepted
    /// elsewhere, following its receiver) skips the quotas. Allocation failures count as no
    /// room.
    fn push(&mut self, pid: Pid, port: u16, message: Queued, forced: bool) -> Result<(), Errno> {
        let len = message.1.len();
        let usage = self.usage.get(&pid).copied().unwrap_or_default();
        let over_quota = usage.messages >= abi::limits::QUEUED_MESSAGES_PER_PROCESS
            || usage.bytes + len > abi::limits::QUEUED_BYTES_PER_PROCESS
            || self.total_messages >= abi::limits::QUEUED_MESSAGES_PER_CLUSTER
            || !crate::budget::admits(len + 64);
        if over_quota && !forced {
            return Err(Errno::EAGAIN);
        }
        let queue = self.queues.entry((pid, port)).or_default();
        if (queue.len() >= QUEUE_LIMIT && !forced) || queue.try_reserve(1).is_err() {
            return Err(Errno::EAGAIN);
        }
        queue.push_back(message);
        let usage = self.usage.entry(pid).or_default();
        usage.messages += 1;
        usage.bytes += len;
        self.total_messages += 1;
        Ok(())
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
                let bytes = queue.iter().map(|(_, data)| data.len()).sum();
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

/// Whether `pid` is a live process here with an inbox on `port` (`ESRCH`, `ECONNREFUSED`).
fn has_inbox(table: &Table, pid: Pid, port: PortId) -> Result<(), Errno> {
    let process = table
        .processes
        .get(&pid)
        .filter(|p| p.uarea.exit.exit_code.is_none())
        .ok_or(Errno::ESRCH)?;
    let listening = process.uarea.endpoints.iter().any(|e| {
        e.kind == EndpointKind::Mailbox && e.role == Role::Receiver && e.local_port == port
    });
    listening.then_some(()).ok_or(Errno::ECONNREFUSED)
}

/// Queues a message for a process on this cluster and wakes its readers, or says why not:
/// `ESRCH` no such live process, `ECONNREFUSED` no inbox on that port, `EAGAIN` the inbox
/// or a quota is full. A [`MailKind::MailboxMoved`] message is queued whatever the quotas.
pub fn deliver(table: &mut Table, mail: Mail) -> Result<(), Errno> {
    let forced = mail.kind == MailKind::MailboxMoved;
    let queued = has_inbox(table, mail.pid, mail.port).and_then(|()| {
        with_store(|store| store.push(mail.pid, mail.port.0, (mail.from, mail.data), forced))
    });
    match queued {
        Ok(()) => wake_readers(table, mail.pid, mail.port),
        Err(_) => with_store(|s| s.refused += 1),
    }
    queued
}

fn wake_readers(table: &mut Table, pid: Pid, port: PortId) {
    table.wake_endpoint_waiters(pid, EndpointKind::Mailbox, port, |reason| match reason {
        BlockReason::MailboxRead { descriptor } => Some(*descriptor),
        _ => None,
    });
}

/// Takes the oldest message of `(pid, port)`, with its sender.
pub fn take(pid: Pid, port: PortId) -> Option<Queued> {
    with_store(|store| {
        let message = store
            .queues
            .get_mut(&(pid, port.0))
            .and_then(|q| q.pop_front())?;
        store.release(pid, 1, message.1.len());
        Some(message)
    })
}

/// Drops an inbox's queue (the inbox was closed, or its process ended).
pub fn discard(pid: Pid, port: Option<PortId>) {
    with_store(|store| {
        store.remove_queues(|p, q| p == pid && port.is_none_or(|port| port.0 == q));
    });
}

/// Removes every queued message of `pid` (it is leaving this cluster), as envelopes that
/// the destination queues as already accepted.
pub fn drain(pid: Pid) -> Vec<Mail> {
    with_store(|store| {
        let mut mails = Vec::new();
        for (key, queue) in store.remove_queues(|p, _| p == pid) {
            mails.extend(queue.into_iter().map(|(from, data)| Mail {
                pid,
                port: PortId(key.1),
                kind: MailKind::MailboxMoved,
                data,
                from,
            }));
        }
        mails
    })
}

/// Messages refused on this cluster so far (each refusal was reported to its sender).
pub fn dropped() -> u64 {
    with_store(|s| s.refused)
}
