//! Sync calls: barriers among processes (see `crate::sync`).

use abi::{Errno, Pid, PortId, SyncMode, SYNC_MAX_MEMBERS};
use alloc::vec::Vec;
use uarea::{BlockReason, Endpoint, EndpointKind, Peer, Role};

use super::{endpoints, Call, Outcome};
use crate::envelope::{self, Mail, MailKind};
use crate::process::{memory, Table};
use crate::sync;

/// Reads and checks the member list; returns the mode and members.
fn members(table: &mut Table, call: &Call) -> Result<(SyncMode, Vec<Pid>), Errno> {
    let [list, count, mode, ..] = call.args;
    let mode = SyncMode::try_from(mode)?;
    let count = count as usize;
    if !(2..=SYNC_MAX_MEMBERS).contains(&count) {
        return Err(Errno::EINVAL);
    }
    let mut bytes = alloc::vec![0u8; count * 4];
    let process = call.process(table)?;
    memory::copy_from_user(&mut process.space, &process.uarea.memory, list, &mut bytes)?;
    let mut members = Vec::with_capacity(count);
    for chunk in bytes.as_chunks::<4>().0 {
        let pid = Pid::from_raw(u32::from_le_bytes(*chunk)).ok_or(Errno::EINVAL)?;
        if members.contains(&pid) {
            return Err(Errno::EINVAL);
        }
        members.push(pid);
    }
    Ok((mode, members))
}

fn add(table: &mut Table, call: &Call, role: Role) -> Result<usize, Errno> {
    let (mode, members) = members(table, call)?;
    let signals = sync::signallers(mode, &members).contains(&call.pid);
    let allowed = match role {
        Role::Sender => signals,
        Role::Receiver => members.contains(&call.pid) && !signals,
    };
    if !allowed {
        return Err(Errno::EINVAL);
    }
    let id = sync::group_id(mode, &members);
    endpoints::add(
        table,
        call,
        EndpointKind::Sync,
        role,
        PortId(id),
        Peer::Group { mode, members },
    )
}

pub fn create(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    add(table, call, Role::Receiver)
}

pub fn open(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    add(table, call, Role::Sender)
}

fn endpoint(table: &mut Table, call: &Call, role: Role) -> Result<Endpoint, Errno> {
    endpoints::find(table, call, EndpointKind::Sync, role)
}

pub fn wait(table: &mut Table, call: &Call) -> Outcome {
    match endpoint(table, call, Role::Receiver) {
        Err(errno) => Outcome::Return(Err(errno)),
        Ok(sync_point) => {
            if sync::try_consume(call.pid, sync_point.local_port.0, &sync_point.peer) {
                Outcome::Return(Ok(0))
            } else {
                Outcome::Block(BlockReason::SyncWait {
                    descriptor: sync_point.descriptor,
                })
            }
        }
    }
}

/// Sends one signal to every receiver of the group. `EAGAIN` if the NoC is full (nothing
/// sent to the receivers still missing; call again).
pub fn signal(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let sync_point = endpoint(table, call, Role::Sender)?;
    let Peer::Group { mode, members } = &sync_point.peer else {
        return Err(Errno::EBADF);
    };
    for receiver in sync::receivers(*mode, members, call.pid) {
        let mail = Mail {
            pid: receiver,
            port: sync_point.local_port,
            kind: MailKind::SyncSignal,
            data: call.pid.raw().to_le_bytes().to_vec(),
            from: Some(call.pid),
        };
        envelope::send(table, mail)?;
    }
    Ok(0)
}

pub fn close(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    endpoints::close(table, call, EndpointKind::Sync).map(|_| 0)
}
