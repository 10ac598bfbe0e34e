//! The sender's side of mailbox flow control: a `mailbox_write` to another cluster returns
//! only once the receiver's kernel has queued the message, or with the reason it did not.
//!
//! The message leaves with its sender's pid; whoever ends its journey — the receiver's
//! kernel, or a cluster that finds no route — answers with a [`MailKind::MailAnswer`]
//! envelope to the sender, routed like mail, so it follows a sender that migrated. The
//! writing thread waits blocked in `MailboxWrite` with its return value already set to
//! `ETIMEDOUT` (the *awaiting* mark, [`AWAITING`]): the answer overwrites it; a freeze
//! keeps such a thread blocked instead of rewinding it (its message has left: re-sending
//! would deliver it twice), so it carries on waiting on the destination; and with no answer
//! within [`ANSWER_TIMEOUT_NS`] it simply wakes with `ETIMEDOUT` ("not known to be
//! delivered"). At most one write per (sender, receiver, port) awaits an answer at a time,
//! so an answer names its thread by the pair alone. A write whose message went straight to
//! a cluster that then left ends with `EHOSTDOWN`.

use abi::{ClusterId, Errno, Pid, PortId, SyscallResult, Tid};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use spin::Mutex;
use uarea::{BlockReason, Peer, Thread, ThreadState};

use crate::envelope::{Mail, MailKind};
use crate::process::Table;

/// The awaiting mark: the saved `rax` of a thread whose message awaits its answer.
pub const AWAITING: u64 = SyscallResult::encode(Err(Errno::ETIMEDOUT)).raw() as u64;
/// How long a write waits for its answer (long: a loaded machine and a migration on the
/// way can each take seconds).
pub const ANSWER_TIMEOUT_NS: u64 = 30_000_000_000;

/// A write awaiting its answer, as this cluster knows it.
#[derive(Clone, Copy)]
struct Awaiting {
    deadline_ns: u64,
    /// The cluster the message was handed to, if this cluster sent it.
    first_hop: Option<ClusterId>,
}

static AWAITED: Mutex<BTreeMap<(Pid, Tid), Awaiting>> = Mutex::new(BTreeMap::new());

fn with<R>(f: impl FnOnce(&mut BTreeMap<(Pid, Tid), Awaiting>) -> R) -> R {
    hal::cpu::without_interrupts(|| f(&mut AWAITED.lock()))
}

/// True if `thread` waits for the answer to a message it sent.
pub fn awaits_answer(thread: &Thread) -> bool {
    matches!(
        thread.state,
        ThreadState::Blocked(BlockReason::MailboxWrite { .. })
    ) && thread.context.rax == AWAITING
}

/// The `(pid, port)` a thread awaiting an answer wrote to.
fn awaited_peer(table: &Table, pid: Pid, thread: &Thread) -> Option<(Pid, PortId)> {
    let ThreadState::Blocked(BlockReason::MailboxWrite { descriptor }) = thread.state else {
        return None;
    };
    let process = table.processes.get(&pid)?;
    match process.uarea.endpoint(descriptor)?.peer {
        Peer::Process { pid, port } => Some((pid, port)),
        _ => None,
    }
}

/// The thread of `pid` awaiting the answer from `peer`, if any.
pub fn awaiting_thread(table: &Table, pid: Pid, peer: (Pid, PortId)) -> Option<Tid> {
    let process = table.processes.get(&pid)?;
    process
        .uarea
        .threads
        .iter()
        .find(|t| awaits_answer(t) && awaited_peer(table, pid, t) == Some(peer))
        .map(|t| t.tid)
}

/// `tid` of `pid` sent a message towards `first_hop` and now awaits its answer.
pub fn sent(pid: Pid, tid: Tid, first_hop: ClusterId) {
    let deadline_ns = hal::clock::now_ns().saturating_add(ANSWER_TIMEOUT_NS);
    with(|a| {
        a.insert(
            (pid, tid),
            Awaiting {
                deadline_ns,
                first_hop: Some(first_hop),
            },
        )
    });
}

/// The answer to `mail` (a mailbox message from a process) with the verdict on it.
pub fn answer(mail: &Mail, verdict: Result<(), Errno>) -> Option<Mail> {
    let sender = mail.from?;
    if mail.kind != MailKind::Mailbox {
        return None;
    }
    let result = match verdict {
        Ok(()) => mail.data.len() as i32,
        Err(errno) => errno.as_return() as i32,
    };
    let mut data = Vec::new();
    data.try_reserve_exact(8).ok()?;
    data.extend_from_slice(&mail.pid.raw().to_le_bytes());
    data.extend_from_slice(&result.to_le_bytes());
    Some(Mail {
        pid: sender,
        port: mail.port,
        kind: MailKind::MailAnswer,
        data,
        from: None,
    })
}

/// An answer arrived for a sender here: its awaiting thread returns it. False if no thread
/// awaits it (a duplicate, or an answer that came after the timeout).
pub fn on_answer(table: &mut Table, mail: &Mail) -> bool {
    let Ok(bytes) = <[u8; 8]>::try_from(mail.data.as_slice()) else {
        return false;
    };
    let receiver = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let result = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let Some(receiver) = Pid::from_raw(receiver) else {
        return false;
    };
    let Some(tid) = awaiting_thread(table, mail.pid, (receiver, mail.port)) else {
        return false;
    };
    let result = if result >= 0 {
        Ok(result as usize)
    } else {
        Err(Errno::from_code(-i64::from(result)).unwrap_or(Errno::EHOSTUNREACH))
    };
    with(|a| a.remove(&(mail.pid, tid)));
    table.complete_blocked(mail.pid, tid, result);
    true
}

/// One pass over the writers awaiting answers: those that arrived (by migration) get a
/// deadline, those past it wake with `ETIMEDOUT`. A frozen process's threads wait: its
/// state was captured and they will wait wherever it runs next.
pub fn sweep(table: &mut Table) {
    let now = hal::clock::now_ns();
    let awaiting: Vec<(Pid, Tid)> = table
        .processes
        .iter()
        .filter(|(_, p)| !p.uarea.is_frozen())
        .flat_map(|(pid, p)| {
            p.uarea
                .threads
                .iter()
                .filter(|t| awaits_answer(t))
                .map(move |t| (*pid, t.tid))
        })
        .collect();
    let expired: Vec<(Pid, Tid)> = with(|a| {
        a.retain(|key, _| awaiting.contains(key));
        for key in &awaiting {
            a.entry(*key).or_insert(Awaiting {
                deadline_ns: now.saturating_add(ANSWER_TIMEOUT_NS),
                first_hop: None,
            });
        }
        a.iter()
            .filter(|(_, w)| w.deadline_ns <= now)
            .map(|(key, _)| *key)
            .collect()
    });
    for (pid, tid) in expired {
        with(|a| a.remove(&(pid, tid)));
        table.complete_blocked(pid, tid, Err(Errno::ETIMEDOUT));
    }
}

/// `cluster` left the machine: a write whose message this cluster handed straight to it
/// will hear nothing, and ends with `EHOSTDOWN`.
pub fn cluster_gone(table: &mut Table, cluster: ClusterId) {
    let lost: Vec<(Pid, Tid)> = with(|a| {
        let lost: Vec<(Pid, Tid)> = a
            .iter()
            .filter(|(_, w)| w.first_hop == Some(cluster))
            .map(|(key, _)| *key)
            .collect();
        for key in &lost {
            a.remove(key);
        }
        lost
    });
    for (pid, tid) in lost {
        let frozen = table
            .processes
            .get(&pid)
            .is_some_and(|p| p.uarea.is_frozen());
        if !frozen {
            table.complete_blocked(pid, tid, Err(Errno::EHOSTDOWN));
        }
    }
}
