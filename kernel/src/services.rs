//! The routed user services wired together: which service a local envelope goes to, and what
//! each forgets when a process ends or takes along when it leaves.
//!
//! This is the one module that knows all of `ipc`, `sync`, `portal` and `names`; each of them
//! knows only the envelope and the process table, and the process table knows none of them
//! (it tells them of an exit through the hook installed here).

use abi::Pid;
use alloc::vec::Vec;

use crate::envelope::{self, Mail, MailKind};
use crate::process::{self, Table};
use crate::{ipc, names, portal, sync};

/// Installs the hooks (once, at boot).
pub fn init() {
    envelope::set_local_delivery(deliver);
    process::set_exit_hook(forget);
}

/// Hands a local envelope to its service.
fn deliver(table: &mut Table, mail: Mail) -> bool {
    match mail.kind {
        MailKind::Mailbox => ipc::deliver(table, mail),
        MailKind::SyncSignal => sync::deliver_signal(table, mail),
        MailKind::PortalAllow | MailKind::PortalClaim => portal::deliver(table, mail),
    }
}

/// A process ended: every service drops what it kept for it.
fn forget(pid: Pid) {
    ipc::discard(pid, None);
    sync::discard(pid);
    portal::discard(pid);
    names::forget(pid);
}

/// Everything queued here for `pid` that must follow it to another cluster.
pub fn drain(pid: Pid) -> Vec<Mail> {
    let mut mails = ipc::drain(pid);
    mails.extend(sync::drain(pid));
    mails
}
