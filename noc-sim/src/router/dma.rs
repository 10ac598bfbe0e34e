//! The DMA engine: the D-NoC's bulk mover (formats and validation in `noc_proto::dma`,
//! protocol in docs/noc.md §13).
//!
//! A grant is read (its range list copied out of the receiver's RAM) and checked against the
//! receiver's RAM size when it arrives, and kept keyed by (receiver, port, sender, transfer).
//! A descriptor's list is read from the sender's RAM and [`noc_proto::dma::plan`] checks it
//! against the sender's RAM and the grant. A rejection is reported to the sender only and
//! leaves the grant in place; nothing is read or written. An accepted transfer uses the
//! grant up, is copied at memcpy speed, verified (CRC-32 of source and destination ranges),
//! and completed to both sides at the time the link model gives for its bytes. A transfer
//! between clusters whose link is cut ([`super::cuts`]) uses its grant up, copies nothing and
//! completes to both sides with `LinkDown` — the kernels' transient failure, as `Corrupt`
//! is (a transfer that never completed would hold the writer for its whole timeout).

use std::collections::HashMap;

use noc_proto::dma::{self, Completion, Descriptor, Grant, ListRef, Range, Role, Status};
use noc_proto::layout::RouterCounter;
use noc_proto::wire::{self, ClusterId, Header, Kind, PortId, HEADER_LEN};

use super::commands::take;
use super::{Pending, Router};
use crate::guest_ram;

/// Engine counters (`stats` → `dma`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DmaStats {
    /// Transfers copied and verified, and their bytes.
    pub transfers: u64,
    pub bytes: u64,
    /// Grants installed, and revoked.
    pub grants: u64,
    pub revokes: u64,
    /// Descriptors or grants refused by validation (nothing touched).
    pub rejected: u64,
    /// Accepted transfers that failed: integrity check, peer gone or a cut link.
    pub failed: u64,
    /// Transfers dropped by fault injection (never completed).
    pub dropped: u64,
}

impl DmaStats {
    pub fn json(&self) -> String {
        format!(
            "{{\"transfers\":{},\"bytes\":{},\"grants\":{},\"revokes\":{},\"rejected\":{},\"failed\":{},\"dropped\":{}}}",
            self.transfers, self.bytes, self.grants, self.revokes, self.rejected, self.failed, self.dropped
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct GrantKey {
    receiver: u16,
    port: u16,
    sender: u16,
    transfer: u32,
}

struct GrantEntry {
    ranges: Vec<Range>,
    limit: u32,
}

/// Grants in force and the counters.
#[derive(Default)]
pub struct DmaEngine {
    grants: HashMap<GrantKey, GrantEntry>,
    pub stats: DmaStats,
}

impl DmaEngine {
    /// Forgets every grant to or from cluster `k` (it left).
    pub fn forget_cluster(&mut self, k: u16) {
        self.grants
            .retain(|key, _| key.receiver != k && key.sender != k);
    }
}

impl Router {
    /// A `DmaGrant` or `DmaDescriptor` from cluster `s` (decoded, source checked).
    pub(super) fn dma_request(&mut self, s: usize, header: &Header, payload: &[u8], now: u64) {
        match header.kind {
            Kind::DmaGrant => self.dma_grant(s, header.port, payload, now),
            Kind::DmaDescriptor => self.dma_descriptor(s, header.port, payload, now),
            _ => {}
        }
    }

    fn ram_size(&self, k: usize) -> Result<u64, Status> {
        self.rams
            .get(k)
            .and_then(Option::as_ref)
            .map(|r| r.size())
            .ok_or(Status::NoRam)
    }

    /// Copies a range list out of cluster `k`'s RAM (never trusted in place).
    fn read_list(&self, k: usize, list: ListRef) -> Result<Vec<Range>, Status> {
        let ram = self
            .rams
            .get(k)
            .and_then(Option::as_ref)
            .ok_or(Status::NoRam)?;
        let (addr, len) = list.bytes_in(ram.size())?;
        let mut bytes = vec![0u8; len];
        ram.read(addr, &mut bytes).ok_or(Status::BadList)?;
        (0..list.count as usize)
            .map(|i| Range::decode_at(&bytes, i).ok_or(Status::BadList))
            .collect()
    }

    fn dma_grant(&mut self, r: usize, port: PortId, payload: &[u8], now: u64) {
        let grant = Grant::decode(payload).and_then(|g| {
            if g.sender >= self.cfg.clusters {
                return Err(Status::BadMessage);
            }
            Ok(g)
        });
        let grant = match grant {
            Ok(g) => g,
            Err(status) => {
                self.dma.stats.rejected += 1;
                return self.complete(r, port, r as u16, 0, Role::Receiver, status, 0, 0, now);
            }
        };
        let key = GrantKey {
            receiver: r as u16,
            port: port.0,
            sender: grant.sender,
            transfer: grant.transfer,
        };
        if grant.is_revoke() {
            self.dma.grants.remove(&key);
            self.dma.stats.revokes += 1;
            let (peer, id) = (grant.sender, grant.transfer);
            return self.complete(
                r,
                port,
                peer,
                id,
                Role::Receiver,
                Status::Revoked,
                0,
                0,
                now,
            );
        }
        let checked = self.ram_size(r).and_then(|size| {
            let ranges = self.read_list(r, grant.list)?;
            dma::check_ranges(&ranges, size, Status::BadList)?;
            Ok(ranges)
        });
        match checked {
            Ok(ranges) => {
                self.dma.stats.grants += 1;
                let limit = grant.limit;
                self.dma.grants.insert(key, GrantEntry { ranges, limit });
            }
            Err(status) => {
                self.dma.stats.rejected += 1;
                let (peer, id) = (grant.sender, grant.transfer);
                self.complete(r, port, peer, id, Role::Receiver, status, 0, 0, now);
            }
        }
    }

    fn dma_descriptor(&mut self, s: usize, port: PortId, payload: &[u8], now: u64) {
        let descriptor = match Descriptor::decode(payload) {
            Ok(d) if d.destination < self.cfg.clusters => d,
            Ok(d) => {
                self.dma.stats.rejected += 1;
                let (peer, id) = (d.destination, d.transfer);
                return self.complete(
                    s,
                    port,
                    peer,
                    id,
                    Role::Sender,
                    Status::BadMessage,
                    0,
                    0,
                    now,
                );
            }
            Err(status) => {
                self.dma.stats.rejected += 1;
                return self.complete(s, port, 0, 0, Role::Sender, status, 0, 0, now);
            }
        };
        let d = descriptor.destination as usize;
        let id = descriptor.transfer;
        let key = GrantKey {
            receiver: d as u16,
            port: port.0,
            sender: s as u16,
            transfer: id,
        };
        let (total, steps) = match self.validate(s, &key, &descriptor) {
            Ok(planned) => planned,
            Err(status) => {
                self.dma.stats.rejected += 1;
                let peer = d as u16;
                return self.complete(s, port, peer, id, Role::Sender, status, 0, 0, now);
            }
        };
        self.dma.grants.remove(&key); // one grant, one transfer
        let at = self
            .model
            .schedule(s as u16, d as u16, total + HEADER_LEN as u64, now);
        if take(&mut self.faults.dma_drop) {
            self.dma.stats.dropped += 1;
            eprintln!(
                "noc-sim: DMA c{s} -> c{d} port {} #{id}: dropped (fault)",
                port.0
            );
            return;
        }
        let outcome = if self.cuts.blocks(s as u16, d as u16, now) {
            // A cut link: nothing copied, both sides told (a transient failure).
            self.cuts.dma_failed += 1;
            for k in [s, d] {
                self.clusters[k]
                    .slice
                    .control()
                    .add_router_counter(RouterCounter::CutDma, 1);
            }
            Err(Status::LinkDown)
        } else if take(&mut self.faults.dma_peer_gone) {
            Err(Status::PeerGone)
        } else {
            self.copy_and_verify(s, d, &steps)
        };
        let (status, crc) = match outcome {
            Ok(crc) => {
                self.dma.stats.transfers += 1;
                self.dma.stats.bytes += total;
                (Status::Ok, crc)
            }
            Err(status) => {
                self.dma.stats.failed += 1;
                eprintln!(
                    "noc-sim: DMA c{s} -> c{d} port {} #{id}: {status:?}",
                    port.0
                );
                (status, 0)
            }
        };
        let bytes = if status == Status::Ok {
            total as u32
        } else {
            0
        };
        self.complete(s, port, d as u16, id, Role::Sender, status, bytes, crc, at);
        self.complete(
            d,
            port,
            s as u16,
            id,
            Role::Receiver,
            status,
            bytes,
            crc,
            at,
        );
    }

    /// Checks a descriptor against both RAMs and the grant; returns the bytes and the steps.
    fn validate(
        &self,
        s: usize,
        key: &GrantKey,
        descriptor: &Descriptor,
    ) -> Result<(u64, Vec<dma::Step>), Status> {
        let d = key.receiver as usize;
        if self.clusters[d].conn.is_none() {
            return Err(Status::PeerGone);
        }
        let sender_ram = self.ram_size(s)?;
        let receiver_ram = self.ram_size(d)?;
        let source = self.read_list(s, descriptor.list)?;
        let grant = self.dma.grants.get(key).ok_or(Status::NoGrant)?;
        let plan = dma::plan(
            &source,
            sender_ram,
            descriptor.total,
            &grant.ranges,
            receiver_ram,
            grant.limit,
        )?;
        Ok((plan.total, plan.steps().collect()))
    }

    /// Copies the steps from `s`'s RAM to `d`'s, applies a corrupt fault, and checks the
    /// destination against the source; returns the CRC-32 of the data.
    fn copy_and_verify(&mut self, s: usize, d: usize, steps: &[dma::Step]) -> Result<u32, Status> {
        let (Some(Some(from)), Some(Some(to))) = (self.rams.get(s), self.rams.get(d)) else {
            return Err(Status::NoRam);
        };
        for step in steps {
            guest_ram::copy(from, step.src, to, step.dst, step.len).ok_or(Status::BadSource)?;
        }
        if let Some(first) = steps.first().filter(|_| take(&mut self.faults.dma_corrupt)) {
            to.flip_bit(first.dst).ok_or(Status::BadSource)?;
        }
        let mut source = crc32fast::Hasher::new();
        let mut landed = crc32fast::Hasher::new();
        for step in steps {
            source = from
                .crc(step.src, step.len, source)
                .ok_or(Status::BadSource)?;
            landed = to
                .crc(step.dst, step.len, landed)
                .ok_or(Status::BadSource)?;
        }
        let (source, landed) = (source.finalize(), landed.finalize());
        if source != landed {
            return Err(Status::Corrupt);
        }
        Ok(landed)
    }

    /// Queues a `DmaComplete` for cluster `k`, delivered at `at`.
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &mut self,
        k: usize,
        port: PortId,
        peer: u16,
        transfer: u32,
        role: Role,
        status: Status,
        bytes: u32,
        crc: u32,
        at: u64,
    ) {
        if self.clusters[k].conn.is_none() {
            return;
        }
        let completion = Completion {
            peer,
            transfer,
            role,
            status,
            bytes,
            crc,
        };
        let payload = completion.encode();
        let header = Header::new(
            Kind::DmaComplete,
            ClusterId::ROUTER,
            ClusterId(k as u16),
            port,
            payload.len() as u32,
        );
        let mut message = vec![0u8; HEADER_LEN + payload.len()];
        if wire::encode(&header, &payload, &mut message).is_err() {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        self.clusters[k].queue.push(Pending {
            deliver_at: at,
            seq,
            bytes: message,
        });
    }
}
