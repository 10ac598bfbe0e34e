//! The destination side of a migration: accept at most one image at a time, restore it as
//! it arrives, and confirm only once the process is runnable.

use abi::ClusterId;
use kernel::noc::{portal, NocError};
use kernel::process::with_table;
use migration::restore::Restorer;
use migration::MigrationError;
use uarea::image::Manifest;

use crate::chip;
use crate::forwarding::MailForwarder;
use crate::outbox::Outbox;
use crate::ports::IMAGE_PORT;
use crate::protocol::{reason, Message};
use crate::registry::LocationRegistry;
use crate::STALL_NS;

struct Incoming {
    source: ClusterId,
    sequence: u32,
    restorer: Restorer,
    done_crc: Option<u32>,
    progress_ns: u64,
}

pub struct MigrationDestination {
    image_portal: portal::Portal,
    incoming: Option<Incoming>,
    /// Refuse every incoming migration (a cluster being drained; the refusal tests).
    pub refusing: bool,
}

impl MigrationDestination {
    pub fn new() -> Result<MigrationDestination, NocError> {
        Ok(MigrationDestination {
            image_portal: portal::create(IMAGE_PORT)?,
            incoming: None,
            refusing: false,
        })
    }

    /// `from` offers a process.
    pub fn on_offer(
        &mut self,
        from: ClusterId,
        sequence: u32,
        manifest: Manifest,
        out: &mut Outbox,
    ) {
        let refuse = |why, out: &mut Outbox| {
            out.send(
                from,
                Message::Refuse {
                    sequence,
                    reason: why,
                },
            )
        };
        if self.incoming.is_some() {
            return refuse(reason::BUSY, out);
        }
        if self.refusing {
            return refuse(reason::REFUSING, out);
        }
        let restorer = match with_table(|table| Restorer::new(table, manifest)) {
            Ok(restorer) => restorer,
            Err(MigrationError::OutOfMemory) => return refuse(reason::NO_MEMORY, out),
            Err(_) => return refuse(reason::EXISTS, out),
        };
        if portal::allow(&self.image_portal, chip::wire(from)).is_err() {
            return refuse(reason::BUSY, out);
        }
        self.incoming = Some(Incoming {
            source: from,
            sequence,
            restorer,
            done_crc: None,
            progress_ns: hal::clock::now_ns(),
        });
        out.send(from, Message::Accept { sequence });
    }

    /// The source sent the whole body; its CRC.
    pub fn on_done(&mut self, from: ClusterId, sequence: u32, crc: u32) {
        if let Some(incoming) = self
            .incoming
            .as_mut()
            .filter(|i| i.source == from && i.sequence == sequence)
        {
            incoming.done_crc = Some(crc);
        }
    }

    pub fn step(
        &mut self,
        forwarder: &mut MailForwarder,
        registry: &mut LocationRegistry,
        out: &mut Outbox,
    ) {
        self.receive_image_data(out);
        self.finish_or_abandon(forwarder, registry, out);
    }

    fn receive_image_data(&mut self, out: &mut Outbox) {
        while let Ok((from, data)) = portal::try_read_vec(&self.image_portal) {
            let from = ClusterId(from.0);
            let Some(incoming) = self.incoming.as_mut().filter(|i| i.source == from) else {
                continue; // stale data from an abandoned transfer
            };
            incoming.progress_ns = hal::clock::now_ns();
            if let Err(error) = incoming.restorer.feed(&data) {
                let (source, sequence) = (incoming.source, incoming.sequence);
                log::warn!("incoming migration from c{} rejected: {error:?}", source.0);
                self.incoming = None;
                let why = if error == MigrationError::OutOfMemory {
                    reason::NO_MEMORY
                } else {
                    reason::BAD_IMAGE
                };
                out.send(
                    source,
                    Message::Failed {
                        sequence,
                        reason: why,
                    },
                );
                return;
            }
            if !incoming.restorer.is_complete() {
                let _ = portal::allow(&self.image_portal, chip::wire(from));
            }
        }
    }

    fn finish_or_abandon(
        &mut self,
        forwarder: &mut MailForwarder,
        registry: &mut LocationRegistry,
        out: &mut Outbox,
    ) {
        let Some(incoming) = self.incoming.as_ref() else {
            return;
        };
        let (source, sequence) = (incoming.source, incoming.sequence);
        let complete = incoming.restorer.is_complete();
        if let Some(crc) = incoming.done_crc.filter(|_| complete) {
            let Some(incoming) = self.incoming.take() else {
                return;
            };
            match with_table(|table| incoming.restorer.finish(table, crc)) {
                Ok(pid) => {
                    log::info!("process {pid} arrived from c{}", source.0);
                    forwarder.clear_pointer(pid);
                    if pid.birth_cluster() == chip::here() {
                        registry.forget(pid);
                    }
                    out.send(source, Message::Committed { sequence });
                }
                Err(error) => {
                    log::warn!("incoming migration from c{} failed: {error:?}", source.0);
                    out.send(
                        source,
                        Message::Failed {
                            sequence,
                            reason: reason::BAD_IMAGE,
                        },
                    );
                }
            }
        } else if hal::clock::now_ns().saturating_sub(incoming.progress_ns) > STALL_NS
            || !chip::alive(source)
        {
            log::warn!(
                "incoming migration from c{} abandoned (stalled or source gone)",
                source.0
            );
            self.incoming = None;
            out.send(
                source,
                Message::Failed {
                    sequence,
                    reason: reason::TIMEOUT,
                },
            );
        }
    }
}
