//! The model kernel daemon: delivers events to the machines and performs their actions on
//! the model process table, the way the kernel's migration daemon will.

use std::collections::VecDeque;

use abi::{ClusterId, Pid};
use multikernel_proto::message::{Message, Reason};
use multikernel_proto::migrate::{role, Action, MailToken, MigrateError, Role};
use uarea::image::Manifest;

use super::model::*;
use super::{trace, World};

impl World {
    pub(super) fn deliver(&mut self, event: Event) -> Result<(), String> {
        let now = self.now;
        let target = event.target();
        if !self.alive(target) {
            if let Event::User { what, .. } = event {
                self.set_whereabouts(what, Whereabouts::LostWithCluster);
            }
            return Ok(());
        }
        let actions = match event {
            Event::Daemon { to, from, bytes } => {
                let message = Message::decode(&bytes)
                    .map_err(|e| format!("our own message did not decode: {e:?}"))?;
                trace!(self, "c{} <- c{}: {message:?}", to.0, from.0);
                let cluster = self.cluster(to);
                match role(&message) {
                    Some(Role::Source) => cluster.source.on_message(from, &message, now),
                    Some(Role::Destination) => cluster.destination.on_message(from, &message, now),
                    None => return Err(format!("not a migration message: {message:?}")),
                }
            }
            Event::User { to, what } => return self.route(to, what),
            Event::ImageArrived {
                to,
                from,
                sequence,
                image,
            } => {
                trace!(
                    self,
                    "c{} image of seq {sequence} from c{} arrived",
                    to.0,
                    from.0
                );
                let cluster = self.cluster(to);
                cluster.images.insert((from, sequence), image);
                cluster.destination.on_image(from, sequence, Ok(()), now)
            }
            Event::TransferDone {
                to,
                peer,
                sequence,
                ok,
            } => {
                let ok = ok && self.alive(peer);
                trace!(self, "c{} transfer of seq {sequence} done: {ok}", to.0);
                let result = if ok {
                    Ok(0xC0FF_EE00)
                } else {
                    Err(MigrateError::TransferFailed)
                };
                self.cluster(to)
                    .source
                    .on_transfer_done(sequence, result, now)
            }
            Event::PreCopyDone {
                to,
                peer,
                pid,
                sequence,
                ok,
            } => {
                let running = self
                    .cluster(to)
                    .processes
                    .get(&pid)
                    .is_some_and(|c| c.state == State::Running);
                let result = if !running {
                    Err(MigrateError::NoSuchProcess)
                } else if !ok || !self.alive(peer) {
                    Err(MigrateError::TransferFailed)
                } else {
                    Ok(())
                };
                trace!(
                    self,
                    "c{} pre-copy of seq {sequence} done: {result:?}",
                    to.0
                );
                self.cluster(to)
                    .source
                    .on_precopy_done(sequence, result, now)
            }
            Event::PeerGone { to, gone } => {
                trace!(self, "c{} learns c{} left", to.0, gone.0);
                let cluster = self.cluster(to);
                let mut actions = cluster.source.on_peer_gone(gone, now);
                actions.extend(cluster.destination.on_peer_gone(gone));
                actions
            }
        };
        self.perform(target, actions)
    }

    /// Mail or a kill for `pid` reaches cluster `at`: held by a machine, applied here, or
    /// forwarded along the pointer the last migration left.
    pub(super) fn route(&mut self, at: ClusterId, what: User) -> Result<(), String> {
        let pid = match what {
            User::Mail { pid, .. } | User::Kill { pid, .. } => pid,
        };
        let cluster = &mut self.clusters[at.0 as usize];
        let held = match what {
            User::Mail { id, .. } => {
                cluster.source.hold_mail(pid, MailToken(id))
                    || cluster.destination.hold_mail(pid, MailToken(id))
            }
            User::Kill { id, .. } => {
                cluster.source.hold_kill(pid, id) || cluster.destination.hold_kill(pid, id)
            }
        };
        if held {
            self.set_whereabouts(what, Whereabouts::HeldAt(at));
            return Ok(());
        }
        self.apply_here_or_forward(at, what)
    }

    fn apply_here_or_forward(&mut self, at: ClusterId, what: User) -> Result<(), String> {
        let cluster = &mut self.clusters[at.0 as usize];
        let pid = match what {
            User::Mail { pid, .. } | User::Kill { pid, .. } => pid,
        };
        if let Some(copy) = cluster.processes.get_mut(&pid) {
            match what {
                User::Mail { id, .. } => copy.mail.push(id),
                User::Kill { id, .. } => {
                    cluster.processes.remove(&pid);
                    cluster.forward.remove(&pid);
                    let info = self.processes.get_mut(&pid).ok_or("unknown pid")?;
                    info.ended = true;
                    info.kills_applied += 1;
                    trace!(self, "c{} {pid} killed by k{id}", at.0);
                }
            }
            self.set_whereabouts(what, Whereabouts::Delivered);
        } else if let Some(&next) = cluster.forward.get(&pid) {
            self.set_whereabouts(what, Whereabouts::InFlight(next));
            let delay = self.delay();
            self.schedule(delay, Event::User { to: next, what });
        } else {
            self.set_whereabouts(what, Whereabouts::DroppedUnknown);
        }
        Ok(())
    }

    fn set_whereabouts(&mut self, what: User, whereabouts: Whereabouts) {
        match what {
            User::Mail { id, .. } => {
                if let Some(entry) = self.mails.get_mut(&id) {
                    entry.1 = whereabouts;
                }
            }
            User::Kill { id, .. } => {
                if let Some(entry) = self.kills.get_mut(&id) {
                    entry.1 = whereabouts;
                }
            }
        }
    }

    pub(super) fn perform(&mut self, at: ClusterId, actions: Vec<Action>) -> Result<(), String> {
        let mut work: VecDeque<Action> = actions.into();
        while let Some(action) = work.pop_front() {
            trace!(self, "c{} does {action:?}", at.0);
            let more = self.perform_one(at, action)?;
            work.extend(more);
        }
        Ok(())
    }

    fn perform_one(&mut self, at: ClusterId, action: Action) -> Result<Vec<Action>, String> {
        let now = self.now;
        let bug = self.options.bug_resume_before_decision;
        let mut more = Vec::new();
        match action {
            Action::Send { to, message } => {
                if bug && matches!(message, Message::Prepared { .. }) {
                    // The old protocol: run it as soon as it is restored.
                    for copy in self.cluster(at).processes.values_mut() {
                        if copy.state == State::Prepared {
                            copy.state = State::Running;
                        }
                    }
                }
                self.send_daemon(at, to, message.encode());
            }
            Action::Survey { pid, to, sequence } => {
                let running = self
                    .cluster(at)
                    .processes
                    .get(&pid)
                    .is_some_and(|c| c.state == State::Running);
                let surveyed = if running {
                    Ok(manifest(pid, at, to, sequence))
                } else {
                    Err(MigrateError::NoSuchProcess)
                };
                more = self.cluster(at).source.on_surveyed(sequence, surveyed, now);
            }
            Action::StartPreCopy { pid, to, sequence } => {
                // Rounds while it runs: mail and kills keep reaching the running copy.
                let length = self.rng.range(5, 400) * MS;
                let ok = self.calm || !self.rng.chance(0.05);
                if !ok {
                    self.faults += 1;
                }
                self.schedule(
                    length,
                    Event::PreCopyDone {
                        to: at,
                        peer: to,
                        pid,
                        sequence,
                        ok,
                    },
                );
            }
            Action::Freeze { pid, to, sequence } => {
                let fail = !self.calm && self.rng.chance(0.02);
                let cluster = self.cluster(at);
                let frozen = match cluster.processes.get_mut(&pid) {
                    Some(copy) if copy.state == State::Running && !fail => {
                        copy.state = State::Frozen;
                        let snapshot = copy.mail.clone();
                        cluster.snapshots.insert(sequence, snapshot);
                        Ok(manifest(pid, at, to, sequence))
                    }
                    Some(copy) if copy.state == State::Running => Err(MigrateError::OutOfMemory),
                    _ => Err(MigrateError::NoSuchProcess),
                };
                if frozen == Err(MigrateError::OutOfMemory) {
                    self.faults += 1;
                }
                more = self.cluster(at).source.on_frozen(sequence, frozen, now);
            }
            Action::StartTransfer {
                pid: _,
                to,
                sequence,
            } => {
                let mail = self
                    .cluster(at)
                    .snapshots
                    .get(&sequence)
                    .cloned()
                    .ok_or("no snapshot")?;
                let slow = !self.calm && self.rng.chance(0.05);
                let length = if slow {
                    self.rng.range(1000, 3000)
                } else {
                    self.rng.range(5, 300)
                } * MS;
                let fate = if self.calm { 0 } else { self.rng.below(20) };
                if slow || fate < 2 {
                    self.faults += 1;
                }
                if fate != 0 {
                    let image = Image {
                        mail,
                        intact: fate != 1,
                    };
                    self.schedule(
                        length,
                        Event::ImageArrived {
                            to,
                            from: at,
                            sequence,
                            image,
                        },
                    );
                }
                let ok = fate != 0;
                let done = length + self.rng.below(50 * MS);
                self.schedule(
                    done,
                    Event::TransferDone {
                        to: at,
                        peer: to,
                        sequence,
                        ok,
                    },
                );
            }
            Action::Thaw { pid } => self.set_state(at, pid, State::Frozen, State::Running)?,
            Action::Free { pid, to } => {
                let cluster = self.cluster(at);
                match cluster.processes.remove(&pid) {
                    Some(copy) if copy.state == State::Frozen => {}
                    other => return Err(format!("Free of {pid} at c{} found {other:?}", at.0)),
                }
                cluster.forward.insert(pid, to);
                let destination_gone = !self.alive(to);
                let info = self.processes.get_mut(&pid).ok_or("unknown pid")?;
                if destination_gone {
                    // It prepared, then left before the source heard of it.
                    info.excuse = Some("L2: the destination left after it prepared");
                }
                info.owner = to;
                info.committed_by = Some(at);
                info.believed_before = info.believed;
                info.believed = to;
            }
            Action::Admit {
                from,
                sequence,
                manifest,
            } => {
                let exists = self.cluster(at).processes.contains_key(&manifest.pid);
                let result = if exists {
                    Err(Reason::Exists)
                } else if !self.calm && self.rng.chance(0.03) {
                    self.faults += 1;
                    Err(Reason::NoMemory)
                } else {
                    Ok(())
                };
                more = self
                    .cluster(at)
                    .destination
                    .on_admitted(from, sequence, result, now);
            }
            Action::Restore {
                from,
                sequence,
                pid,
                crc: _,
            } => {
                let cluster = self.cluster(at);
                let result = match cluster.images.get(&(from, sequence)) {
                    _ if cluster.processes.contains_key(&pid) => Err(Reason::Exists),
                    Some(image) if image.intact => {
                        let copy = Copy {
                            state: State::Prepared,
                            mail: image.mail.clone(),
                        };
                        cluster.processes.insert(pid, copy);
                        Ok(())
                    }
                    _ => Err(Reason::BadImage),
                };
                more = cluster.destination.on_restored(from, sequence, result, now);
            }
            Action::Discard {
                from,
                sequence,
                pid,
            } => {
                let cluster = self.cluster(at);
                cluster.images.remove(&(from, sequence));
                if cluster
                    .processes
                    .get(&pid)
                    .is_some_and(|c| c.state == State::Prepared)
                {
                    cluster.processes.remove(&pid);
                }
            }
            Action::Resume { pid } => {
                let prepared = self
                    .cluster(at)
                    .processes
                    .get(&pid)
                    .is_some_and(|c| c.state == State::Prepared);
                if prepared || !bug {
                    self.set_state(at, pid, State::Prepared, State::Running)?;
                }
                self.cluster(at).forward.remove(&pid);
            }
            Action::ApplyKill { pid, code } => {
                self.apply_here_or_forward(at, User::Kill { pid, id: code })?
            }
            Action::DeliverMail { pid, mail } => {
                self.apply_here_or_forward(at, User::Mail { pid, id: mail.0 })?
            }
            Action::ForwardMail { pid, mail, to } => {
                self.forward(to, User::Mail { pid, id: mail.0 })
            }
            Action::ForwardKill { pid, code, to } => self.forward(to, User::Kill { pid, id: code }),
            Action::DropMail { pid, mail } => {
                self.set_whereabouts(User::Mail { pid, id: mail.0 }, Whereabouts::Dropped)
            }
            Action::Report {
                request,
                pid,
                outcome,
            } => {
                trace!(
                    self,
                    "c{} request #{} for {pid}: {outcome:?}",
                    at.0,
                    request.0
                );
                let entry = self
                    .requests
                    .get_mut(&(at, request))
                    .ok_or("report of an unknown request")?;
                entry.reports += 1;
                match outcome {
                    Ok(_) if entry.live => {
                        self.stats.committed += 1;
                        self.stats.committed_live += 1;
                    }
                    Ok(_) => self.stats.committed += 1,
                    Err(_) => self.stats.failed += 1,
                }
                if entry.reports > 1 {
                    return Err(format!(
                        "request #{} of c{} reported twice",
                        request.0, at.0
                    ));
                }
            }
        }
        Ok(more)
    }

    fn forward(&mut self, to: ClusterId, what: User) {
        self.set_whereabouts(what, Whereabouts::InFlight(to));
        let delay = self.delay();
        self.schedule(delay, Event::User { to, what });
    }

    fn set_state(&mut self, at: ClusterId, pid: Pid, from: State, to: State) -> Result<(), String> {
        if self.processes.get(&pid).is_some_and(|p| p.ended) {
            return Err(format!(
                "{pid} resurrected at c{} after it was killed",
                at.0
            ));
        }
        match self.cluster(at).processes.get_mut(&pid) {
            Some(copy) if copy.state == from => copy.state = to,
            other => {
                return Err(format!(
                    "{pid} at c{}: expected {from:?}, found {other:?}",
                    at.0
                ))
            }
        }
        if let Some(info) = self.processes.get_mut(&pid) {
            info.excuse = None; // runnable again: a later loss needs its own named case
            info.committed_by = None;
        }
        Ok(())
    }
}

/// The model's image of one process: its size does not matter to the protocol.
fn manifest(pid: Pid, source: ClusterId, destination: ClusterId, sequence: u32) -> Manifest {
    Manifest {
        pid,
        source,
        destination,
        uarea_len: 64,
        page_count: 1,
        sequence,
        transport: uarea::image::PageTransport::Inline,
    }
}
