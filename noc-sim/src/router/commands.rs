//! Control commands and fault injection: what the control socket (and, with
//! `--guest-faults`, a guest's `Control` message to the router) may ask.

use noc_proto::wire::HEADER_LEN;

use super::Router;
use crate::control::Command;

/// Armed faults. Ring faults damage forwarded messages; DMA faults act on the next
/// descriptors that pass validation (rejected ones do not count).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Lose matching forwarded messages (as a flaky link would, without a trace).
    pub drop: crate::control::DropFilter,
    /// Messages lost so far (stats `fault_dropped`).
    pub dropped: u64,
    pub corrupt_remaining: u64,
    pub corrupt_target: Option<u16>,
    /// Messages damaged so far (stats `corrupted`).
    pub corrupted: u64,
    /// Flip one bit of the next N transfers' data after the copy.
    pub dma_corrupt: u64,
    /// Never complete the next N transfers (no copy, no completion; the grant is used up).
    pub dma_drop: u64,
    /// Fail the next N transfers as if the receiver vanished mid-copy.
    pub dma_peer_gone: u64,
}

impl Faults {
    /// Damages `bytes` (a forwarded message to `d`) if a ring fault is armed for it.
    pub fn damage_message(&mut self, d: usize, bytes: &mut [u8]) {
        if self.corrupt_remaining == 0 || self.corrupt_target.is_some_and(|t| t as usize != d) {
            return;
        }
        self.corrupt_remaining -= 1;
        self.corrupted += 1;
        // Damage after the checksum was computed: the receiver must catch it.
        let at = if bytes.len() > HEADER_LEN {
            bytes.len() - 1
        } else {
            20
        };
        if let Some(byte) = bytes.get_mut(at) {
            *byte ^= 0x01;
        }
    }
}

/// Takes one from an armed counter; true if it was armed.
pub fn take(counter: &mut u64) -> bool {
    if *counter == 0 {
        return false;
    }
    *counter -= 1;
    true
}

impl Router {
    pub(super) fn serve_control(&mut self, i: usize) {
        let Some(ctl) = self.control.as_mut() else {
            return;
        };
        let (lines, closed) = ctl.read_lines(i);
        for line in lines.iter().filter(|l| !l.is_empty()) {
            let reply = match Command::parse(line) {
                Err(e) => format!("error: {e}"),
                Ok(cmd) => self.command(cmd),
            };
            if let Some(ctl) = self.control.as_mut() {
                ctl.reply(i, &reply);
            }
        }
        if closed {
            if let Some(ctl) = self.control.as_mut() {
                ctl.conns.remove(i);
            }
        }
    }

    /// A guest's `Control` message to the router (only with `--guest-faults`): fault
    /// injection commands only.
    pub(super) fn guest_command(&mut self, s: usize, line: &str) {
        let reply = match Command::parse(line) {
            Ok(cmd) if cmd.is_fault() => self.command(cmd),
            _ => format!("error: guests may only inject faults, not {line:?}"),
        };
        eprintln!("noc-sim: cluster {s} asked `{line}`: {reply}");
    }

    /// Executes a control command; returns the reply line.
    pub fn command(&mut self, cmd: Command) -> String {
        match cmd {
            Command::Stats => self.stats_json(),
            Command::Corrupt { count, cluster } => {
                if cluster.is_some_and(|c| c >= self.cfg.clusters) {
                    return "error: no such cluster".into();
                }
                self.faults.corrupt_remaining = count;
                self.faults.corrupt_target = cluster;
                format!("ok corrupting the next {count} forwarded messages")
            }
            Command::Drop(filter) => {
                self.faults.drop = filter;
                format!(
                    "ok dropping the next {} matching messages",
                    filter.remaining
                )
            }
            Command::DmaCorrupt(n) => {
                self.faults.dma_corrupt = n;
                format!("ok corrupting the data of the next {n} DMA transfers")
            }
            Command::DmaDrop(n) => {
                self.faults.dma_drop = n;
                format!("ok dropping the next {n} DMA transfers")
            }
            Command::DmaPeerGone(n) => {
                self.faults.dma_peer_gone = n;
                format!("ok failing the next {n} DMA transfers with peer gone")
            }
            Command::Cut { a, b, ms } => {
                if a >= self.cfg.clusters || b >= self.cfg.clusters {
                    return "error: no such cluster".into();
                }
                if a == b {
                    return "error: a cluster's traffic to itself cannot be cut".into();
                }
                let now = self.now();
                self.cuts.cut(a, b, ms, now);
                if ms == 0 {
                    format!("ok link c{a}-c{b} healed")
                } else {
                    format!("ok link c{a}-c{b} cut for {ms} ms")
                }
            }
            Command::Isolate { cluster, ms } => {
                if cluster >= self.cfg.clusters {
                    return "error: no such cluster".into();
                }
                let now = self.now();
                self.cuts.isolate(cluster, ms, now);
                if ms == 0 {
                    format!("ok c{cluster} no longer isolated")
                } else {
                    format!("ok c{cluster} isolated for {ms} ms")
                }
            }
            Command::Kill(k) => {
                if k >= self.cfg.clusters || self.clusters[k as usize].conn.is_none() {
                    return format!("error: cluster {k} is not connected");
                }
                self.cluster_down(k as usize);
                format!("ok cluster {k} disconnected")
            }
            Command::Quit => {
                self.quit = true;
                "ok quitting".into()
            }
        }
    }
}
