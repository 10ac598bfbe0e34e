//! The user portal relay: bulk transfers between processes on different clusters.
//!
//! The sending kernel queues the data and sends the receiver a *claim* (routed like mail, so
//! it finds the receiver wherever it lives). The receiving relay admits one claimed transfer
//! at a time by allowing the sender's cluster on its NoC portal, and hands what arrives to the
//! receiving process (see `kernel::portal`). One transfer is in flight per sending cluster.

use alloc::collections::VecDeque;
use kernel::envelope::{Mail, MailKind};
use kernel::noc::{portal, NocError};
use kernel::process::with_table;
use kernel::requests::{PortalClaim, PortalTransfer};

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
    /// The transfer being sent (claimed, waiting for the receiving kernel's allow).
    sending: Option<(PortalTransfer, u64)>,
    /// Transfers that arrived for a receiver that had left.
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
        self.admitted.is_some() || self.sending.is_some() || !self.outgoing.is_empty()
    }

    /// When an admitted or outgoing transfer will be abandoned if nothing moves.
    pub fn next_deadline(&self) -> Option<u64> {
        let since = [
            self.admitted.as_ref().map(|(_, since)| *since),
            self.sending.as_ref().map(|(_, since)| *since),
        ];
        since
            .into_iter()
            .flatten()
            .map(|s| s.saturating_add(STALL_NS + 1))
            .min()
    }

    pub fn step(&mut self, forwarder: &mut MailForwarder, registry: &LocationRegistry) {
        let now = hal::clock::now_ns();
        self.receive(now);
        self.transmit(now, forwarder, registry);
    }

    /// Receiving: admit one claimed transfer at a time, hand its data to the process.
    fn receive(&mut self, now: u64) {
        while let Ok((from, data)) = portal::try_read_vec(&self.port) {
            match self.admitted.take() {
                Some((claim, _)) if claim.cluster.0 == from.0 => with_table(|table| {
                    if table.processes.contains_key(&claim.to.0) {
                        kernel::portal::deliver_data(table, claim.from.0, claim.to, data);
                    } else {
                        self.dropped += 1; // the receiver left meanwhile
                    }
                }),
                other => self.admitted = other,
            }
        }
        if self
            .admitted
            .as_ref()
            .is_some_and(|(_, since)| now.saturating_sub(*since) > STALL_NS)
        {
            self.admitted = None;
        }
        if self.admitted.is_none() {
            if let Some(claim) = self.claims.pop_front() {
                if portal::allow(&self.port, claim.cluster).is_ok() {
                    self.admitted = Some((claim, now));
                } else {
                    self.claims.push_front(claim);
                }
            }
        }
    }

    /// Sending: claim the next transfer, then write it once the receiving kernel allows us.
    fn transmit(&mut self, now: u64, forwarder: &mut MailForwarder, registry: &LocationRegistry) {
        if self.sending.is_none() {
            if let Some(transfer) = self.outgoing.pop_front() {
                let mut data = transfer.from.0.raw().to_le_bytes().to_vec();
                data.extend_from_slice(&transfer.from.1 .0.to_le_bytes());
                data.extend_from_slice(&chip::here().0.to_le_bytes());
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
                self.sending = Some((transfer, now));
            }
        }
        if let Some((transfer, since)) = self.sending.take() {
            let allowed = chip::others()
                .filter_map(|c| portal::open(c, kernel::portal::USER_PORTAL_PORT).ok())
                .find(portal::is_allowed);
            match allowed {
                Some(tx) if portal::write(&tx, &transfer.data).is_ok() => {}
                _ if now.saturating_sub(since) > STALL_NS => {
                    log::warn!("user portal transfer to {} abandoned", transfer.to.0);
                }
                _ => self.sending = Some((transfer, since)),
            }
        }
    }
}
