//! Sync points between processes (Nanvix's `sync`, with pids as members): ONE_TO_ALL — the
//! first member signals, every other waits; ALL_TO_ONE — every other member signals, the first
//! waits.
//!
//! A signal is a small message routed like user mail (so it finds a member that migrated),
//! counted per sender at the receiver. Signals that arrive before the receiver opened its sync
//! point are kept, and rounds never mix because each wait consumes exactly one signal per
//! expected sender. A group is named by a 16-bit id derived from its mode and members, which
//! every member computes alike.

use abi::{Pid, PortId, SyncMode};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use spin::Mutex;
use uarea::{BlockReason, EndpointKind, Peer};

use crate::envelope::{Mail, MailKind};
use crate::process::Table;

/// Signals counted per (receiver, group id), per sender.
static SIGNALS: Mutex<BTreeMap<(Pid, u16), BTreeMap<Pid, u32>>> = Mutex::new(BTreeMap::new());
/// Pending signals kept per sender and group before further ones are dropped.
const SIGNAL_LIMIT: u32 = 1 << 16;

/// The id of a group: FNV-1a over the mode and the members, folded to 16 bits.
pub fn group_id(mode: SyncMode, members: &[Pid]) -> u16 {
    let mut hash: u32 = 0x811C_9DC5;
    let mut feed = |byte: u8| {
        hash ^= byte as u32;
        hash = hash.wrapping_mul(0x0100_0193);
    };
    feed(mode as u8);
    for member in members {
        for byte in member.raw().to_le_bytes() {
            feed(byte);
        }
    }
    (hash ^ (hash >> 16)) as u16
}

/// Who signals and who waits in a group.
pub fn signallers(mode: SyncMode, members: &[Pid]) -> Vec<Pid> {
    match mode {
        SyncMode::OneToAll => members[..1].to_vec(),
        SyncMode::AllToOne => members[1..].to_vec(),
    }
}

/// Who receives a signal from `from`.
pub fn receivers(mode: SyncMode, members: &[Pid], from: Pid) -> Vec<Pid> {
    match mode {
        SyncMode::OneToAll => members.iter().copied().filter(|m| *m != from).collect(),
        SyncMode::AllToOne => members[..1].to_vec(),
    }
}

/// A sync signal arrived for a process on this cluster.
pub fn deliver_signal(table: &mut Table, mail: Mail) -> bool {
    let Some(from) = mail
        .data
        .get(..4)
        .and_then(|b| Pid::from_raw(u32::from_le_bytes(b.try_into().ok()?)))
    else {
        return false;
    };
    let kept = hal::cpu::without_interrupts(|| {
        let mut signals = SIGNALS.lock();
        let count = signals
            .entry((mail.pid, mail.port.0))
            .or_default()
            .entry(from)
            .or_default();
        if *count >= SIGNAL_LIMIT {
            return false;
        }
        *count += 1;
        true
    });
    if kept {
        wake_waiters(table, mail.pid, mail.port.0);
    }
    kept
}

fn wake_waiters(table: &mut Table, pid: Pid, id: u16) {
    table.wake_endpoint_waiters(pid, EndpointKind::Sync, PortId(id), |reason| match reason {
        BlockReason::SyncWait { descriptor } => Some(*descriptor),
        _ => None,
    });
}

/// Consumes one signal from every expected sender of the group, if all are there.
pub fn try_consume(pid: Pid, id: u16, peer: &Peer) -> bool {
    let Peer::Group { mode, members } = peer else {
        return false;
    };
    let expected = signallers(*mode, members);
    hal::cpu::without_interrupts(|| {
        let mut signals = SIGNALS.lock();
        let Some(counts) = signals.get_mut(&(pid, id)) else {
            return false;
        };
        if !expected
            .iter()
            .all(|s| counts.get(s).is_some_and(|c| *c > 0))
        {
            return false;
        }
        for sender in &expected {
            if let Some(count) = counts.get_mut(sender) {
                *count -= 1;
            }
        }
        true
    })
}

/// Removes `pid`'s pending signals (it is leaving this cluster), as messages to re-send.
pub fn drain(pid: Pid) -> Vec<Mail> {
    hal::cpu::without_interrupts(|| {
        let mut signals = SIGNALS.lock();
        let keys: Vec<(Pid, u16)> = signals.keys().filter(|(p, _)| *p == pid).copied().collect();
        let mut mails = Vec::new();
        for key in keys {
            for (from, count) in signals.remove(&key).unwrap_or_default() {
                for _ in 0..count {
                    mails.push(Mail {
                        pid,
                        port: PortId(key.1),
                        kind: MailKind::SyncSignal,
                        data: from.raw().to_le_bytes().to_vec(),
                        from: Some(from),
                    });
                }
            }
        }
        mails
    })
}

/// Forgets a process's signals (it ended).
pub fn discard(pid: Pid) {
    hal::cpu::without_interrupts(|| SIGNALS.lock().retain(|(p, _), _| *p != pid));
}
