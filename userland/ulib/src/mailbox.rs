//! Mailboxes: small messages (up to [`MAX`] bytes) between processes, addressed by
//! `(pid, port)` wherever the processes run — the kernel finds the peer, even after it
//! migrated.

use abi::{Errno, Pid, Syscall, MAILBOX_PAYLOAD_SIZE};
use alloc::vec::Vec;

use crate::raw::call;

/// Largest message.
pub const MAX: usize = MAILBOX_PAYLOAD_SIZE;

/// The receiving end: this process's inbox on one port.
pub struct Inbox {
    md: u64,
}

impl Inbox {
    /// Opens this process's inbox on `port`.
    pub fn create(port: u16) -> Result<Inbox, Errno> {
        call(Syscall::MailboxCreate, &[port as u64]).map(|md| Inbox { md: md as u64 })
    }

    /// Waits for the next message and returns it.
    pub fn recv(&self) -> Result<Vec<u8>, Errno> {
        let mut buffer = [0u8; MAX];
        // SAFETY: the buffer is ours and MAX bytes long.
        let len = unsafe {
            crate::raw::syscall6(
                Syscall::MailboxRead,
                [self.md, buffer.as_mut_ptr() as u64, MAX as u64, 0, 0, 0],
            )
        }?;
        Ok(buffer[..len].to_vec())
    }

    /// Waits for the next message and returns it with its sender (`None`: the kernel).
    pub fn recv_from(&self) -> Result<(Vec<u8>, Option<Pid>), Errno> {
        let mut buffer = [0u8; MAX];
        let mut from = 0u32;
        // SAFETY: the buffer is ours and MAX bytes long; `from` is ours and 4 bytes.
        let len = unsafe {
            crate::raw::syscall6(
                Syscall::MailboxReadFrom,
                [
                    self.md,
                    buffer.as_mut_ptr() as u64,
                    MAX as u64,
                    &mut from as *mut u32 as u64,
                    0,
                    0,
                ],
            )
        }?;
        Ok((buffer[..len].to_vec(), Pid::from_raw(from)))
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let _ = call(Syscall::MailboxClose, &[self.md]);
    }
}

/// The sending end: a peer's inbox.
pub struct Outbox {
    md: u64,
}

impl Outbox {
    /// Addresses `(pid, port)`.
    pub fn open(pid: Pid, port: u16) -> Result<Outbox, Errno> {
        call(Syscall::MailboxOpen, &[pid.raw() as u64, port as u64])
            .map(|md| Outbox { md: md as u64 })
    }

    /// Sends one message (1..=MAX bytes); `Ok` once it is queued on the receiver's inbox
    /// (`EAGAIN` inbox full, `ECONNREFUSED` no inbox, `ESRCH` no such process, `EHOSTDOWN`
    /// its cluster went down, `ETIMEDOUT` no answer: see `docs/abi.md`).
    pub fn send(&self, data: &[u8]) -> Result<(), Errno> {
        call(
            Syscall::MailboxWrite,
            &[self.md, data.as_ptr() as u64, data.len() as u64],
        )
        .map(|_| ())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let _ = call(Syscall::MailboxClose, &[self.md]);
    }
}
