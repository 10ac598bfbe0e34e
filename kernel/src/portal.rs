//! User portals: bulk transfers of up to 1 MiB between processes, which the receiver must
//! allow first (Nanvix `portal`, with pids as endpoints).
//!
//! Control travels as small routed messages (so it finds a process wherever it lives): the
//! receiver's `allow` sends the sender an *allowance*; a sender's `write` consumes one and
//! queues the data here. A transfer to a process on this cluster is handed over at once; one
//! to another cluster is *claimed* (a routed message to the receiver), the receiving kernel
//! admits it on its user-portal NoC port when that port is free (granting a kernel receive
//! buffer), and the DMA engine copies the writer's own held pages into it (`crate::userdma`)
//! — one transfer in flight per sending cluster. The reader's `portal_read` copies the
//! buffer into its memory.

use abi::{Pid, PortId};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use spin::Mutex;
use uarea::{BlockReason, EndpointKind};

use crate::envelope::{Mail, MailKind};
use crate::process::Table;

/// The kernel NoC portal port user transfers arrive on.
pub const USER_PORTAL_PORT: hal::noc::PortId = hal::noc::PortId(0xFE01);

use crate::requests::{post, Request};
pub use crate::requests::{PortalClaim as Claim, PortalTransfer as Outgoing};
use crate::requests::{PortalSource, PortalWriter};

/// Transfers delivered to one receiving portal: (sender, data), oldest first.
type Delivered = VecDeque<(Pid, Vec<u8>)>;

#[derive(Default)]
struct State {
    /// (sender, its port) → allowances received: the receivers that allowed it.
    allowances: BTreeMap<(Pid, u16), VecDeque<(Pid, PortId)>>,
    /// (receiver, its port) → transfers delivered and not yet read.
    ready: BTreeMap<(Pid, u16), Delivered>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    hal::cpu::without_interrupts(|| f(STATE.lock().get_or_insert_with(State::default)))
}

fn pid_at(data: &[u8], at: usize) -> Option<Pid> {
    Pid::from_raw(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn port_at(data: &[u8], at: usize) -> Option<PortId> {
    Some(PortId(u16::from_le_bytes(
        data.get(at..at + 2)?.try_into().ok()?,
    )))
}

/// A portal control message arrived for a process here.
pub fn deliver(table: &mut Table, mail: Mail) -> bool {
    match mail.kind {
        MailKind::PortalAllow => {
            let (Some(receiver), Some(port)) = (pid_at(&mail.data, 0), port_at(&mail.data, 4))
            else {
                return false;
            };
            with_state(|s| {
                s.allowances
                    .entry((mail.pid, mail.port.0))
                    .or_default()
                    .push_back((receiver, port))
            });
            wake(table, mail.pid, mail.port, |r| match r {
                BlockReason::PortalWrite { descriptor } => Some(*descriptor),
                _ => None,
            });
            true
        }
        MailKind::PortalClaim => {
            let transfer = mail
                .data
                .get(8..12)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes);
            let (Some(sender), Some(sport), Some(cluster), Some(transfer)) = (
                pid_at(&mail.data, 0),
                port_at(&mail.data, 4),
                port_at(&mail.data, 6).map(|raw| abi::ClusterId(raw.0)),
                transfer,
            ) else {
                return false;
            };
            let claim = Claim {
                cluster,
                from: (sender, sport),
                to: (mail.pid, mail.port),
                transfer,
            };
            post(Request::PortalClaim(claim));
            true
        }
        _ => false,
    }
}

/// Restarts threads of `pid` blocked on a portal endpoint bound to `port` (either side).
fn wake(table: &mut Table, pid: Pid, port: PortId, blocked_on: fn(&BlockReason) -> Option<u32>) {
    let Some(process) = table.processes.get(&pid) else {
        return;
    };
    let descriptors: Vec<u32> = process
        .uarea
        .endpoints
        .iter()
        .filter(|e| e.kind == EndpointKind::Portal && e.local_port == port)
        .map(|e| e.descriptor)
        .collect();
    let waiting: Vec<abi::Tid> = process
        .uarea
        .threads
        .iter()
        .filter(|t| match &t.state {
            uarea::ThreadState::Blocked(reason) => {
                blocked_on(reason).is_some_and(|d| descriptors.contains(&d))
            }
            _ => false,
        })
        .map(|t| t.tid)
        .collect();
    for tid in waiting {
        table.restart_blocked(pid, tid);
    }
}

/// Takes one allowance of `(sender, port)` to send to `to`.
pub fn take_allowance(sender: Pid, port: PortId, to: (Pid, PortId)) -> bool {
    with_state(|s| {
        let Some(queue) = s.allowances.get_mut(&(sender, port.0)) else {
            return false;
        };
        match queue.iter().position(|a| *a == to) {
            Some(index) => {
                queue.remove(index);
                true
            }
            None => false,
        }
    })
}

/// Gives back an allowance taken by [`take_allowance`] (the write failed before sending).
pub fn return_allowance(sender: Pid, port: PortId, to: (Pid, PortId)) {
    with_state(|s| {
        s.allowances
            .entry((sender, port.0))
            .or_default()
            .push_front(to)
    });
}

/// Hands a transfer to a receiver on this cluster and wakes its readers.
pub fn deliver_data(table: &mut Table, from: Pid, to: (Pid, PortId), data: Vec<u8>) {
    with_state(|s| {
        s.ready
            .entry((to.0, to.1 .0))
            .or_default()
            .push_back((from, data))
    });
    wake(table, to.0, to.1, |r| match r {
        BlockReason::PortalRead { descriptor } => Some(*descriptor),
        _ => None,
    });
}

/// Puts a transfer back at the head of `(pid, port)` (the reader's buffer was too small).
pub fn unread(pid: Pid, port: PortId, item: (Pid, Vec<u8>)) {
    with_state(|s| s.ready.entry((pid, port.0)).or_default().push_front(item));
}

/// Takes the oldest transfer delivered to `(pid, port)`.
pub fn take_ready(pid: Pid, port: PortId) -> Option<(Pid, Vec<u8>)> {
    with_state(|s| s.ready.get_mut(&(pid, port.0)).and_then(|q| q.pop_front()))
}

/// Hands a transfer for another cluster to the daemons (they claim and send it).
pub fn queue_outgoing(transfer: Outgoing) {
    post(Request::PortalOut(transfer));
}

/// What of `pid`'s portal state must follow it to the cluster it is leaving for: the
/// allowances it holds as a sender, as the allowance mail that brought them (forwarded like
/// any mail), and the transfers delivered to it and not yet read, as transfers the kernel
/// sends to it again, oldest first (the daemons' portal relay). Nothing of it stays here.
pub fn drain(pid: Pid) -> (Vec<Mail>, Vec<Outgoing>) {
    with_state(|s| {
        let mut allowances = Vec::new();
        s.allowances.retain(|&(sender, port), receivers| {
            if sender != pid {
                return true;
            }
            for (receiver, receiver_port) in receivers.drain(..) {
                let mut data = receiver.raw().to_le_bytes().to_vec();
                data.extend_from_slice(&receiver_port.0.to_le_bytes());
                allowances.push(Mail {
                    pid,
                    port: PortId(port),
                    kind: MailKind::PortalAllow,
                    data,
                    from: None,
                });
            }
            false
        });
        let mut unread = Vec::new();
        s.ready.retain(|&(receiver, port), delivered| {
            if receiver != pid {
                return true;
            }
            for (sender, data) in delivered.drain(..) {
                unread.push(Outgoing {
                    // Delivered data keeps only its sender's pid, all a reader learns.
                    from: (sender, PortId(0)),
                    to: (pid, PortId(port)),
                    writer: PortalWriter::Forward { attempts: 0 },
                    source: PortalSource::Copied(data),
                });
            }
            false
        });
        (allowances, unread)
    })
}

/// Forgets a process's portal state (it ended).
pub fn discard(pid: Pid) {
    with_state(|s| {
        s.allowances.retain(|(p, _), _| *p != pid);
        s.ready.retain(|(p, _), _| *p != pid);
    });
}
