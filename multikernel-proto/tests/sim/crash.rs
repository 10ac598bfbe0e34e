//! Crashes: a cluster leaves for good with its processes and everything it held; the
//! others hear of it from the router, later. The oracle notes which named loss case a crash
//! makes possible for each process.

use super::model::*;
use super::{trace, World};

impl World {
    /// A random live cluster leaves for good, with everything on it.
    pub(super) fn crash_one(&mut self) -> Result<(), String> {
        let Some(dead) = self.live_cluster() else {
            return Ok(());
        };
        self.faults += 1;
        trace!(self, "c{} CRASHES", dead.0);
        let copies = std::mem::take(&mut self.cluster(dead).processes);
        for (pid, info) in self.processes.iter_mut() {
            let here = copies.get(pid).map(|c| c.state);
            let excuse = match here {
                Some(State::Running) | Some(State::Frozen) if info.owner == dead => {
                    Some("L0/L1: the cluster that owned the process left")
                }
                Some(State::Prepared) if info.owner == dead => {
                    Some("L2: the destination left after the source decided commit")
                }
                _ if info.committed_by == Some(dead) => {
                    Some("L1: the source left before the destination learned the decision")
                }
                _ => None,
            };
            if excuse.is_some() {
                info.excuse = excuse;
            }
        }
        self.cluster(dead).alive = false;
        for (_, whereabouts) in self.mails.values_mut().chain(self.kills.values_mut()) {
            if matches!(*whereabouts, Whereabouts::HeldAt(c) | Whereabouts::InFlight(c) if c == dead)
            {
                *whereabouts = Whereabouts::LostWithCluster;
            }
        }
        for c in 0..self.clusters.len() {
            if self.clusters[c].alive {
                let delay = self.rng.below(500 * MS);
                let to = self.clusters[c].id;
                self.schedule(delay, Event::PeerGone { to, gone: dead });
            }
        }
        Ok(())
    }
}
