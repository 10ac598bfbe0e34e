//! Timing model: per-hop latency, per-link bandwidth, contention.
//!
//! Each directed link (see [`crate::routing::LinkId`]) is a resource with a
//! `busy_until` time. A message of `b` bytes occupies a link for
//! `ser = b / bandwidth`. It reserves the links of its XY path in order:
//! it may start on a link at `max(head arrival, busy_until)`, holds the link
//! for `ser`, and its head reaches the next link one hop latency after it
//! started (cut-through, like the MPPA's wormhole routers). It is delivered
//! when its tail leaves the last link: `start_last + ser`.
//!
//! Consequences, checked by the tests: without contention the delay is
//! `hops × hop_latency + ser`; contention only ever delays; and a link serves
//! messages in the order they reserved it (FIFO per link), so two messages on
//! the same path are delivered in the order they were sent.
//!
//! Times are nanoseconds on the router's clock. The model is pure and
//! deterministic: the same calls give the same answers.

use std::collections::BTreeMap;

use crate::routing::{xy_route, LinkId};
use crate::topology::Mesh;

/// Model parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelParams {
    /// Latency of one router-to-router hop, ns.
    pub hop_latency_ns: u64,
    /// Bandwidth of one directed link, bytes per second; 0 = infinite.
    pub link_bandwidth: u64,
}

impl ModelParams {
    /// MPPA-256-like: 4 bytes per cycle at 400 MHz = 1.6 GB/s per direction,
    /// ~20 cycles (50 ns) per router hop.
    pub const MPPA: ModelParams = ModelParams {
        hop_latency_ns: 50,
        link_bandwidth: 1_600_000_000,
    };
    /// No delay at all (functional testing).
    pub const IDEAL: ModelParams = ModelParams {
        hop_latency_ns: 0,
        link_bandwidth: 0,
    };

    /// Time a link is occupied by `bytes`, rounded up to whole ns.
    pub fn serialization_ns(&self, bytes: u64) -> u64 {
        if self.link_bandwidth == 0 {
            0
        } else {
            ((bytes as u128 * 1_000_000_000).div_ceil(self.link_bandwidth as u128)) as u64
        }
    }
}

/// Counters and reservation state of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub busy_until: u64,
    pub bytes: u64,
    pub messages: u64,
    pub busy_ns: u64,
}

/// The mesh's links and their reservations.
#[derive(Clone, Debug)]
pub struct LinkModel {
    mesh: Mesh,
    params: ModelParams,
    links: BTreeMap<LinkId, LinkStats>,
}

impl LinkModel {
    pub fn new(mesh: Mesh, params: ModelParams) -> Self {
        LinkModel {
            mesh,
            params,
            links: BTreeMap::new(),
        }
    }

    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    pub fn params(&self) -> &ModelParams {
        &self.params
    }

    /// Delivery time of a message with no other traffic.
    pub fn uncontended(&self, src: u16, dst: u16, bytes: u64, now: u64) -> u64 {
        now + self.mesh.manhattan(src, dst) as u64 * self.params.hop_latency_ns
            + self.params.serialization_ns(bytes)
    }

    /// Reserves the path of a `bytes`-byte message from `src` to `dst`
    /// injected at `now`; returns its delivery time.
    pub fn schedule(&mut self, src: u16, dst: u16, bytes: u64, now: u64) -> u64 {
        let ser = self.params.serialization_ns(bytes);
        let mut head = now;
        let mut last_start = now;
        for link in xy_route(&self.mesh, src, dst) {
            let st = self.links.entry(link).or_default();
            let start = head.max(st.busy_until);
            st.busy_until = start + ser;
            st.bytes += bytes;
            st.messages += 1;
            st.busy_ns += ser;
            last_start = start;
            head = start
                + if link.is_hop() {
                    self.params.hop_latency_ns
                } else {
                    0
                };
        }
        // The ejection link is last and adds no hop latency, so the tail
        // leaves it `ser` after it started there.
        last_start + ser
    }

    /// Links that carried traffic, in a stable order.
    pub fn links(&self) -> impl Iterator<Item = (LinkId, &LinkStats)> {
        self.links.iter().map(|(k, v)| (*k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uncontended_numbers() {
        let mut m = LinkModel::new(Mesh::new(4, 4).unwrap(), ModelParams::MPPA);
        // 0 → 15: 6 hops; 1600 bytes at 1.6 GB/s = 1000 ns.
        assert_eq!(m.uncontended(0, 15, 1600, 0), 6 * 50 + 1000);
        assert_eq!(m.schedule(0, 15, 1600, 0), 6 * 50 + 1000);
        // The same message again right away queues behind the first one.
        assert_eq!(m.schedule(0, 15, 1600, 0), 6 * 50 + 2000);
        let ideal = LinkModel::new(Mesh::new(4, 4).unwrap(), ModelParams::IDEAL);
        assert_eq!(ideal.uncontended(0, 15, 1 << 20, 7), 7);
    }

    fn traffic() -> impl Strategy<Value = Vec<(u16, u16, u64, u64)>> {
        proptest::collection::vec((0u16..16, 0u16..16, 0u64..70_000, 0u64..5_000), 1..60)
    }

    proptest! {
        #[test]
        fn contention_never_delivers_early(msgs in traffic()) {
            let mut m = LinkModel::new(Mesh::new(4, 4).unwrap(), ModelParams::MPPA);
            let mut now = 0;
            for (s, d, b, gap) in msgs {
                now += gap;
                let t = m.schedule(s, d, b, now);
                prop_assert!(t >= m.uncontended(s, d, b, now));
            }
        }

        #[test]
        fn same_path_is_fifo(msgs in traffic()) {
            let mut m = LinkModel::new(Mesh::new(4, 4).unwrap(), ModelParams::MPPA);
            let mut last: BTreeMap<(u16, u16), u64> = BTreeMap::new();
            let mut now = 0;
            for (s, d, b, gap) in msgs {
                now += gap;
                let t = m.schedule(s, d, b, now);
                if let Some(prev) = last.insert((s, d), t) {
                    prop_assert!(t >= prev, "{s}->{d} delivered at {t} before previous {prev}");
                }
            }
        }

        #[test]
        fn link_counters_add_up(msgs in traffic()) {
            let mut m = LinkModel::new(Mesh::new(4, 4).unwrap(), ModelParams::MPPA);
            let mut bytes_on_inject = 0;
            for &(s, d, b, _) in &msgs {
                m.schedule(s, d, b, 0);
                bytes_on_inject += b;
            }
            let inj: u64 = m.links().filter(|(l, _)| matches!(l, LinkId::Inject(_))).map(|(_, st)| st.bytes).sum();
            prop_assert_eq!(inj, bytes_on_inject);
        }
    }
}
