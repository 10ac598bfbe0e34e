//! The user portal relay: bulk transfers between processes on different clusters.
//!
//! The sending kernel holds the writer's pages (`kernel::userdma`) and the relay sends the
//! receiver a *claim* (routed like mail, so it finds the receiver wherever it lives). The
//! receiving relay admits one claimed transfer at a time by allowing the sender's cluster on
//! its NoC portal (a grant of a kernel receive buffer), and hands what arrives to the
//! receiving process (see `kernel::portal`). The sending relay then posts a DMA descriptor
//! naming the writer's pages and returns to the scheduler loop; the engine's completion, a
//! later pass, ends the writer's `portal_write` with `Ok(len)` or the error. One transfer is
//! in flight per sending cluster. A write with no completion in time returns `ETIMEDOUT`, but
//! its pages stay held until a fence proves the engine is done with them.

use alloc::collections::VecDeque;
use kernel::envelope::{Mail, MailKind};
use kernel::noc::{portal, NocError};
use kernel::process::with_table;
use kernel::requests::{PortalClaim, PortalSource, PortalTransfer, PortalWriter};
use kernel::userdma;

use crate::chip;
use crate::forwarding::MailForwarder;
use crate::registry::LocationRegistry;
use crate::STALL_NS;

pub struct PortalRelay {
    /// User portal transfers arrive here (one admitted sender at a time).
    port: portal::Portal,
    /// Claims to deliver here, oldest first.
    claims: VecDeque<PortalClaim>,
    /// The claim admitted on `port`, and since when.
    admitted: Option<(PortalClaim, u64)>,
    /// Transfers waiting to leave, oldest first.
    outgoing: VecDeque<PortalTransfer>,
    /// The transfer being sent (claimed, waiting for the receiving kernel's allow): since
    /// when, and the id it was claimed under.
    sending: Option<(PortalTransfer, u64, u32)>,
    /// The id the next claimed transfer gets (never 0).
    next_transfer: u32,
    /// The transfer the DMA engine carries out: descriptor posted, completion awaited.
    in_flight: Option<InFlight>,
    /// Writes given up on (no completion in time), held until the engine is done with them.
    abandoned: alloc::vec::Vec<(PortalTransfer, portal::Fence)>,
    /// Transfers lost: they arrived for a receiver that ended before it read them, or the
    /// kernel could not forward one to a receiver that moved on (after every attempt).
    pub dropped: u64,
}

impl PortalRelay {
    pub fn new() -> Result<PortalRelay, NocError> {
        Ok(PortalRelay {
            port: portal::create(kernel::portal::USER_PORTAL_PORT)?,
            claims: VecDeque::new(),
            admitted: None,
            outgoing: VecDeque::new(),
            sending: None,
            next_transfer: 1,
            in_flight: None,
            abandoned: alloc::vec::Vec::new(),
            dropped: 0,
        })
    }

    /// Another cluster wants to deliver a transfer here.
    pub fn claimed(&mut self, claim: PortalClaim) {
        self.claims.push_back(claim);
    }

    /// A process here wrote to a process elsewhere.
    pub fn send(&mut self, transfer: PortalTransfer) {
        self.outgoing.push_back(transfer);
    }

    /// True while a transfer is admitted or being sent.
    pub fn is_busy(&self) -> bool {
        self.admitted.is_some()
            || self.sending.is_some()
            || self.in_flight.is_some()
            || !self.abandoned.is_empty()
            || !self.outgoing.is_empty()
    }

    /// When an admitted or outgoing transfer will be abandoned if nothing moves.
    pub fn next_deadline(&self) -> Option<u64> {
        let since = [
            self.admitted.as_ref().map(|(_, since)| *since),
            self.sending.as_ref().map(|(_, since, _)| *since),
        ];
        let posted = self
            .in_flight
            .as_ref()
            .map(|f| f.since.saturating_add(portal::WRITE_TIMEOUT_NS + 1));
        since
            .into_iter()
            .flatten()
            .map(|s| s.saturating_add(STALL_NS + 1))
            .chain(posted)
            .min()
    }

    pub fn step(&mut self, forwarder: &mut MailForwarder, registry: &LocationRegistry) {
        let now = hal::clock::now_ns();
        self.receive(now, forwarder, registry);
        self.transmit(now, forwarder, registry);
    }

    /// Receiving: admit one claimed transfer at a time, hand its data to the process — or,
    /// if it moved on meanwhile, send the data after it.
    fn receive(&mut self, now: u64, forwarder: &MailForwarder, registry: &LocationRegistry) {
        loop {
            match portal::try_read_vec_as(&self.port) {
                Ok((from, transfer, data)) => match self.admitted.take() {
                    Some((claim, _)) if (claim.cluster.0, claim.transfer) == (from.0, transfer) => {
                        let here = with_table(|table| {
                            let here = table.processes.contains_key(&claim.to.0);
                            if here {
                                kernel::portal::deliver_data(table, claim.from.0, claim.to, data);
                                None
                            } else {
                                Some(data)
                            }
                        });
                        match here {
                            None => {}
                            Some(data) if forwarder.next_hop(claim.to.0, registry).is_some() => {
                                self.outgoing.push_back(PortalTransfer {
                                    from: claim.from,
                                    to: claim.to,
                                    writer: PortalWriter::Forward { attempts: 0 },
                                    source: PortalSource::Copied(data),
                                })
                            }
                            Some(_) => self.dropped += 1, // the receiver ended meanwhile
                        }
                    }
                    other => {
                        // Not the transfer admitted: its grant was revoked when it was given
                        // up, so this cannot happen short of a forged transfer.
                        log::warn!("user portal data from c{} nobody admitted: dropped", from.0);
                        self.dropped += 1;
                        self.admitted = other;
                    }
                },
                Err(NocError::WouldBlock) => break,
                // The engine failed the admitted transfer: nothing of it is delivered, and
                // its writer hears the error from its own kernel.
                Err(_) => self.admitted = None,
            }
        }
        if self
            .admitted
            .as_ref()
            .is_some_and(|(_, since)| now.saturating_sub(*since) > STALL_NS)
        {
            // Given up: its grant goes too, so a late write of it is refused by the engine
            // (its writer hears) rather than taken for a later transfer.
            if let Some((claim, _)) = self.admitted.take() {
                portal::revoke(&self.port, claim.cluster);
            }
        }
        if self.admitted.is_none() {
            if let Some(claim) = self.claims.pop_front() {
                if portal::allow_as(&self.port, claim.cluster, claim.transfer).is_ok() {
                    self.admitted = Some((claim, now));
                } else {
                    self.claims.push_front(claim);
                }
            }
        }
    }

    /// Sending: claim the next transfer, post it once the receiving kernel allows us, and end
    /// the writer's call when the engine completes it.
    fn transmit(&mut self, now: u64, forwarder: &mut MailForwarder, registry: &LocationRegistry) {
        self.abandoned.retain_mut(|(_, fence)| !fence.passed());
        if let Some(flight) = self.in_flight.take() {
            match portal::take_completion(&flight.posted) {
                Some(result) => self.finish(flight.transfer, result.map_err(userdma::errno)),
                None if now.saturating_sub(flight.since) > portal::WRITE_TIMEOUT_NS => {
                    log::warn!(
                        "user portal transfer to {}: no completion",
                        flight.transfer.to.0
                    );
                    portal::abandon(flight.posted);
                    finish_writer(&flight.transfer, Err(abi::Errno::ETIMEDOUT));
                    if let Some(again) = forward_copy(&flight.transfer) {
                        self.finish(again, Err(abi::Errno::ETIMEDOUT));
                    }
                    self.abandoned.push((flight.transfer, portal::Fence::new()));
                }
                None => {
                    self.in_flight = Some(flight);
                    return;
                }
            }
        }
        if self.sending.is_none() {
            if let Some(transfer) = self.outgoing.pop_front() {
                let id = self.next_transfer;
                self.next_transfer = id.wrapping_add(1).max(1);
                let mut data = transfer.from.0.raw().to_le_bytes().to_vec();
                data.extend_from_slice(&transfer.from.1 .0.to_le_bytes());
                data.extend_from_slice(&chip::here().0.to_le_bytes());
                data.extend_from_slice(&id.to_le_bytes());
                let claim = Mail {
                    pid: transfer.to.0,
                    port: transfer.to.1,
                    kind: MailKind::PortalClaim,
                    data,
                    from: None,
                };
                let sent = with_table(|table| kernel::envelope::send(table, claim.clone()));
                if sent.is_err() {
                    forwarder.route(claim, registry); // the home forwards it
                }
                self.sending = Some((transfer, now, id));
            }
        }
        if let Some((transfer, since, id)) = self.sending.take() {
            // Only the allowance given for this very transfer carries it.
            let allowed = chip::others()
                .filter_map(|c| portal::open(c, kernel::portal::USER_PORTAL_PORT).ok())
                .find(|tx| portal::is_allowed_as(tx, id));
            let posted = allowed.map(|tx| match &transfer.source {
                PortalSource::Pinned { pieces, .. } => portal::post_ranges_as(&tx, id, pieces),
                PortalSource::Copied(data) => portal::post_buffer_as(&tx, id, data),
            });
            match posted {
                Some(Ok(posted)) => {
                    self.in_flight = Some(InFlight {
                        transfer,
                        posted,
                        since: now,
                    })
                }
                Some(Err(NocError::WouldBlock)) | None if now.saturating_sub(since) <= STALL_NS => {
                    self.sending = Some((transfer, since, id))
                }
                Some(Err(error)) => self.finish(transfer, Err(userdma::errno(error))),
                None => {
                    log::warn!("user portal transfer to {} abandoned", transfer.to.0);
                    self.finish(transfer, Err(abi::Errno::ETIMEDOUT));
                }
            }
        }
    }
}

/// A user transfer the DMA engine carries out.
struct InFlight {
    transfer: PortalTransfer,
    posted: portal::Posted,
    since: u64,
}

impl PortalRelay {
    /// A transfer ended: its writer hears how, or — one the kernel forwards — a failed
    /// attempt is made again, until the last.
    fn finish(&mut self, transfer: PortalTransfer, result: Result<(), abi::Errno>) {
        match (transfer.writer, result) {
            (PortalWriter::Thread(_), result) => finish_writer(&transfer, result),
            (PortalWriter::Forward { .. }, Ok(())) => {}
            (PortalWriter::Forward { attempts }, Err(error)) => {
                let attempts = attempts.saturating_add(1);
                if attempts < PortalWriter::FORWARD_ATTEMPTS {
                    let writer = PortalWriter::Forward { attempts };
                    self.outgoing
                        .push_back(PortalTransfer { writer, ..transfer });
                } else {
                    log::warn!(
                        "user portal transfer from {} to {} lost: {attempts} attempts to forward it failed ({error:?})",
                        transfer.from.0,
                        transfer.to.0
                    );
                    self.dropped += 1;
                }
            }
        }
    }
}

/// A copy of a transfer the kernel forwards, to try again while the engine may still read
/// the one given up on.
fn forward_copy(transfer: &PortalTransfer) -> Option<PortalTransfer> {
    match (&transfer.writer, &transfer.source) {
        (PortalWriter::Forward { .. }, PortalSource::Copied(data)) => Some(PortalTransfer {
            from: transfer.from,
            to: transfer.to,
            writer: transfer.writer,
            source: PortalSource::Copied(data.clone()),
        }),
        _ => None,
    }
}

/// Ends the writing thread's `portal_write` (if it is still waiting): the length, or the
/// error. A transfer the kernel forwards has no one waiting.
fn finish_writer(transfer: &PortalTransfer, result: Result<(), abi::Errno>) {
    let PortalWriter::Thread(tid) = transfer.writer else {
        return;
    };
    let len = transfer.source.len();
    with_table(|table| userdma::write_done(table, (transfer.from.0, tid), result.map(|()| len)));
}
