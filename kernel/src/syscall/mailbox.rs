//! Mailbox calls: fixed-size messages between processes, addressed by `(pid, port)`.

use abi::{Errno, Pid, PortId, MAILBOX_PAYLOAD_SIZE};
use uarea::{BlockReason, Endpoint, EndpointKind, Peer, Perms, Role};

use super::{endpoints, Call, Outcome};
use crate::envelope::{self, Mail, Sent};
use crate::process::{memory, Table};
use crate::{acceptance, ipc};

fn port(arg: u64) -> Result<PortId, Errno> {
    u16::try_from(arg).map(PortId).map_err(|_| Errno::EINVAL)
}

pub fn create(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let local = port(call.args[0])?;
    endpoints::add(
        table,
        call,
        EndpointKind::Mailbox,
        Role::Receiver,
        local,
        Peer::None,
    )
}

pub fn open(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let pid = Pid::from_arg(call.args[0]).ok_or(Errno::ESRCH)?;
    let remote = port(call.args[1])?;
    endpoints::add(
        table,
        call,
        EndpointKind::Mailbox,
        Role::Sender,
        PortId(0),
        Peer::Process { pid, port: remote },
    )
}

fn endpoint(table: &mut Table, call: &Call, role: Role) -> Result<Endpoint, Errno> {
    endpoints::find(table, call, EndpointKind::Mailbox, role)
}

pub fn read(table: &mut Table, call: &Call) -> Outcome {
    receive(table, call, None)
}

/// `mailbox_read` that also stores the sender's pid (0: not a process) at `args[3]`.
pub fn read_from(table: &mut Table, call: &Call) -> Outcome {
    receive(table, call, Some(call.args[3]))
}

fn receive(table: &mut Table, call: &Call, from_at: Option<u64>) -> Outcome {
    let inbox = match endpoint(table, call, Role::Receiver) {
        Ok(inbox) => inbox,
        Err(errno) => return Outcome::Return(Err(errno)),
    };
    let (buffer, len) = (call.args[1], call.args[2] as usize);
    if len < MAILBOX_PAYLOAD_SIZE {
        return Outcome::Return(Err(Errno::EINVAL));
    }
    let Ok(process) = call.process(table) else {
        return Outcome::Return(Err(Errno::ESRCH));
    };
    // Check the buffers before taking a message, so a bad buffer loses nothing.
    let mut probe = [0u8; 1];
    if let Err(errno) = memory::copy_from_user(
        &mut process.space,
        &process.uarea.memory,
        buffer,
        &mut probe,
    )
    .and_then(|_| memory::copy_to_user(&mut process.space, &process.uarea.memory, buffer, &probe))
    {
        return Outcome::Return(Err(errno));
    }
    if let Some(at) = from_at {
        let writable = memory::check_range(&process.uarea.memory, at, 4, Perms::W).and_then(|_| {
            memory::copy_to_user(&mut process.space, &process.uarea.memory, at, &[0; 4])
        });
        if let Err(errno) = writable {
            return Outcome::Return(Err(errno));
        }
    }
    match ipc::take(call.pid, inbox.local_port) {
        Some((from, data)) => {
            let mut result =
                memory::copy_to_user(&mut process.space, &process.uarea.memory, buffer, &data);
            if let Some(at) = from_at {
                let sender = from.map_or(0, |p| p.raw()).to_le_bytes();
                result = result.and_then(|_| {
                    memory::copy_to_user(&mut process.space, &process.uarea.memory, at, &sender)
                });
            }
            if let Some(endpoint) = process
                .uarea
                .endpoints
                .iter_mut()
                .find(|e| e.descriptor == inbox.descriptor)
            {
                endpoint.rx_seq += 1;
            }
            Outcome::Return(result.map(|_| data.len()))
        }
        None => Outcome::Block(BlockReason::MailboxRead {
            descriptor: inbox.descriptor,
        }),
    }
}

/// Sends one message; returns once it is queued on the receiver's inbox, or with why not
/// (`docs/abi.md`): at once for a receiver here, after the receiver's kernel answered for
/// one elsewhere (see `acceptance`).
pub fn write(table: &mut Table, call: &Call) -> Outcome {
    let endpoints::Send {
        endpoint: outbox,
        to: (pid, port),
        data,
    } = match endpoints::send(table, call, EndpointKind::Mailbox, MAILBOX_PAYLOAD_SIZE) {
        Ok(send) => send,
        Err(errno) => return Outcome::Return(Err(errno)),
    };
    let blocked = BlockReason::MailboxWrite {
        descriptor: outbox.descriptor,
    };
    if acceptance::awaiting_thread(table, call.pid, (pid, port)).is_some() {
        // One message to (pid, port) awaits its answer: this one goes after it.
        return Outcome::Block(blocked);
    }
    let len = data.len();
    let sent = envelope::send_traced(
        table,
        Mail {
            pid,
            port,
            kind: envelope::MailKind::Mailbox,
            data,
            from: Some(call.pid),
        },
    );
    let outcome = match sent {
        Ok(Sent::Local(verdict)) => Outcome::Return(verdict.map(|()| len)),
        Ok(Sent::Noc(first_hop)) => {
            acceptance::sent(call.pid, call.tid, first_hop);
            Outcome::BlockReturning(blocked, Err(Errno::ETIMEDOUT))
        }
        // The NoC is full: wait for room, then re-issue (nothing was sent).
        Err(Errno::EAGAIN) => return Outcome::Block(blocked),
        Err(errno) => return Outcome::Return(Err(errno)),
    };
    if let Some(endpoint) = call.process(table).ok().and_then(|p| {
        p.uarea
            .endpoints
            .iter_mut()
            .find(|e| e.descriptor == outbox.descriptor)
    }) {
        endpoint.tx_seq += 1;
    }
    outcome
}

pub fn close(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let endpoint = endpoints::close(table, call, EndpointKind::Mailbox)?;
    if endpoint.role == Role::Receiver {
        ipc::discard(call.pid, Some(endpoint.local_port));
    }
    Ok(0)
}
