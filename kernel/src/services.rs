//! The routed user services wired together: which service a local envelope goes to, and what
//! each forgets when a process ends or takes along when it leaves.
//!
//! This is the one module that knows all of `ipc`, `sync`, `portal`, `names`, `acceptance`
//! and the process tree's news; each of them knows only the envelope and the process table,
//! and the process table knows none of them (it tells them of an exit through the hook
//! installed here).
//!
//! News for a frozen process (a child's exit, the answer to one of its messages) changes its
//! UArea after the migration snapshot may have been taken. So it is applied *and* kept here;
//! if the process leaves, what was kept follows it (and is applied again there — both kinds
//! are idempotent), and once the process runs here again it is forgotten.

use abi::{Errno, Pid};
use alloc::vec::Vec;
use spin::Mutex;

use crate::envelope::{self, Mail, MailKind};
use crate::process::{self, Table};
use crate::requests::ChildNews;
use crate::{acceptance, ipc, names, portal, sync};

/// News kept for frozen processes (see the module doc).
static HELD: Mutex<Vec<Mail>> = Mutex::new(Vec::new());

fn with_held<R>(f: impl FnOnce(&mut Vec<Mail>) -> R) -> R {
    hal::cpu::without_interrupts(|| f(&mut HELD.lock()))
}

/// Installs the hooks (once, at boot).
pub fn init() {
    envelope::set_local_delivery(deliver);
    process::set_exit_hook(forget);
}

/// Hands a local envelope to its service.
fn deliver(table: &mut Table, mail: Mail) -> Result<(), Errno> {
    let refused = |taken: bool| taken.then_some(()).ok_or(Errno::ESRCH);
    match mail.kind {
        MailKind::Mailbox | MailKind::MailboxMoved => ipc::deliver(table, mail),
        MailKind::SyncSignal => refused(sync::deliver_signal(table, mail)),
        MailKind::PortalAllow | MailKind::PortalClaim => refused(portal::deliver(table, mail)),
        MailKind::ChildNews | MailKind::MailAnswer => deliver_news(table, mail),
    }
}

/// A child's news or a message's answer: applied, and kept while the process is frozen.
fn deliver_news(table: &mut Table, mail: Mail) -> Result<(), Errno> {
    let frozen = table
        .processes
        .get(&mail.pid)
        .filter(|p| p.uarea.exit.exit_code.is_none())
        .ok_or(Errno::ESRCH)?
        .uarea
        .is_frozen();
    if frozen {
        let kept = with_held(|held| {
            held.try_reserve(1)
                .map(|()| held.push(mail.clone()))
                .is_ok()
        });
        if !kept {
            return Err(Errno::EAGAIN);
        }
    }
    match mail.kind {
        MailKind::ChildNews => {
            let (child, news) = ChildNews::decode(&mail.data).ok_or(Errno::EINVAL)?;
            table.child_news(mail.pid, child, news);
        }
        _ => {
            acceptance::on_answer(table, &mail);
        }
    }
    Ok(())
}

/// A process ended: every service drops what it kept for it.
fn forget(pid: Pid) {
    ipc::discard(pid, None);
    sync::discard(pid);
    portal::discard(pid);
    names::forget(pid);
    with_held(|held| held.retain(|m| m.pid != pid));
}

/// Everything queued here for `pid` that must follow it to another cluster: its mail, its
/// portal allowances (as mail), and — handed to the daemons' portal relay — the portal
/// transfers it has not read.
pub fn drain(pid: Pid) -> Vec<Mail> {
    let mut mails = ipc::drain(pid);
    mails.extend(sync::drain(pid));
    let (allowances, unread) = portal::drain(pid);
    mails.extend(allowances);
    for transfer in unread {
        portal::queue_outgoing(transfer);
    }
    mails.extend(with_held(|held| {
        let (leaving, staying) = core::mem::take(held)
            .into_iter()
            .partition(|m| m.pid == pid);
        *held = staying;
        leaving
    }));
    mails
}

/// One pass of the daemons' loop: writers awaiting answers time out, and news kept for
/// processes that run here again (their migration failed) is forgotten.
pub fn tick(table: &mut Table) {
    acceptance::sweep(table);
    with_held(|held| {
        held.retain(|m| {
            table
                .processes
                .get(&m.pid)
                .is_some_and(|p| p.uarea.is_frozen())
        })
    });
}
