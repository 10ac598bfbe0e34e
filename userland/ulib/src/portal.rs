//! Portals: bulk transfers of up to 1 MiB between processes, wherever they run. The receiver
//! must allow a sender before its data flows; one allowance admits one transfer.

use abi::{Errno, Pid, Syscall, PORTAL_MAX_TRANSFER};

use crate::raw::call;

/// Largest transfer.
pub const MAX: usize = PORTAL_MAX_TRANSFER;

/// The receiving end: this process's portal on one port.
pub struct Receiver {
    pd: u64,
}

impl Receiver {
    /// Opens this process's receiving portal on `port`.
    pub fn create(port: u16) -> Result<Receiver, Errno> {
        call(Syscall::PortalCreate, &[port as u64]).map(|pd| Receiver { pd: pd as u64 })
    }

    /// Admits the next transfer from `(pid, port)`.
    pub fn allow(&self, pid: Pid, port: u16) -> Result<(), Errno> {
        call(
            Syscall::PortalAllow,
            &[self.pd, pid.raw() as u64, port as u64],
        )
        .map(|_| ())
    }

    /// Waits for the allowed transfer and copies it into `buffer`; returns its length.
    pub fn read(&self, buffer: &mut [u8]) -> Result<usize, Errno> {
        // SAFETY: the buffer is ours, writable, and its length is passed.
        unsafe {
            crate::raw::syscall6(
                Syscall::PortalRead,
                [
                    self.pd,
                    buffer.as_mut_ptr() as u64,
                    buffer.len() as u64,
                    0,
                    0,
                    0,
                ],
            )
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = call(Syscall::PortalClose, &[self.pd]);
    }
}

/// The sending end: from this process's `port` to a peer's portal.
pub struct Sender {
    pd: u64,
}

impl Sender {
    /// Sends from `(own pid, port)` to `(pid, remote)`.
    pub fn open(port: u16, pid: Pid, remote: u16) -> Result<Sender, Errno> {
        call(
            Syscall::PortalOpen,
            &[port as u64, pid.raw() as u64, remote as u64],
        )
        .map(|pd| Sender { pd: pd as u64 })
    }

    /// Sends `data` (≤ 1 MiB), waiting until the receiver allows it.
    pub fn write(&self, data: &[u8]) -> Result<usize, Errno> {
        call(
            Syscall::PortalWrite,
            &[self.pd, data.as_ptr() as u64, data.len() as u64],
        )
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = call(Syscall::PortalClose, &[self.pd]);
    }
}
