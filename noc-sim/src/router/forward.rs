//! Ring traffic: delivering due messages into RX rings and draining TX rings.

use noc_proto::layout::RouterCounter;
use noc_proto::ring::RingError;
use noc_proto::wire::{self, ClusterId, Kind};

use super::cluster::Held;
use super::{Pending, Router};

/// Most TX records one `drain_tx` call takes from one cluster: bounded work per pass, and
/// the other clusters' rings are read in between.
pub const TX_BUDGET: usize = 256;
use crate::ivshmem;

impl Router {
    /// Moves messages until nothing more can move.
    pub fn pump(&mut self) {
        loop {
            let mut progress = false;
            // Time-sync replies first: their round trip bounds every guest's clock error.
            for c in self.clusters.iter().filter(|c| c.conn.is_some()) {
                crate::timesync::serve(&c.slice.control());
            }
            let now = self.now();
            for d in 0..self.clusters.len() {
                progress |= self.deliver_due(d, now);
            }
            for s in 0..self.clusters.len() {
                progress |= self.drain_tx(s, now);
            }
            if !progress {
                break;
            }
        }
    }

    pub(super) fn deliver_due(&mut self, d: usize, now: u64) -> bool {
        let c = &mut self.clusters[d];
        if c.conn.is_none() || c.rx_stalled {
            return false;
        }
        let rx = c.slice.rx();
        let mut delivered = 0;
        while let Some(top) = c.queue.peek() {
            if top.deliver_at > now {
                break;
            }
            match rx.try_push_record(&top.bytes) {
                Ok(()) => {
                    let len = top.bytes.len() as u64;
                    c.queue.pop();
                    c.stats.received += 1;
                    c.stats.received_bytes += len;
                    c.slice
                        .control()
                        .add_router_counter(RouterCounter::RxDelivered, 1);
                    c.slice
                        .control()
                        .add_router_counter(RouterCounter::RxBytes, len);
                    delivered += 1;
                }
                Err(RingError::Full) => {
                    c.stats.rx_full_stalls += 1;
                    c.rx_stalled = true;
                    break;
                }
                Err(e) => {
                    // The guest broke its RX indices: drop this message, count it.
                    eprintln!("noc-sim: cluster {d}: RX ring: {e}; dropping a message");
                    c.queue.pop();
                    c.stats.dropped_unreachable += 1;
                }
            }
        }
        if delivered > 0 {
            ivshmem::notify(&c.interrupts[0]);
        }
        delivered > 0
    }

    pub(super) fn drain_tx(&mut self, s: usize, now: u64) -> bool {
        if self.clusters[s].conn.is_none() {
            return false;
        }
        let mut progress = self.flush_held(s, now);
        let tx = self.clusters[s].slice.tx();
        let count = self.cfg.clusters;
        for _ in 0..TX_BUDGET {
            let rec = match tx.peek() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("noc-sim: cluster {s}: TX ring {e}; discarding its contents");
                    tx.reset_consumer();
                    self.clusters[s].stats.dropped_corrupt += 1;
                    self.clusters[s]
                        .slice
                        .control()
                        .add_router_counter(RouterCounter::TxDroppedCorrupt, 1);
                    progress = true;
                    break;
                }
            };
            let mut bytes = vec![0u8; rec.len()];
            if rec.copy_to(&mut bytes).is_none() {
                break;
            }
            // Validate the copy, never the shared memory (it may change under us).
            let mut guest_command = None;
            let mut dma_request = None;
            let (dst, port, first_byte) = match wire::decode(&bytes, count) {
                Ok((h, payload)) if h.src.0 as usize == s => {
                    if h.dst == ClusterId::ROUTER {
                        match h.kind {
                            Kind::Control => {
                                guest_command = Some(String::from_utf8_lossy(payload).into_owned())
                            }
                            Kind::DmaGrant | Kind::DmaDescriptor => {
                                dma_request = Some((h, payload.to_vec()))
                            }
                            _ => {}
                        }
                    }
                    (h.dst, h.port.0, payload.first().copied())
                }
                Ok((h, _)) => {
                    self.drop_corrupt(s, &format!("claims source {}", h.src.0));
                    tx.pop(rec);
                    progress = true;
                    continue;
                }
                Err(e) => {
                    self.drop_corrupt(s, &e.to_string());
                    tx.pop(rec);
                    progress = true;
                    continue;
                }
            };
            if dst == ClusterId::ROUTER {
                // Router services: the DMA engine, and guest fault injection when enabled.
                self.to_router += 1;
                tx.pop(rec);
                if let Some((header, payload)) = dma_request {
                    self.dma_request(s, &header, &payload, now);
                }
                if let Some(line) = guest_command.filter(|_| self.cfg.guest_faults) {
                    self.guest_command(s, &line);
                }
                progress = true;
                continue;
            }
            let d = dst.index();
            if self.clusters[d].conn.is_none() {
                self.clusters[s].stats.dropped_unreachable += 1;
                self.clusters[s]
                    .slice
                    .control()
                    .add_router_counter(RouterCounter::TxDroppedUnreachable, 1);
                tx.pop(rec);
                progress = true;
                continue;
            }
            let message = Held {
                port,
                first_byte,
                bytes,
            };
            if !self.clusters[s].held[d].is_empty()
                || self.clusters[d].queue.len() >= self.cfg.queue_limit
            {
                if self.clusters[s].held[d].len() >= self.cfg.queue_limit {
                    // Backpressure: leave it in the sender's TX ring.
                    self.clusters[s].stats.queue_full_stalls += 1;
                    break;
                }
                // Hold it at the source (after the ones already held: FIFO per pair), and
                // read on: traffic to other destinations keeps flowing.
                tx.pop(rec);
                self.clusters[s].held[d].push_back(message);
                progress = true;
                continue;
            }
            tx.pop(rec);
            progress = true;
            self.enqueue(s, d, message, now);
        }
        progress
    }

    /// Moves held messages of source `s` into their destinations' queues, as room allows.
    fn flush_held(&mut self, s: usize, now: u64) -> bool {
        let mut progress = false;
        for d in 0..self.clusters.len() {
            while !self.clusters[s].held[d].is_empty() {
                if self.clusters[d].conn.is_none() {
                    let dropped = self.clusters[s].held[d].len() as u64;
                    self.clusters[s].held[d].clear();
                    self.clusters[s].stats.dropped_unreachable += dropped;
                    progress = true;
                    break;
                }
                if self.clusters[d].queue.len() >= self.cfg.queue_limit {
                    break;
                }
                let Some(message) = self.clusters[s].held[d].pop_front() else {
                    break;
                };
                self.enqueue(s, d, message, now);
                progress = true;
            }
        }
        progress
    }

    /// Schedules a message from `s` on the link model and queues it for `d`.
    fn enqueue(&mut self, s: usize, d: usize, message: Held, now: u64) {
        let Held {
            port,
            first_byte,
            mut bytes,
        } = message;
        {
            if self.cuts.blocks(s as u16, d as u16, now) {
                // Lost as it enters the cut link; both ends can see the count.
                self.cuts.dropped += 1;
                for k in [s, d] {
                    self.clusters[k]
                        .slice
                        .control()
                        .add_router_counter(RouterCounter::CutDropped, 1);
                }
                return;
            }
            if self.faults.drop.take(s as u16, d as u16, port, first_byte) {
                self.faults.dropped += 1;
                return;
            }
            let len = bytes.len() as u64;
            let deliver_at = self.model.schedule(s as u16, d as u16, len, now);
            self.faults.damage_message(d, &mut bytes);
            let cs = &mut self.clusters[s];
            cs.stats.sent += 1;
            cs.stats.sent_bytes += len;
            cs.slice
                .control()
                .add_router_counter(RouterCounter::TxAccepted, 1);
            self.seq += 1;
            let cd = &mut self.clusters[d];
            cd.queue.push(Pending {
                deliver_at,
                seq: self.seq,
                bytes,
            });
            cd.stats.max_queued = cd.stats.max_queued.max(cd.queue.len() as u64);
        }
    }

    fn drop_corrupt(&mut self, s: usize, why: &str) {
        let c = &mut self.clusters[s];
        c.stats.dropped_corrupt += 1;
        c.slice
            .control()
            .add_router_counter(RouterCounter::TxDroppedCorrupt, 1);
        if c.stats.dropped_corrupt <= 10 {
            eprintln!("noc-sim: cluster {s}: dropped invalid message: {why}");
        }
    }
}
