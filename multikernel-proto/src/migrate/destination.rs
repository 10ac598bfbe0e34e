//! The destination side: one [`Destination`] per cluster receives at most one process at a
//! time (others are refused with Busy), prepares it — restored and validated but NOT
//! runnable — and runs it only on the source's Commit.
//!
//! Guarantees: [`Action::Resume`] is emitted only on Commit, once per sequence; a prepared
//! copy is kept (re-announcing Prepared) until Commit, Abort, or the source leaving — never
//! dropped on a timer, since only the source may decide; a repeated Commit is answered
//! `Committed` from the memory of the last finished sequence of each source.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use abi::{ClusterId, Pid};

use super::{elapsed, Action, Config, MailToken};
use crate::message::{Message, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `Admit` emitted; waiting for [`Destination::on_admitted`].
    Admitting,
    /// Accept sent; waiting for the image and Done.
    Receiving,
    /// `Restore` emitted; waiting for [`Destination::on_restored`].
    Restoring,
    /// Prepared sent; waiting for the decision.
    Prepared,
}

#[derive(Debug, Clone)]
struct Incoming {
    from: ClusterId,
    sequence: u32,
    pid: Pid,
    phase: Phase,
    crc: Option<u32>,
    image_complete: bool,
    progress_ns: u64,
    sent_ns: u64,
    held_kill: Option<i32>,
    held_mail: Vec<MailToken>,
}

/// How the last migration from a source ended here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    Committed,
    Aborted,
    Failed(Reason),
}

/// Every incoming migration of one cluster.
#[derive(Debug)]
pub struct Destination {
    config: Config,
    incoming: Option<Incoming>,
    /// Per source: its last finished sequence here. Anything older is stale.
    finished: BTreeMap<ClusterId, (u32, Finished)>,
    gone: BTreeSet<ClusterId>,
    /// Refuse every offer (a cluster being drained).
    pub refusing: bool,
}

impl Destination {
    pub fn new(config: Config) -> Destination {
        Destination {
            config,
            incoming: None,
            finished: BTreeMap::new(),
            gone: BTreeSet::new(),
            refusing: false,
        }
    }

    /// A daemon message for the destination role (see [`super::role`]).
    pub fn on_message(&mut self, from: ClusterId, message: &Message, now_ns: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let sequence = message.sequence();
        if self.gone.contains(&from) {
            return actions;
        }
        if let Some(&(last, finished)) = self.finished.get(&from) {
            if sequence <= last {
                let reply = match (message, finished) {
                    // A Commit follows our Prepared, and a prepared sequence ends only by
                    // Commit (the source never aborts what it committed): this one was
                    // applied. Its source may have run later migrations meanwhile.
                    (Message::Commit { .. }, _) => Some(Message::Committed { sequence }),
                    _ if sequence < last => None, // stale: the source has moved on
                    (Message::Offer { .. } | Message::Done { .. }, Finished::Failed(reason)) => {
                        Some(Message::Failed { sequence, reason })
                    }
                    _ => None,
                };
                if let Some(message) = reply {
                    actions.push(Action::Send { to: from, message });
                }
                return actions;
            }
        }
        let ours = self
            .incoming
            .as_ref()
            .is_some_and(|i| i.from == from && i.sequence == sequence);
        if !ours {
            if let Message::Offer { manifest, .. } = message {
                let refusal = if self.incoming.is_some() {
                    Some(Reason::Busy)
                } else if self.refusing {
                    Some(Reason::Refusing)
                } else {
                    None
                };
                match refusal {
                    Some(reason) => actions.push(refuse(from, sequence, reason)),
                    None => {
                        self.incoming = Some(Incoming {
                            from,
                            sequence,
                            pid: manifest.pid,
                            phase: Phase::Admitting,
                            crc: None,
                            image_complete: false,
                            progress_ns: now_ns,
                            sent_ns: now_ns,
                            held_kill: None,
                            held_mail: Vec::new(),
                        });
                        actions.push(Action::Admit {
                            from,
                            sequence,
                            manifest: *manifest,
                        });
                    }
                }
            }
            return actions; // Done, Commit or Abort for a sequence never admitted: ignore
        }
        let Some(incoming) = self.incoming.as_mut() else {
            return actions;
        };
        match (message, incoming.phase) {
            (Message::Offer { .. }, Phase::Receiving | Phase::Restoring) => {
                actions.push(send(from, Message::Accept { sequence }))
            }
            (Message::Offer { .. } | Message::Done { .. }, Phase::Prepared) => {
                actions.push(send(from, Message::Prepared { sequence }))
            }
            (Message::Done { crc, .. }, _) => {
                incoming.crc.get_or_insert(*crc);
                incoming.progress_ns = now_ns;
                self.restore_if_complete(&mut actions);
            }
            (Message::Commit { kill, .. }, Phase::Prepared) => self.commit(*kill, &mut actions),
            (Message::Abort { .. }, _) => self.finish(Finished::Aborted, &mut actions),
            _ => {}
        }
        actions
    }

    /// The driver admitted the offered image (`Ok`: memory reserved, portal allowed) or not.
    /// Call it right after handling [`Action::Admit`], before feeding this machine anything
    /// else.
    pub fn on_admitted(
        &mut self,
        from: ClusterId,
        sequence: u32,
        admitted: Result<(), Reason>,
        now_ns: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(incoming) = self.current(from, sequence, Phase::Admitting) else {
            return actions;
        };
        match admitted {
            Ok(()) => {
                incoming.phase = Phase::Receiving;
                incoming.progress_ns = now_ns;
                incoming.sent_ns = now_ns;
                actions.push(send(from, Message::Accept { sequence }));
            }
            Err(reason) => {
                self.incoming = None;
                actions.push(refuse(from, sequence, reason));
            }
        }
        actions
    }

    /// Image bytes of `sequence` arrived (the stall timer restarts).
    pub fn on_image_progress(&mut self, from: ClusterId, sequence: u32, now_ns: u64) {
        if let Some(incoming) = self.current(from, sequence, Phase::Receiving) {
            incoming.progress_ns = now_ns;
        }
    }

    /// The whole image of `sequence` arrived (`Ok`), or feeding it failed.
    pub fn on_image(
        &mut self,
        from: ClusterId,
        sequence: u32,
        result: Result<(), Reason>,
        now_ns: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(incoming) = self.current(from, sequence, Phase::Receiving) else {
            return actions;
        };
        match result {
            Ok(()) => {
                incoming.image_complete = true;
                incoming.progress_ns = now_ns;
                self.restore_if_complete(&mut actions);
            }
            Err(reason) => self.fail(reason, &mut actions),
        }
        actions
    }

    /// The driver restored the process, not runnable (`Ok`), or the image did not validate.
    pub fn on_restored(
        &mut self,
        from: ClusterId,
        sequence: u32,
        restored: Result<(), Reason>,
        now_ns: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(incoming) = self.current(from, sequence, Phase::Restoring) else {
            return actions;
        };
        match restored {
            Ok(()) => {
                incoming.phase = Phase::Prepared;
                incoming.sent_ns = now_ns;
                actions.push(send(from, Message::Prepared { sequence }));
            }
            Err(reason) => self.fail(reason, &mut actions),
        }
        actions
    }

    /// Time passes: re-sends, and dropping an image that stopped arriving.
    pub fn on_tick(&mut self, now_ns: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let config = self.config;
        let Some(incoming) = self.incoming.as_mut() else {
            return actions;
        };
        let (from, sequence) = (incoming.from, incoming.sequence);
        let waiting = match incoming.phase {
            Phase::Receiving => Some(Message::Accept { sequence }),
            Phase::Prepared => Some(Message::Prepared { sequence }),
            Phase::Admitting | Phase::Restoring => None,
        };
        if incoming.phase == Phase::Receiving
            && elapsed(now_ns, incoming.progress_ns, config.stall_timeout_ns)
        {
            self.fail(Reason::Timeout, &mut actions);
        } else if let Some(message) = waiting {
            if elapsed(now_ns, incoming.sent_ns, config.retransmit_ns) {
                incoming.sent_ns = now_ns;
                actions.push(send(from, message));
            }
        }
        actions
    }

    /// The router says `cluster` left for good: a copy from it is dropped (case L1).
    pub fn on_peer_gone(&mut self, cluster: ClusterId) -> Vec<Action> {
        let mut actions = Vec::new();
        self.gone.insert(cluster);
        self.finished.remove(&cluster);
        if let Some(incoming) = self.incoming.take_if(|i| i.from == cluster) {
            let pid = incoming.pid;
            actions.push(Action::Discard {
                from: cluster,
                sequence: incoming.sequence,
                pid,
            });
            for mail in incoming.held_mail {
                actions.push(Action::DropMail { pid, mail });
            }
        }
        actions
    }

    /// A kill for `pid` arrived here while it is being received: `true` if held (applied on
    /// Commit, or sent back to the source on Abort).
    pub fn hold_kill(&mut self, pid: Pid, code: i32) -> bool {
        match self.incoming.as_mut().filter(|i| i.pid == pid) {
            Some(incoming) => {
                incoming.held_kill.get_or_insert(code);
                true
            }
            None => false,
        }
    }

    /// User mail for `pid` arrived here while it is being received: `true` if held.
    pub fn hold_mail(&mut self, pid: Pid, mail: MailToken) -> bool {
        match self.incoming.as_mut().filter(|i| i.pid == pid) {
            Some(incoming) => {
                incoming.held_mail.push(mail);
                true
            }
            None => false,
        }
    }

    /// Whether `pid` is arriving here (admitted, not yet committed or dropped).
    pub fn holds(&self, pid: Pid) -> bool {
        self.incoming.as_ref().is_some_and(|i| i.pid == pid)
    }

    /// No incoming migration.
    pub fn is_idle(&self) -> bool {
        self.incoming.is_none()
    }

    /// When [`Destination::on_tick`] next has work (for a tickless kernel).
    pub fn next_deadline(&self) -> Option<u64> {
        let incoming = self.incoming.as_ref()?;
        let resend = incoming.sent_ns.saturating_add(self.config.retransmit_ns);
        match incoming.phase {
            Phase::Receiving => Some(
                resend.min(
                    incoming
                        .progress_ns
                        .saturating_add(self.config.stall_timeout_ns),
                ),
            ),
            Phase::Prepared => Some(resend),
            Phase::Admitting | Phase::Restoring => None,
        }
    }

    fn current(&mut self, from: ClusterId, sequence: u32, phase: Phase) -> Option<&mut Incoming> {
        self.incoming
            .as_mut()
            .filter(|i| i.from == from && i.sequence == sequence && i.phase == phase)
    }

    fn restore_if_complete(&mut self, actions: &mut Vec<Action>) {
        let Some(incoming) = self.incoming.as_mut() else {
            return;
        };
        if let (Phase::Receiving, true, Some(crc)) =
            (incoming.phase, incoming.image_complete, incoming.crc)
        {
            incoming.phase = Phase::Restoring;
            actions.push(Action::Restore {
                from: incoming.from,
                sequence: incoming.sequence,
                pid: incoming.pid,
                crc,
            });
        }
    }

    /// Before Prepared only: drop the image and tell the source.
    fn fail(&mut self, reason: Reason, actions: &mut Vec<Action>) {
        if let Some(incoming) = self.incoming.as_ref() {
            let message = Message::Failed {
                sequence: incoming.sequence,
                reason,
            };
            actions.push(send(incoming.from, message));
        }
        self.finish(Finished::Failed(reason), actions);
    }

    /// Abort or failure: the copy here is dropped; held kills and mail go back to the source.
    fn finish(&mut self, finished: Finished, actions: &mut Vec<Action>) {
        let Some(incoming) = self.incoming.take() else {
            return;
        };
        let Incoming {
            from,
            sequence,
            pid,
            ..
        } = incoming;
        self.finished.insert(from, (sequence, finished));
        actions.push(Action::Discard {
            from,
            sequence,
            pid,
        });
        for mail in incoming.held_mail {
            actions.push(Action::ForwardMail {
                pid,
                mail,
                to: from,
            });
        }
        if let Some(code) = incoming.held_kill {
            actions.push(Action::ForwardKill {
                pid,
                code,
                to: from,
            });
        }
    }

    /// The source decided commit: the process runs here (or ends, if a kill came with it).
    fn commit(&mut self, kill: Option<i32>, actions: &mut Vec<Action>) {
        let Some(incoming) = self.incoming.take() else {
            return;
        };
        let Incoming {
            from,
            sequence,
            pid,
            ..
        } = incoming;
        self.finished.insert(from, (sequence, Finished::Committed));
        match kill.or(incoming.held_kill) {
            Some(code) => actions.push(Action::ApplyKill { pid, code }),
            None => actions.push(Action::Resume { pid }),
        }
        for mail in incoming.held_mail {
            actions.push(Action::DeliverMail { pid, mail });
        }
        actions.push(send(from, Message::Committed { sequence }));
    }
}

fn send(to: ClusterId, message: Message) -> Action {
    Action::Send { to, message }
}

fn refuse(to: ClusterId, sequence: u32, reason: Reason) -> Action {
    send(to, Message::Refuse { sequence, reason })
}
