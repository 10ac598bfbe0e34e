//! The `stats` JSON and the exit summary.

use std::fmt::Write as _;

use super::Router;
use crate::routing::LinkName;

impl Router {
    /// The `stats` reply: one JSON object.
    pub fn stats_json(&self) -> String {
        let mut s = String::new();
        let p = self.model.params();
        let _ = write!(
            s,
            "{{\"elapsed_ms\":{},\"topology\":\"{}\",\"hop_latency_ns\":{},\"link_bandwidth\":{},\"corrupted\":{},\"fault_dropped\":{},\"cut_dropped\":{},\"cut_dma_failed\":{},\"cuts_active\":{},\"to_router\":{},\"dma\":{},\"clusters\":[",
            self.start.elapsed().as_millis(),
            self.cfg.mesh,
            p.hop_latency_ns,
            p.link_bandwidth,
            self.faults.corrupted,
            self.faults.dropped,
            self.cuts.dropped,
            self.cuts.dma_failed,
            self.cuts.active(self.now()),
            self.to_router,
            self.dma.stats.json()
        );
        for (i, c) in self.clusters.iter().enumerate() {
            let st = &c.stats;
            let ctl = c.slice.control();
            let _ = write!(
                s,
                "{}{{\"id\":{},\"live\":{},\"sent\":{},\"sent_bytes\":{},\"received\":{},\"received_bytes\":{},\"dropped_corrupt\":{},\"dropped_unreachable\":{},\"queued\":{},\"max_queued\":{},\"rx_full_stalls\":{},\"queue_full_stalls\":{},\"guest_rx_ok\":{},\"guest_rx_corrupt\":{}}}",
                if i > 0 { "," } else { "" },
                c.id,
                c.conn.is_some(),
                st.sent,
                st.sent_bytes,
                st.received,
                st.received_bytes,
                st.dropped_corrupt,
                st.dropped_unreachable,
                c.queue.len(),
                st.max_queued,
                st.rx_full_stalls,
                st.queue_full_stalls,
                ctl.guest_counter(noc_proto::layout::GuestCounter::RxOk),
                ctl.guest_counter(noc_proto::layout::GuestCounter::RxDroppedCorrupt),
            );
        }
        s.push_str("],\"links\":[");
        for (i, (id, l)) in self.model.links().enumerate() {
            let _ = write!(
                s,
                "{}{{\"link\":\"{}\",\"messages\":{},\"bytes\":{},\"busy_ns\":{}}}",
                if i > 0 { "," } else { "" },
                LinkName(self.model.mesh(), id),
                l.messages,
                l.bytes,
                l.busy_ns
            );
        }
        s.push_str("]}");
        s
    }

    pub(super) fn print_summary(&self) {
        println!(
            "noc-sim summary after {} ms:",
            self.start.elapsed().as_millis()
        );
        println!("  cluster      sent   sent_B  received  recv_B  corrupt  unreach  stalls");
        for c in &self.clusters {
            let st = &c.stats;
            println!(
                "  {:>7} {:>9} {:>8} {:>9} {:>7} {:>8} {:>8} {:>7}",
                c.id,
                st.sent,
                st.sent_bytes,
                st.received,
                st.received_bytes,
                st.dropped_corrupt,
                st.dropped_unreachable,
                st.rx_full_stalls + st.queue_full_stalls
            );
        }
        let mut links: Vec<_> = self.model.links().collect();
        links.sort_by_key(|(_, l)| std::cmp::Reverse(l.busy_ns));
        for (id, l) in links.iter().take(8) {
            println!(
                "  link {:<14} {:>8} msgs {:>10} B busy {:>10} ns",
                LinkName(self.model.mesh(), *id).to_string(),
                l.messages,
                l.bytes,
                l.busy_ns
            );
        }
        let d = &self.dma.stats;
        println!(
            "  dma: {} transfers, {} B, {} rejected, {} failed, {} grants",
            d.transfers, d.bytes, d.rejected, d.failed, d.grants
        );
        println!("summary: {}", self.stats_json());
    }
}
