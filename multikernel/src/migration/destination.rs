//! The destination side of every migration that arrives here: the driver of
//! [`multikernel_proto::migrate::Destination`] against the real process table.
//!
//! The machine admits one image at a time; this driver reserves its memory and allows the
//! source on the image portal, feeds what arrives to a [`Restorer`], restores the process
//! *frozen* (present but not runnable) when the image is complete, and makes it runnable only
//! when the machine says the source decided commit.

use abi::{ClusterId, Pid};
use alloc::collections::VecDeque;
use kernel::noc::portal::{self, FramesArrival};
use kernel::noc::NocError;
use kernel::process::with_table;
use migration::{freeze, MigrationError};
use multikernel_proto::message::{Message, Reason};
use multikernel_proto::migrate::{Action, Config, Destination};
use uarea::image::Manifest;

use super::incoming::{allow_next, Handled, Stage};
use super::page_client::PageClients;
use super::Ctx;
use crate::chip;
use crate::ports::{IMAGE_PAGES_PORT, IMAGE_PORT};

/// Page batches granted ahead of the source (so it never waits for a round trip).
const GRANT_WINDOW: usize = 4;
/// An allowance unused this long is sent again (it may have been lost on a cut link).
const REANNOUNCE_NS: u64 = super::page_client::REALLOW_NS;

/// The image being received.
struct Incoming {
    from: ClusterId,
    sequence: u32,
    /// Pre-copy rounds, then the image.
    stage: Stage,
    /// Page batches granted so far (after the index arrived).
    batches_granted: usize,
    /// Transfer ids of the page grants not landed yet (rounds, then batches), in the order
    /// the source fills them: a landing in any other grant means an allowance went astray,
    /// and the image is dropped rather than mapped under the wrong pages.
    page_grants: VecDeque<u32>,
    /// The machine was told the whole image is here.
    complete: bool,
}

pub struct MigrationDestination {
    machine: Destination,
    image_portal: portal::Portal,
    /// Pages arrive here, straight into the frames the restorer mapped for them.
    pages_portal: portal::Portal,
    incoming: Option<Incoming>,
    /// Abandoned images whose frames the engine may still write: kept until their grants are
    /// used up or revoked, so no freed frame is ever written.
    retiring: alloc::vec::Vec<Stage>,
    /// Post-copy: restored processes whose pages will come from a source, until they run.
    postcopy_from: alloc::collections::BTreeMap<Pid, ClusterId>,
    /// Post-copy: the processes running here whose pages are still coming.
    page_clients: PageClients,
}

impl MigrationDestination {
    pub fn new() -> Result<MigrationDestination, NocError> {
        Ok(MigrationDestination {
            machine: Destination::new(Config::default()),
            image_portal: portal::create(IMAGE_PORT)?,
            pages_portal: portal::create(IMAGE_PAGES_PORT)?,
            incoming: None,
            retiring: alloc::vec::Vec::new(),
            postcopy_from: alloc::collections::BTreeMap::new(),
            page_clients: PageClients::new()?,
        })
    }

    /// Refuse (or accept again) every incoming migration: a cluster being drained.
    pub fn set_refusing(&mut self, on: bool) {
        self.machine.refusing = on;
    }

    /// True while `pid` is arriving here (a kill for it is held until the decision).
    pub fn holds(&self, pid: Pid) -> bool {
        self.machine.holds(pid)
    }

    /// Holds a kill of `pid` until the decision; false if `pid` is not arriving here.
    pub fn hold_kill(&mut self, pid: Pid, code: i32) -> bool {
        self.machine.hold_kill(pid, code)
    }

    /// No migration arriving.
    pub fn is_idle(&self) -> bool {
        self.machine.is_idle()
    }

    /// Pages are arriving (an image, or post-copy's remaining pages): poll for completions.
    pub fn is_receiving(&self) -> bool {
        self.incoming.is_some() || self.page_clients.has_work()
    }

    /// The earliest time the machine (or a post-copy's requests) must be stepped again.
    pub fn next_deadline(&self) -> Option<u64> {
        let clients = self.page_clients.next_deadline();
        self.machine
            .next_deadline()
            .into_iter()
            .chain(clients)
            .min()
    }

    /// Post-copy: a thread of `pid` waits for `page`.
    pub fn on_page_fault(&mut self, pid: Pid, page: u64, ctx: &mut Ctx) {
        self.page_clients.on_fault(pid, page, ctx.out);
    }

    /// A protocol message for the destination side.
    pub fn on_message(&mut self, from: ClusterId, message: &Message, ctx: &mut Ctx) {
        let actions = self.machine.on_message(from, message, hal::clock::now_ns());
        self.run(actions, ctx);
    }

    /// `cluster` left the machine for good.
    pub fn on_peer_gone(&mut self, cluster: ClusterId, ctx: &mut Ctx) {
        self.page_clients.on_peer_gone(cluster);
        let actions = self.machine.on_peer_gone(cluster);
        self.run(actions, ctx);
    }

    /// One pass: take what arrived on the image portal, then let the machine's timers run.
    pub fn step(&mut self, ctx: &mut Ctx) {
        self.receive_image_data(ctx);
        self.receive_pages(ctx);
        // Allowances lost on a cut link are sent again, so the image goes on after the heal.
        if let Some(incoming) = self.incoming.as_ref().filter(|i| !i.complete) {
            portal::reannounce(&self.image_portal, incoming.from, REANNOUNCE_NS);
            portal::reannounce(&self.pages_portal, incoming.from, REANNOUNCE_NS);
        }
        if !self.retiring.is_empty() && portal::grants_outstanding(&self.pages_portal) == 0 {
            self.retiring.clear();
        }
        let actions = self.machine.on_tick(hal::clock::now_ns());
        self.run(actions, ctx);
        self.page_clients.step(ctx.out);
    }

    fn receive_image_data(&mut self, ctx: &mut Ctx) {
        while let Ok((from, data)) = portal::try_read_vec(&self.image_portal) {
            let Some(incoming) = self
                .incoming
                .as_mut()
                .filter(|i| i.from == from && !i.complete)
            else {
                continue; // stale data from an abandoned transfer
            };
            let sequence = incoming.sequence;
            let now = hal::clock::now_ns();
            if incoming.stage.in_rounds() {
                let granted = &mut incoming.page_grants;
                let result = match incoming
                    .stage
                    .on_piece(from, &data, &self.pages_portal, granted)
                {
                    Ok(Handled::Next) => allow_next(&self.image_portal, from)
                        .map(|_| ())
                        .map_err(|_| Reason::Busy),
                    Ok(Handled::Held) => Ok(()),
                    Err(reason) => Err(reason),
                };
                match result {
                    Ok(()) => self.machine.on_image_progress(from, sequence, now),
                    Err(reason) => self.image_ended(from, sequence, Err(reason), ctx),
                }
                continue;
            }
            let Some(restorer) = incoming.stage.restorer() else {
                continue;
            };
            let fed = restorer.feed(&data);
            let result = match fed {
                Err(MigrationError::OutOfMemory) => Err(Reason::NoMemory),
                Err(error) => {
                    log::warn!("incoming migration from c{} rejected: {error:?}", from.0);
                    Err(Reason::BadImage)
                }
                Ok(()) if restorer.is_complete() => Ok(()),
                Ok(()) if restorer.index_complete() => {
                    self.machine.on_image_progress(from, sequence, now);
                    if grant_pages(&self.pages_portal, incoming).is_err() {
                        Err(Reason::NoMemory)
                    } else {
                        continue;
                    }
                }
                Ok(()) => {
                    self.machine.on_image_progress(from, sequence, now);
                    let _ = portal::allow(&self.image_portal, from);
                    continue;
                }
            };
            self.image_ended(from, sequence, result, ctx);
        }
    }

    /// Page batches that landed: grant the next, and tell the machine once all are here.
    fn receive_pages(&mut self, ctx: &mut Ctx) {
        loop {
            let arrived = portal::take_frames(&self.pages_portal);
            let Some(incoming) = self.incoming.as_mut().filter(|i| !i.complete) else {
                if arrived.is_err() {
                    return;
                }
                continue; // a batch of an image abandoned meanwhile
            };
            let (from, sequence) = (incoming.from, incoming.sequence);
            let now = hal::clock::now_ns();
            let result = match arrived {
                Err(kernel::noc::NocError::WouldBlock) => return,
                Err(error) => {
                    log::warn!(
                        "incoming migration from c{}: pages failed: {error:?}",
                        from.0
                    );
                    Err(Reason::BadImage)
                }
                Ok(arrival) if arrival.from != from => continue,
                // Each landing must be the oldest grant's (the guard takes it off the list).
                Ok(arrival) if incoming.page_grants.pop_front() != Some(arrival.transfer) => {
                    log::warn!(
                        "incoming migration from c{}: pages landed out of order",
                        from.0
                    );
                    Err(Reason::BadImage)
                }
                Ok(FramesArrival {
                    landed: Err(error), ..
                }) => {
                    log::warn!(
                        "incoming migration from c{}: pages failed: {error:?}",
                        from.0
                    );
                    Err(Reason::BadImage)
                }
                Ok(_) if incoming.stage.in_rounds() => {
                    self.machine.on_image_progress(from, sequence, now);
                    match incoming.stage.on_round_landed() {
                        Ok(Some(_)) => {
                            if allow_next(&self.image_portal, from).is_err() {
                                Err(Reason::Busy)
                            } else {
                                continue;
                            }
                        }
                        Ok(None) => continue,
                        Err(reason) => Err(reason),
                    }
                }
                Ok(_) => {
                    let Some(restorer) = incoming.stage.restorer() else {
                        continue;
                    };
                    restorer.batch_arrived();
                    if !restorer.is_complete() {
                        self.machine.on_image_progress(from, sequence, now);
                        if grant_pages(&self.pages_portal, incoming).is_err() {
                            Err(Reason::NoMemory)
                        } else {
                            continue;
                        }
                    } else {
                        Ok(())
                    }
                }
            };
            self.image_ended(from, sequence, result, ctx);
        }
    }

    /// The image being received is whole (`Ok`) or failed: the machine hears of it once.
    fn image_ended(
        &mut self,
        from: ClusterId,
        sequence: u32,
        result: Result<(), Reason>,
        ctx: &mut Ctx,
    ) {
        if let Some(incoming) = self.incoming.as_mut() {
            incoming.complete = true;
        }
        if result.is_err() {
            self.abandon();
        }
        let now = hal::clock::now_ns();
        let actions = self.machine.on_image(from, sequence, result, now);
        self.run(actions, ctx);
    }

    /// Drops the image being received, safely: grants still open are revoked, and its frames
    /// are freed only once the engine can no longer write them.
    fn abandon(&mut self) {
        if let Some(incoming) = self.incoming.take() {
            portal::revoke(&self.pages_portal, incoming.from);
            // Its unused image allowances must not carry a later image's first chunk.
            portal::revoke(&self.image_portal, incoming.from);
            self.retiring.push(incoming.stage);
        }
    }

    /// Does what the machine says, in order (follow-up actions first).
    fn run(&mut self, actions: alloc::vec::Vec<Action>, ctx: &mut Ctx) {
        for action in actions {
            match action {
                Action::Send { to, message } => ctx.out.send(to, message),
                Action::Admit {
                    from,
                    sequence,
                    manifest,
                } => {
                    let admitted = self.admit(from, sequence, manifest);
                    let now = hal::clock::now_ns();
                    let more = self.machine.on_admitted(from, sequence, admitted, now);
                    self.run(more, ctx);
                }
                Action::Restore {
                    from,
                    sequence,
                    crc,
                    ..
                } => {
                    let restored = self.restore(from, sequence, crc);
                    let now = hal::clock::now_ns();
                    let more = self.machine.on_restored(from, sequence, restored, now);
                    self.run(more, ctx);
                }
                Action::Discard {
                    from,
                    sequence,
                    pid,
                } => self.discard(from, sequence, pid),
                Action::Resume { pid } => {
                    log::info!("process {pid} arrived");
                    with_table(|table| freeze::thaw(table, pid));
                    if let Some(from) = self.postcopy_from.remove(&pid) {
                        self.page_clients.start(pid, from);
                    }
                    self.arrived(pid, ctx);
                }
                Action::ApplyKill { pid, code } => {
                    with_table(|table| {
                        freeze::thaw(table, pid);
                        table.exit_process(pid, code);
                    });
                    self.arrived(pid, ctx);
                }
                Action::ForwardKill { pid, to, .. } => ctx.out.send(to, Message::Kill { pid }),
                // Mail is never handed to the machine (see the source side), and reports,
                // freezes and transfers come only from sources.
                Action::DeliverMail { .. }
                | Action::ForwardMail { .. }
                | Action::DropMail { .. }
                | Action::Report { .. }
                | Action::Freeze { .. }
                | Action::Survey { .. }
                | Action::StartPreCopy { .. }
                | Action::StartTransfer { .. }
                | Action::Thaw { .. }
                | Action::Free { .. } => {}
            }
        }
    }

    /// Reserves what the image needs and lets the source send it.
    fn admit(&mut self, from: ClusterId, sequence: u32, manifest: Manifest) -> Result<(), Reason> {
        // One post-copy at a time: its page transfers are told apart by their source only.
        if matches!(
            manifest.transport,
            uarea::image::PageTransport::PostCopy | uarea::image::PageTransport::Hybrid
        ) && (self.page_clients.is_busy() || !self.postcopy_from.is_empty())
        {
            return Err(Reason::Busy);
        }
        let stage = Stage::admit(manifest).map_err(|e| match e {
            MigrationError::OutOfMemory => Reason::NoMemory,
            _ => Reason::Exists,
        })?;
        portal::allow(&self.image_portal, from).map_err(|_| Reason::Busy)?;
        self.incoming = Some(Incoming {
            from,
            sequence,
            stage,
            batches_granted: 0,
            page_grants: VecDeque::new(),
            complete: false,
        });
        Ok(())
    }

    /// Restores the process from the complete image, frozen: present, not runnable.
    fn restore(&mut self, from: ClusterId, sequence: u32, crc: u32) -> Result<(), Reason> {
        let incoming = self
            .incoming
            .take_if(|i| i.from == from && i.sequence == sequence)
            .ok_or(Reason::BadImage)?;
        let restorer = incoming.stage.into_restorer().ok_or(Reason::BadImage)?;
        if matches!(
            restorer.manifest().transport,
            uarea::image::PageTransport::PostCopy | uarea::image::PageTransport::Hybrid
        ) {
            self.postcopy_from.insert(restorer.manifest().pid, from);
        }
        with_table(|table| restorer.finish_frozen(table, crc))
            .map(|_| ())
            .map_err(|error| {
                log::warn!("incoming migration from c{} failed: {error:?}", from.0);
                Reason::BadImage
            })
    }

    /// Drops an image being received, or a process restored and never run.
    fn discard(&mut self, from: ClusterId, sequence: u32, pid: Pid) {
        self.postcopy_from.remove(&pid);
        let receiving = self
            .incoming
            .as_ref()
            .is_some_and(|i| i.from == from && i.sequence == sequence);
        if receiving {
            self.abandon();
        } else {
            with_table(|table| {
                if table
                    .processes
                    .get(&pid)
                    .is_some_and(|p| p.uarea.is_frozen())
                {
                    table.remove_migrated(pid);
                }
            });
        }
        log::warn!("incoming migration of {pid} from c{} dropped", from.0);
    }

    /// `pid` lives here now: no forwarding pointer or home record points away from here.
    fn arrived(&mut self, pid: Pid, ctx: &mut Ctx) {
        ctx.forwarder.clear_pointer(pid);
        if pid.birth_cluster() == chip::here() {
            ctx.registry.forget(pid);
        }
    }
}

/// Grants the next page batches of `incoming`, up to [`GRANT_WINDOW`] ahead of what arrived.
fn grant_pages(pages: &portal::Portal, incoming: &mut Incoming) -> Result<(), NocError> {
    let Some(restorer) = incoming.stage.restorer() else {
        return Ok(());
    };
    let total = restorer.page_batches();
    while incoming.batches_granted < total
        && incoming.batches_granted < restorer.batches_arrived() + GRANT_WINDOW
    {
        let frames = restorer.batch_frames(incoming.batches_granted);
        let id = portal::allow_frames(pages, incoming.from, frames)?;
        incoming.page_grants.push_back(id);
        incoming.batches_granted += 1;
    }
    Ok(())
}
