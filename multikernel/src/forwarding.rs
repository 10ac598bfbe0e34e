//! User mail to processes that may have moved: deliver here, or forward one hop closer.
//!
//! A sender's kernel sends mail for a process it does not host to the process's home. The
//! home knows where it lives ([`LocationRegistry`]); a cluster a process left keeps a
//! *forwarding pointer* to where it went, so mail in flight during a move still arrives. Mail
//! that the NoC cannot take yet waits here in order, never dropped.
//!
//! The cluster where a mailbox message's journey ends answers its sender (`kernel::
//! acceptance`): queued, or refused with the reason — the receiver's kernel's verdict,
//! `ESRCH` when nobody here knows the process, `EHOSTDOWN` when the next hop left the
//! machine. Answers and a parent's news of its children travel the same way, by [`send`].
//!
//! [`send`]: MailForwarder::send

use abi::Errno;
use abi::{ClusterId, Pid};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use kernel::acceptance;
use kernel::envelope::{self as ipc, Mail};
use kernel::noc::{mailbox, NocError};
use kernel::process::with_table;
use uarea::{BlockReason, ThreadState};

use crate::chip;
use crate::registry::LocationRegistry;

pub struct MailForwarder {
    /// User mail arriving from other clusters.
    inbox: mailbox::Mailbox,
    /// Where processes that left this cluster went.
    pointers: BTreeMap<Pid, ClusterId>,
    /// Mail waiting for room on the NoC, in order.
    backlog: VecDeque<(ClusterId, Mail)>,
    /// Mail for processes nobody here knows.
    pub dropped: u64,
}

impl MailForwarder {
    pub fn new() -> Result<MailForwarder, NocError> {
        Ok(MailForwarder {
            inbox: mailbox::create(ipc::USER_MAIL_PORT)?,
            pointers: BTreeMap::new(),
            backlog: VecDeque::new(),
            dropped: 0,
        })
    }

    /// `pid` left for `cluster`: what arrives for it from now on follows it.
    pub fn leave_pointer(&mut self, pid: Pid, cluster: ClusterId) {
        self.pointers.insert(pid, cluster);
    }

    /// `pid` arrived here: no pointer is needed any more.
    pub fn clear_pointer(&mut self, pid: Pid) {
        self.pointers.remove(&pid);
    }

    /// The next cluster towards `pid`, if this cluster knows one.
    pub fn next_hop(&self, pid: Pid, registry: &LocationRegistry) -> Option<ClusterId> {
        self.pointers
            .get(&pid)
            .copied()
            .or_else(|| registry.get(pid))
    }

    /// One pass: writers blocked on a full ring retry, the backlog drains, arrivals route.
    pub fn step(&mut self, registry: &LocationRegistry) {
        restart_blocked_writers();
        while let Some((to, mail)) = self.backlog.pop_front() {
            if ipc::send_to(to, &mail).is_err() {
                self.backlog.push_front((to, mail));
                break;
            }
        }
        while let Ok(message) = mailbox::try_read(&self.inbox) {
            match Mail::decode(&message.payload, message.tag) {
                Some(mail) => self.route(mail, registry),
                None => self.dropped += 1,
            }
        }
    }

    /// Delivers `mail` here, or sends it one hop closer to its process; a mailbox message
    /// that ends here (delivered, or with nowhere to go) is answered.
    pub fn route(&mut self, mail: Mail, registry: &LocationRegistry) {
        let pid = mail.pid;
        let verdict = with_table(|table| {
            table
                .processes
                .contains_key(&pid)
                .then(|| ipc::deliver_local(table, mail.clone()))
        });
        let verdict = match verdict {
            Some(verdict) => verdict,
            None => match self.next_hop(pid, registry) {
                Some(cluster) if cluster != chip::here() && chip::alive(cluster) => {
                    return self.forward(cluster, mail);
                }
                Some(cluster) if cluster != chip::here() => Err(Errno::EHOSTDOWN),
                _ => Err(Errno::ESRCH),
            },
        };
        if verdict.is_err() {
            self.dropped += 1;
        }
        if let Some(answer) = acceptance::answer(&mail, verdict) {
            self.send(answer, registry);
        }
    }

    /// Sends a kernel envelope (an answer, a child's news) to its process wherever it
    /// lives: here, along a pointer, by the registry, or to its home, which knows.
    pub fn send(&mut self, mail: Mail, registry: &LocationRegistry) {
        let pid = mail.pid;
        let here = with_table(|table| {
            table
                .processes
                .contains_key(&pid)
                .then(|| ipc::deliver_local(table, mail.clone()))
        });
        if here.is_some() {
            return;
        }
        let next = self
            .next_hop(pid, registry)
            .or_else(|| (pid.birth_cluster() != chip::here()).then_some(pid.birth_cluster()));
        match next {
            Some(cluster) if cluster != chip::here() && chip::alive(cluster) => {
                self.forward(cluster, mail)
            }
            _ => self.dropped += 1,
        }
    }

    /// Sends `mail` to `to`, behind anything already waiting.
    pub fn forward(&mut self, to: ClusterId, mail: Mail) {
        if !self.backlog.is_empty() || ipc::send_to(to, &mail).is_err() {
            self.backlog.push_back((to, mail));
        }
    }
}

/// Room may have appeared on the NoC (or an answer came): threads blocked writing mail try
/// again — not those whose message left and awaits its answer.
fn restart_blocked_writers() {
    with_table(|table| {
        let blocked: Vec<(Pid, abi::Tid)> = table
            .processes
            .iter()
            .flat_map(|(pid, p)| {
                p.uarea.threads.iter().filter_map(move |t| {
                    (matches!(
                        t.state,
                        ThreadState::Blocked(BlockReason::MailboxWrite { .. })
                    ) && !acceptance::awaits_answer(t))
                    .then_some((*pid, t.tid))
                })
            })
            .collect();
        for (pid, tid) in blocked {
            table.restart_blocked(pid, tid);
        }
    });
}
