//! Portal calls: bulk transfers (≤ 1 MiB) that the receiver must allow (see `crate::portal`).

use abi::{Errno, Pid, PortId, PORTAL_MAX_TRANSFER};
use uarea::{BlockReason, EndpointFlags, EndpointKind, Peer, Role};

use super::{endpoints, Call, Outcome};
use crate::envelope::{self, Mail, MailKind};
use crate::portal::{self, Outgoing};
use crate::process::{memory, Table};
use crate::requests::PortalWriter;
use crate::userdma;

fn port(arg: u64) -> Result<PortId, Errno> {
    u16::try_from(arg).map(PortId).map_err(|_| Errno::EINVAL)
}

pub fn create(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let local = port(call.args[0])?;
    endpoints::add(
        table,
        call,
        EndpointKind::Portal,
        Role::Receiver,
        local,
        Peer::None,
    )
}

pub fn open(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let local = port(call.args[0])?;
    let pid = Pid::from_arg(call.args[1]).ok_or(Errno::ESRCH)?;
    let remote = port(call.args[2])?;
    endpoints::add(
        table,
        call,
        EndpointKind::Portal,
        Role::Sender,
        local,
        Peer::Process { pid, port: remote },
    )
}

/// `portal_allow(pd, pid, port)`: admit the next transfer from `(pid, port)`.
pub fn allow(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let receiver = endpoints::find(table, call, EndpointKind::Portal, Role::Receiver)?;
    let sender = Pid::from_arg(call.args[1]).ok_or(Errno::ESRCH)?;
    let sender_port = port(call.args[2])?;
    if let Some(endpoint) = call
        .process(table)?
        .uarea
        .endpoints
        .iter_mut()
        .find(|e| e.descriptor == receiver.descriptor)
    {
        endpoint.flags = endpoint.flags.union(EndpointFlags::ALLOWED);
        endpoint.peer = Peer::Process {
            pid: sender,
            port: sender_port,
        };
    }
    let mut data = call.pid.raw().to_le_bytes().to_vec();
    data.extend_from_slice(&receiver.local_port.0.to_le_bytes());
    envelope::send(
        table,
        Mail {
            pid: sender,
            port: sender_port,
            kind: MailKind::PortalAllow,
            data,
            from: None,
        },
    )?;
    Ok(0)
}

/// `portal_write(pd, buf, len)`. To a process here: a kernel copy handed over at once. To
/// one on another cluster: the writer's pages are held and named to the DMA engine, and the
/// thread blocks until the engine's completion (`crate::userdma`).
pub fn write(table: &mut Table, call: &Call) -> Outcome {
    write_checked(table, call).unwrap_or_else(|errno| Outcome::Return(Err(errno)))
}

fn write_checked(table: &mut Table, call: &Call) -> Result<Outcome, Errno> {
    let target = endpoints::send_target(table, call, EndpointKind::Portal, PORTAL_MAX_TRANSFER)?;
    let from = (call.pid, target.endpoint.local_port);
    let descriptor = target.endpoint.descriptor;
    let local = table.processes.contains_key(&target.to.0);
    let data = match local {
        true => Some(call.read_user(table, target.buffer, target.len)?),
        false => None,
    };
    if !portal::take_allowance(call.pid, from.1, target.to) {
        // Not allowed yet: wait for the receiver's allowance, then re-issue.
        return Ok(Outcome::Block(BlockReason::PortalWrite { descriptor }));
    }
    if let Some(data) = data {
        portal::deliver_data(table, call.pid, target.to, data);
        return Ok(Outcome::Return(Ok(target.len)));
    }
    let held = call
        .process(table)
        .and_then(|process| userdma::hold_buffer(process, target.buffer, target.len));
    let source = held.inspect_err(|_| portal::return_allowance(call.pid, from.1, target.to))?;
    portal::queue_outgoing(Outgoing {
        from,
        to: target.to,
        writer: PortalWriter::Thread(call.tid),
        source,
    });
    Ok(Outcome::Block(BlockReason::PortalDma { descriptor }))
}

pub fn read(table: &mut Table, call: &Call) -> Outcome {
    let receiver = match endpoints::find(table, call, EndpointKind::Portal, Role::Receiver) {
        Ok(receiver) => receiver,
        Err(errno) => return Outcome::Return(Err(errno)),
    };
    let (buffer, len) = (call.args[1], call.args[2] as usize);
    if len > PORTAL_MAX_TRANSFER {
        return Outcome::Return(Err(Errno::EMSGSIZE));
    }
    let Some((from, data)) = portal::take_ready(call.pid, receiver.local_port) else {
        if !receiver.flags.contains(EndpointFlags::ALLOWED) {
            return Outcome::Return(Err(Errno::EINVAL)); // nobody allowed: it would wait forever
        }
        return Outcome::Block(BlockReason::PortalRead {
            descriptor: receiver.descriptor,
        });
    };
    if data.len() > len {
        portal::unread(call.pid, receiver.local_port, (from, data));
        return Outcome::Return(Err(Errno::EMSGSIZE));
    }
    let Ok(process) = call.process(table) else {
        return Outcome::Return(Err(Errno::ESRCH));
    };
    if let Err(errno) =
        memory::copy_to_user(&mut process.space, &process.uarea.memory, buffer, &data)
    {
        portal::unread(call.pid, receiver.local_port, (from, data));
        return Outcome::Return(Err(errno));
    }
    if let Some(endpoint) = process
        .uarea
        .endpoints
        .iter_mut()
        .find(|e| e.descriptor == receiver.descriptor)
    {
        endpoint.flags =
            EndpointFlags::from_bits(endpoint.flags.bits() & !EndpointFlags::ALLOWED.bits())
                .unwrap_or(EndpointFlags::EMPTY);
        endpoint.rx_seq += 1;
    }
    Outcome::Return(Ok(data.len()))
}

pub fn close(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    endpoints::close(table, call, EndpointKind::Portal).map(|_| 0)
}
