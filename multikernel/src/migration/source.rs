//! The source side of a migration: freeze, offer the manifest, stream the image over the
//! destination's portal (one allow per ≤ 1 MiB transfer), announce the body's CRC, and on
//! the destination's confirmation free the process here; on refusal, failure, timeout or a
//! vanished destination, thaw it unchanged. One migration leaves at a time; the others wait
//! in order.

use abi::{ClusterId, Errno, Pid};
use alloc::collections::{BTreeMap, VecDeque};
use kernel::noc::portal;
use kernel::process::{with_table, Table};
use kernel::requests::MigrationRequest;
use migration::snapshot::Snapshot;
use migration::{freeze, MigrationError};

use super::stats::{self, Timeline};
use crate::chip;
use crate::forwarding::MailForwarder;
use crate::outbox::Outbox;
use crate::ports::IMAGE_PORT;
use crate::protocol::{reason, Message};
use crate::registry::LocationRegistry;
use crate::STALL_NS;

/// Largest portal transfer.
const CHUNK: usize = abi::PORTAL_MAX_TRANSFER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Offered,
    Sending,
    AwaitingCommit,
}

struct Outgoing {
    request: MigrationRequest,
    sequence: u32,
    snapshot: Snapshot,
    image: portal::PortalTx,
    phase: Phase,
    at: Timeline,
    progress_ns: u64,
}

#[derive(Default)]
pub struct MigrationSource {
    next_sequence: u32,
    queue: VecDeque<MigrationRequest>,
    outgoing: Option<Outgoing>,
    /// Outcome of the latest migration of each pid that left from here.
    outcomes: BTreeMap<Pid, Result<ClusterId, MigrationError>>,
}

impl MigrationSource {
    /// The outcome of the latest migration of `pid` started here, if it ended.
    pub fn outcome(&self, pid: Pid) -> Option<Result<ClusterId, MigrationError>> {
        self.outcomes.get(&pid).cloned()
    }

    /// Asks for `pid` to move: here if it lives here, else from where its home says it is.
    pub fn request(
        &mut self,
        table: &Table,
        request: MigrationRequest,
        registry: &LocationRegistry,
        out: &mut Outbox,
    ) {
        let pid = request.pid;
        let ask = |cluster, out: &mut Outbox| {
            out.send(
                cluster,
                Message::MigrateRequest {
                    pid,
                    destination: request.destination,
                },
            )
        };
        if table.is_alive(pid) {
            self.outcomes.remove(&pid);
            self.queue.push_back(request);
        } else if pid.birth_cluster() != table.cluster {
            ask(pid.birth_cluster(), out);
        } else if let Some(host) = registry.get(pid) {
            ask(host, out);
        } else {
            self.outcomes
                .insert(pid, Err(MigrationError::NoSuchProcess));
        }
    }

    pub fn on_accept(&mut self, sequence: u32) {
        if let Some(out) = self
            .outgoing
            .as_mut()
            .filter(|o| o.sequence == sequence && o.phase == Phase::Offered)
        {
            out.phase = Phase::Sending;
            out.progress_ns = hal::clock::now_ns();
        }
    }

    pub fn on_refuse(&mut self, sequence: u32) {
        self.fail(sequence, MigrationError::Refused);
    }

    pub fn on_failed(&mut self, sequence: u32, why: u32) {
        let error = if why == reason::NO_MEMORY {
            MigrationError::OutOfMemory
        } else {
            MigrationError::LinkError
        };
        self.fail(sequence, error);
    }

    /// The destination runs the process now.
    pub fn on_committed(
        &mut self,
        sequence: u32,
        forwarder: &mut MailForwarder,
        registry: &mut LocationRegistry,
        out: &mut Outbox,
    ) {
        let Some(done) = self
            .outgoing
            .take_if(|o| o.sequence == sequence && o.phase == Phase::AwaitingCommit)
        else {
            return;
        };
        let pid = done.request.pid;
        let destination = done.request.destination;
        with_table(|table| {
            if let Some(process) = table.remove_migrated(pid) {
                // A parent here can still wait for it: its exit is reported home.
                if let Some(parent) = process.uarea.header.parent {
                    if pid.birth_cluster() == table.cluster {
                        table.adopt_remote_child(parent, pid);
                    }
                }
            }
        });
        // Messages that arrived while it was frozen follow it, and so will later ones.
        forwarder.leave_pointer(pid, destination);
        for mail in kernel::services::drain(pid) {
            forwarder.forward(destination, mail);
        }
        let manifest = done.snapshot.manifest;
        stats::succeeded(
            pid,
            (chip::here(), destination),
            done.at,
            manifest.body_len() + uarea::image::MANIFEST_LEN as u64,
            manifest.page_count as u64,
        );
        if pid.birth_cluster() == chip::here() {
            registry.set(pid, destination);
        } else {
            out.send(
                pid.birth_cluster(),
                Message::Located {
                    pid,
                    cluster: destination,
                },
            );
        }
        self.outcomes.insert(pid, Ok(destination));
    }

    pub fn step(&mut self, out: &mut Outbox) {
        let Some(current) = self.outgoing.as_mut() else {
            if let Some(request) = self.queue.pop_front() {
                self.start(request, out);
            }
            return;
        };
        let sequence = current.sequence;
        if !chip::alive(current.request.destination) {
            return self.fail(sequence, MigrationError::LinkError);
        }
        let now = hal::clock::now_ns();
        if now.saturating_sub(current.progress_ns) > STALL_NS {
            return self.fail(sequence, MigrationError::Timeout);
        }
        if current.phase != Phase::Sending {
            return;
        }
        if let Err(error) = send_image(current, now) {
            return self.fail(sequence, error);
        }
        if current.snapshot.is_done() {
            if let Some(crc) = current.snapshot.crc() {
                current.phase = Phase::AwaitingCommit;
                current.at.sent_ns = hal::clock::now_ns();
                out.send(current.request.destination, Message::Done { sequence, crc });
            }
        }
    }

    fn start(&mut self, request: MigrationRequest, out: &mut Outbox) {
        let started_ns = hal::clock::now_ns();
        let sequence = self.next_sequence.max(1);
        self.next_sequence = sequence.wrapping_add(1);
        let destination = request.destination;
        let setup = with_table(|table| {
            if destination == table.cluster || destination.0 >= kernel::noc::cluster_count() {
                return Err(MigrationError::BadDestination);
            }
            freeze::freeze(table, request.pid)?;
            Snapshot::take(table, request.pid, destination, sequence)
                .inspect_err(|_| freeze::thaw(table, request.pid))
        });
        let mut at = Timeline {
            started_ns,
            frozen_ns: started_ns,
            sent_ns: 0,
        };
        let snapshot = match setup {
            Ok(snapshot) => snapshot,
            Err(error) => return self.finish_failed(request, error, at),
        };
        at.frozen_ns = hal::clock::now_ns();
        let Ok(image) = portal::open(chip::wire(destination), IMAGE_PORT) else {
            with_table(|table| freeze::thaw(table, request.pid));
            return self.finish_failed(request, MigrationError::LinkError, at);
        };
        let manifest = snapshot.manifest;
        self.outgoing = Some(Outgoing {
            request,
            sequence,
            snapshot,
            image,
            phase: Phase::Offered,
            at,
            progress_ns: at.frozen_ns,
        });
        out.send(destination, Message::Offer { sequence, manifest });
    }

    fn fail(&mut self, sequence: u32, error: MigrationError) {
        let Some(failed) = self.outgoing.take_if(|o| o.sequence == sequence) else {
            return;
        };
        with_table(|table| freeze::thaw(table, failed.request.pid));
        self.finish_failed(failed.request, error, failed.at);
    }

    fn finish_failed(&mut self, request: MigrationRequest, error: MigrationError, at: Timeline) {
        let pid = request.pid;
        if let Some((caller_pid, tid)) = request.caller {
            // The thread that called `migrate` gets the error, here.
            with_table(|table| {
                if let Some(thread) = table
                    .processes
                    .get_mut(&caller_pid)
                    .and_then(|p| p.uarea.thread_mut(tid))
                {
                    thread.context.rax = Errno::from(error.clone()).as_return() as u64;
                }
            });
        }
        stats::failed(pid, (chip::here(), request.destination), at, &error);
        self.outcomes.insert(pid, Err(error));
    }
}

/// Sends image chunks as long as the destination keeps allowing (one allowance per chunk).
fn send_image(current: &mut Outgoing, now: u64) -> Result<(), MigrationError> {
    while portal::is_allowed(&current.image) && !current.snapshot.is_done() {
        let chunk = with_table(|table| {
            let process = table
                .processes
                .get(&current.request.pid)
                .ok_or(MigrationError::NoSuchProcess)?;
            current.snapshot.next_chunk(process, CHUNK)
        })?;
        portal::write(&current.image, &chunk).map_err(|_| MigrationError::LinkError)?;
        current.progress_ns = now;
    }
    Ok(())
}
