//! The per-process endpoint table (in the UArea), shared by the mailbox and sync calls:
//! descriptors are small numbers, unique in the process, kept across migration.

use abi::{Errno, PortId};
use uarea::{Endpoint, EndpointFlags, EndpointKind, Peer, Role};

use super::Call;
use crate::process::Table;

/// Adds an endpoint; returns its descriptor.
pub fn add(
    table: &mut Table,
    call: &Call,
    kind: EndpointKind,
    role: Role,
    local_port: PortId,
    peer: Peer,
) -> Result<usize, Errno> {
    let process = call.process(table)?;
    let endpoints = &mut process.uarea.endpoints;
    if role == Role::Receiver
        && endpoints
            .iter()
            .any(|e| e.kind == kind && e.role == Role::Receiver && e.local_port == local_port)
    {
        return Err(Errno::EEXIST);
    }
    if endpoints.len() >= uarea::MAX_ENDPOINTS {
        return Err(Errno::ENOSPC);
    }
    // The lowest free descriptor: always below `ENDPOINTS_PER_PROCESS`, so it can never
    // overflow however often endpoints are opened and closed.
    let descriptor = (0..uarea::validate::DESCRIPTOR_LIMIT)
        .find(|d| endpoints.iter().all(|e| e.descriptor != *d))
        .ok_or(Errno::ENOSPC)?;
    endpoints.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    endpoints.push(Endpoint {
        descriptor,
        kind,
        role,
        local_port,
        peer,
        flags: EndpointFlags::EMPTY,
        tx_seq: 0,
        rx_seq: 0,
    });
    Ok(descriptor as usize)
}

/// The endpoint named by the call's first argument, if it has this kind and role.
pub fn find(
    table: &mut Table,
    call: &Call,
    kind: EndpointKind,
    role: Role,
) -> Result<Endpoint, Errno> {
    let descriptor = u32::try_from(call.args[0]).map_err(|_| Errno::EBADF)?;
    let process = call.process(table)?;
    process
        .uarea
        .endpoint(descriptor)
        .filter(|e| e.kind == kind && e.role == role)
        .cloned()
        .ok_or(Errno::EBADF)
}

/// Removes the endpoint named by the call's first argument; returns it.
pub fn close(table: &mut Table, call: &Call, kind: EndpointKind) -> Result<Endpoint, Errno> {
    let descriptor = u32::try_from(call.args[0]).map_err(|_| Errno::EBADF)?;
    let process = call.process(table)?;
    let endpoints = &mut process.uarea.endpoints;
    let index = endpoints
        .iter()
        .position(|e| e.descriptor == descriptor && e.kind == kind)
        .ok_or(Errno::EBADF)?;
    Ok(endpoints.remove(index))
}

/// What a send call (`mailbox_write`, `portal_write`) starts with: its sending endpoint, the
/// peer it addresses, and the caller's data (`buf` = arg 1, `len` = arg 2), all checked.
pub struct Send {
    pub endpoint: Endpoint,
    pub to: (abi::Pid, PortId),
    pub data: alloc::vec::Vec<u8>,
}

/// A checked send call whose data has not been read: the user buffer `[buffer, buffer + len)`
/// is readable.
pub struct Target {
    pub endpoint: Endpoint,
    pub to: (abi::Pid, PortId),
    pub buffer: u64,
    pub len: usize,
}

/// Checks a send call: the descriptor is a sending endpoint of `kind` addressed to a process,
/// `len` is 1..=`max` (`EINVAL` / `EMSGSIZE`), and the buffer is readable (`EFAULT`).
pub fn send_target(
    table: &mut Table,
    call: &Call,
    kind: EndpointKind,
    max: usize,
) -> Result<Target, Errno> {
    let endpoint = find(table, call, kind, Role::Sender)?;
    let Peer::Process { pid, port } = endpoint.peer else {
        return Err(Errno::EBADF);
    };
    let (buffer, len) = (call.args[1], call.args[2] as usize);
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    if len > max {
        return Err(Errno::EMSGSIZE);
    }
    let process = call.process(table)?;
    crate::process::memory::check_range(
        &process.uarea.memory,
        buffer,
        len as u64,
        uarea::Perms::R,
    )?;
    Ok(Target {
        endpoint,
        to: (pid, port),
        buffer,
        len,
    })
}

/// [`send_target`], and the data copied in.
pub fn send(table: &mut Table, call: &Call, kind: EndpointKind, max: usize) -> Result<Send, Errno> {
    let target = send_target(table, call, kind, max)?;
    let data = call.read_user(table, target.buffer, target.len)?;
    Ok(Send {
        endpoint: target.endpoint,
        to: target.to,
        data,
    })
}
