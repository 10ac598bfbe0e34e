//! The source side: one [`Source`] per cluster runs every migration that leaves it — at most
//! one in flight, a FIFO queue behind it, and the memory of commits not yet acknowledged.
//!
//! Guarantees: every request ends with exactly one [`Action::Report`]; once commit is
//! decided the process is never thawed here; a commit is re-sent until `Committed` or until
//! the destination is gone; a kill or mail held during the migration is released exactly
//! once (here after an abort, or with/after the commit).
//! Live strategies (pre-copy, hybrid): `live.rs`; kills and mail held meanwhile: `held.rs`.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;

use abi::{ClusterId, Pid, Strategy};
use uarea::image::Manifest;

use super::{elapsed, Action, Config, MailToken, MigrateError, RequestId};
use crate::message::Message;

mod held;
mod live;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    id: RequestId,
    pid: Pid,
    to: ClusterId,
    strategy: Strategy,
}

impl Request {
    /// Offered while it runs, frozen only for the final copy.
    fn is_live(&self) -> bool {
        self.strategy.is_live()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Live: `Survey` emitted; waiting for [`Source::on_surveyed`].
    Surveying,
    /// `Freeze` emitted; waiting for [`Source::on_frozen`].
    Freezing,
    /// Offer sent; waiting for Accept or Refuse.
    Offered(Manifest),
    /// Live: accepted; pages are copied while the process runs.
    PreCopying,
    /// Accepted; the image is streaming.
    Transferring,
    /// Done sent; waiting for Prepared or Failed.
    AwaitingPrepared { crc: u32 },
}

#[derive(Debug, Clone)]
struct InFlight {
    request: Request,
    sequence: u32,
    phase: Phase,
    /// The process is frozen here (an abort must thaw it).
    frozen: bool,
    /// An Offer went out (an abort must tell the destination).
    offered: bool,
    /// Last progress (the stall timeout runs from here).
    progress_ns: u64,
    /// Last time the phase's message was sent.
    sent_ns: u64,
    held_kill: Option<i32>,
    held_mail: Vec<MailToken>,
}

impl InFlight {
    /// Offers the process with `manifest`: the Offer to send (and re-send until answered).
    fn offer(&mut self, mut manifest: Manifest, now_ns: u64) -> Action {
        let sequence = self.sequence;
        manifest.sequence = sequence;
        self.phase = Phase::Offered(manifest);
        self.progress_ns = now_ns;
        self.sent_ns = now_ns;
        self.offered = true;
        Action::Send {
            to: self.request.to,
            message: Message::Offer { sequence, manifest },
        }
    }
}

/// A commit decided and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct Decided {
    sequence: u32,
    to: ClusterId,
    kill: Option<i32>,
    sent_ns: u64,
}

/// Every outgoing migration of one cluster.
#[derive(Debug)]
pub struct Source {
    here: ClusterId,
    config: Config,
    next_sequence: u32,
    next_request: u64,
    queue: VecDeque<Request>,
    in_flight: Option<InFlight>,
    decided: Vec<Decided>,
    gone: BTreeSet<ClusterId>,
}

impl Source {
    pub fn new(here: ClusterId, config: Config) -> Source {
        Source {
            here,
            config,
            next_sequence: 1,
            next_request: 1,
            queue: VecDeque::new(),
            in_flight: None,
            decided: Vec::new(),
            gone: BTreeSet::new(),
        }
    }

    /// Asks for `pid` (which the driver believes lives here) to move to `to` by `strategy`.
    /// The request is queued behind the one in flight; its outcome comes as one
    /// [`Action::Report`].
    pub fn request(
        &mut self,
        pid: Pid,
        to: ClusterId,
        strategy: Strategy,
        now_ns: u64,
    ) -> (RequestId, Vec<Action>) {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let request = Request {
            id,
            pid,
            to,
            strategy,
        };
        let mut actions = Vec::new();
        let refusal = if to == self.here {
            Some(MigrateError::BadDestination)
        } else if self.gone.contains(&to) {
            Some(MigrateError::PeerGone)
        } else if self.queue.len() >= self.config.queue_limit {
            Some(MigrateError::Busy)
        } else {
            None
        };
        match refusal {
            Some(error) => actions.push(report(request, Err(error))),
            None => {
                self.queue.push_back(request);
                self.start_next(now_ns, &mut actions);
            }
        }
        (id, actions)
    }

    /// The driver froze the process of `sequence` and took its snapshot (`Ok(manifest)`), or
    /// could not (`Err`: the process is not here, no memory...).
    pub fn on_frozen(
        &mut self,
        sequence: u32,
        frozen: Result<Manifest, MigrateError>,
        now_ns: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(flight) = self.in_phase(sequence, Phase::Freezing) else {
            return actions;
        };
        match frozen {
            // Live: the destination accepted long ago; the final image follows at once.
            Ok(_) if flight.request.is_live() => {
                flight.frozen = true;
                flight.phase = Phase::Transferring;
                flight.progress_ns = now_ns;
                actions.push(Action::StartTransfer {
                    pid: flight.request.pid,
                    to: flight.request.to,
                    sequence,
                });
            }
            Ok(manifest) => {
                flight.frozen = true;
                actions.push(flight.offer(manifest, now_ns));
            }
            Err(error) => self.abort(error, now_ns, &mut actions),
        }
        actions
    }

    /// The image is still moving (a chunk was written): the stall timeout restarts.
    pub fn on_transfer_progress(&mut self, sequence: u32, now_ns: u64) {
        if let Some(flight) = self.current(sequence, None) {
            flight.progress_ns = now_ns;
        }
    }

    /// The bulk transfer of `sequence` ended: `Ok(crc)` of the whole body, or failed.
    pub fn on_transfer_done(
        &mut self,
        sequence: u32,
        result: Result<u32, MigrateError>,
        now_ns: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(flight) = self.in_phase(sequence, Phase::Transferring) else {
            return actions;
        };
        match result {
            Ok(crc) => {
                flight.phase = Phase::AwaitingPrepared { crc };
                flight.progress_ns = now_ns;
                flight.sent_ns = now_ns;
                actions.push(Action::Send {
                    to: flight.request.to,
                    message: Message::Done { sequence, crc },
                });
            }
            Err(error) => self.abort(error, now_ns, &mut actions),
        }
        actions
    }

    /// A daemon message for the source role (see [`super::role`]).
    pub fn on_message(&mut self, from: ClusterId, message: &Message, now_ns: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let sequence = message.sequence();
        if let Some(decided) = self
            .decided
            .iter()
            .position(|d| d.sequence == sequence && d.to == from)
        {
            match message {
                Message::Committed { .. } => {
                    self.decided.swap_remove(decided);
                }
                // The destination has not seen the Commit yet: say it again.
                Message::Prepared { .. } | Message::Accept { .. } => {
                    let d = &mut self.decided[decided];
                    d.sent_ns = now_ns;
                    actions.push(commit_message(d));
                }
                // Decided: nothing else can change the outcome.
                _ => {}
            }
            return actions;
        }
        let Some(flight) = self.current(sequence, Some(from)) else {
            // Presumed abort: an aborted, or committed and acknowledged, sequence.
            if matches!(message, Message::Accept { .. } | Message::Prepared { .. }) {
                actions.push(Action::Send {
                    to: from,
                    message: Message::Abort { sequence },
                });
            }
            return actions;
        };
        match (message, flight.phase) {
            (Message::Accept { .. }, Phase::Offered(_)) if flight.request.is_live() => {
                flight.phase = Phase::PreCopying;
                flight.progress_ns = now_ns;
                actions.push(Action::StartPreCopy {
                    pid: flight.request.pid,
                    to: from,
                    sequence,
                });
            }
            (Message::Accept { .. }, Phase::Offered(_)) => {
                flight.phase = Phase::Transferring;
                flight.progress_ns = now_ns;
                actions.push(Action::StartTransfer {
                    pid: flight.request.pid,
                    to: from,
                    sequence,
                });
            }
            (Message::Refuse { reason, .. } | Message::Failed { reason, .. }, _) => {
                let error = MigrateError::from_reason(*reason);
                self.abort(error, now_ns, &mut actions)
            }
            (Message::Prepared { .. }, Phase::AwaitingPrepared { .. }) => {
                self.commit(now_ns, &mut actions)
            }
            _ => {}
        }
        actions
    }

    /// Time passes: re-sends, stall timeouts, the next queued request.
    pub fn on_tick(&mut self, now_ns: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let config = self.config;
        for d in self.decided.iter_mut() {
            if elapsed(now_ns, d.sent_ns, config.retransmit_ns) {
                d.sent_ns = now_ns;
                actions.push(commit_message(d));
            }
        }
        let mut stalled = false;
        if let Some(flight) = self.in_flight.as_mut() {
            stalled = !matches!(flight.phase, Phase::Freezing | Phase::Surveying)
                && elapsed(now_ns, flight.progress_ns, config.stall_timeout_ns);
            let sequence = flight.sequence;
            let resend = match flight.phase {
                Phase::Offered(manifest) => Some(Message::Offer { sequence, manifest }),
                Phase::AwaitingPrepared { crc } => Some(Message::Done { sequence, crc }),
                Phase::Surveying | Phase::Freezing | Phase::PreCopying | Phase::Transferring => {
                    None
                }
            };
            if let Some(message) = resend.filter(|_| !stalled) {
                if elapsed(now_ns, flight.sent_ns, config.retransmit_ns) {
                    flight.sent_ns = now_ns;
                    actions.push(Action::Send {
                        to: flight.request.to,
                        message,
                    });
                }
            }
        }
        if stalled {
            self.abort(MigrateError::Timeout, now_ns, &mut actions);
        }
        self.start_next(now_ns, &mut actions);
        actions
    }

    /// The router says `cluster` left for good.
    pub fn on_peer_gone(&mut self, cluster: ClusterId, now_ns: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        self.gone.insert(cluster);
        // A commit to it is lost with it (case L2).
        self.decided.retain(|d| d.to != cluster);
        self.queue.retain(|r| {
            let keep = r.to != cluster;
            if !keep {
                actions.push(report(*r, Err(MigrateError::PeerGone)));
            }
            keep
        });
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.request.to == cluster)
        {
            self.abort(MigrateError::PeerGone, now_ns, &mut actions);
        }
        self.start_next(now_ns, &mut actions);
        actions
    }

    /// Nothing in flight, queued or unacknowledged.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.queue.is_empty() && self.decided.is_empty()
    }

    /// Unacknowledged commits: `(sequence, destination)`.
    pub fn unacknowledged(&self) -> impl Iterator<Item = (u32, ClusterId)> + '_ {
        self.decided.iter().map(|d| (d.sequence, d.to))
    }

    /// When [`Source::on_tick`] next has work (for a tickless kernel).
    pub fn next_deadline(&self) -> Option<u64> {
        let c = self.config;
        let flight = self.in_flight.as_ref().map(|f| match f.phase {
            Phase::Surveying | Phase::Freezing => u64::MAX,
            Phase::PreCopying | Phase::Transferring => {
                f.progress_ns.saturating_add(c.stall_timeout_ns)
            }
            _ => (f.sent_ns.saturating_add(c.retransmit_ns))
                .min(f.progress_ns.saturating_add(c.stall_timeout_ns)),
        });
        let decided = self
            .decided
            .iter()
            .map(|d| d.sent_ns.saturating_add(c.retransmit_ns));
        flight.into_iter().chain(decided).min()
    }

    /// The migration in flight as `sequence`, if it is in `phase` (a driver completion for
    /// any other state is stale and ignored).
    fn in_phase(&mut self, sequence: u32, phase: Phase) -> Option<&mut InFlight> {
        self.current(sequence, None).filter(|f| f.phase == phase)
    }

    fn current(&mut self, sequence: u32, from: Option<ClusterId>) -> Option<&mut InFlight> {
        self.in_flight
            .as_mut()
            .filter(|f| f.sequence == sequence && from.is_none_or(|c| c == f.request.to))
    }

    fn start_next(&mut self, now_ns: u64, actions: &mut Vec<Action>) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(request) = self.queue.pop_front() else {
            return;
        };
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        let (phase, action) = if request.is_live() {
            (
                Phase::Surveying,
                Action::Survey {
                    pid: request.pid,
                    to: request.to,
                    sequence,
                },
            )
        } else {
            (
                Phase::Freezing,
                Action::Freeze {
                    pid: request.pid,
                    to: request.to,
                    sequence,
                },
            )
        };
        self.in_flight = Some(InFlight {
            request,
            sequence,
            phase,
            frozen: false,
            offered: false,
            progress_ns: now_ns,
            sent_ns: now_ns,
            held_kill: None,
            held_mail: Vec::new(),
        });
        actions.push(action);
    }

    /// Before the decision only: the process stays here.
    fn abort(&mut self, error: MigrateError, now_ns: u64, actions: &mut Vec<Action>) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        let Request { pid, to, .. } = flight.request;
        if flight.frozen {
            actions.push(Action::Thaw { pid });
        }
        // The destination may hold an admitted image (or prepare one): tell it, once.
        if flight.offered && !self.gone.contains(&to) {
            let sequence = flight.sequence;
            let message = Message::Abort { sequence };
            actions.push(Action::Send { to, message });
        }
        for mail in flight.held_mail {
            actions.push(Action::DeliverMail { pid, mail });
        }
        if let Some(code) = flight.held_kill {
            actions.push(Action::ApplyKill { pid, code });
        }
        actions.push(report(flight.request, Err(error)));
        self.start_next(now_ns, actions);
    }

    /// The decision: from here on the process belongs to the destination.
    fn commit(&mut self, now_ns: u64, actions: &mut Vec<Action>) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        let Request { pid, to, .. } = flight.request;
        actions.push(Action::Free { pid, to });
        for mail in flight.held_mail {
            actions.push(Action::ForwardMail { pid, mail, to });
        }
        let decided = Decided {
            sequence: flight.sequence,
            to,
            kill: flight.held_kill,
            sent_ns: now_ns,
        };
        actions.push(commit_message(&decided));
        self.decided.push(decided);
        actions.push(report(flight.request, Ok(to)));
        self.start_next(now_ns, actions);
    }
}

fn report(request: Request, outcome: Result<ClusterId, MigrateError>) -> Action {
    Action::Report {
        request: request.id,
        pid: request.pid,
        outcome,
    }
}

fn commit_message(d: &Decided) -> Action {
    Action::Send {
        to: d.to,
        message: Message::Commit {
            sequence: d.sequence,
            kill: d.kill,
        },
    }
}
