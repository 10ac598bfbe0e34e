//! Link cuts: a fault that loses everything between two clusters (`cut A B MS`) or between
//! one cluster and every other (`isolate C MS`) for a while, then heals on its own — the
//! transient failure post-copy must ride out (QEMU's postcopy-recover case), as opposed to
//! `kill`, which is for good and is the only fault the guests hear of (`ClusterDown`).
//!
//! "Cut A B" is about endpoints, not mesh links: noc-sim routes nothing around a failure,
//! so cutting the pair loses exactly the traffic whose source and destination are A and B
//! (either way), whatever links its XY route crosses; traffic of other pairs that shares
//! those links is unaffected. A cluster's traffic to itself is never cut.
//!
//! Time is the router's clock in nanoseconds, passed in (no sleeping in tests). A window
//! `[start, start + ms)` is in force from the command on; `MS = 0` heals at once.

/// One cut in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cut {
    /// `Pair(a, b)`: traffic between a and b; `Isolated(c)`: c's traffic with anyone.
    scope: Scope,
    /// Router time (ns) at which it heals.
    until_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Pair(u16, u16),
    Isolated(u16),
}

impl Scope {
    fn pair(a: u16, b: u16) -> Scope {
        Scope::Pair(a.min(b), a.max(b))
    }

    fn covers(self, s: u16, d: u16) -> bool {
        s != d
            && match self {
                Scope::Pair(a, b) => (s.min(d), s.max(d)) == (a, b),
                Scope::Isolated(c) => s == c || d == c,
            }
    }
}

/// Every cut in force, and what they lost.
#[derive(Clone, Debug, Default)]
pub struct Cuts {
    cuts: Vec<Cut>,
    /// Messages lost to a cut (stats `cut_dropped`).
    pub dropped: u64,
    /// DMA transfers failed by a cut (stats `dma.cut`).
    pub dma_failed: u64,
}

impl Cuts {
    /// Cuts traffic between `a` and `b` for `ms` from `now_ns` (replacing an earlier cut of
    /// the pair); `ms = 0` heals the pair now.
    pub fn cut(&mut self, a: u16, b: u16, ms: u64, now_ns: u64) {
        self.set(Scope::pair(a, b), ms, now_ns);
    }

    /// Cuts `c` off from every other cluster for `ms`; `ms = 0` ends its isolation now.
    pub fn isolate(&mut self, c: u16, ms: u64, now_ns: u64) {
        self.set(Scope::Isolated(c), ms, now_ns);
    }

    fn set(&mut self, scope: Scope, ms: u64, now_ns: u64) {
        self.cuts.retain(|cut| cut.scope != scope);
        if ms > 0 {
            let until_ns = now_ns.saturating_add(ms.saturating_mul(1_000_000));
            self.cuts.push(Cut { scope, until_ns });
        }
    }

    /// True if traffic from `s` to `d` is lost at `now_ns` (healed cuts are forgotten).
    pub fn blocks(&mut self, s: u16, d: u16, now_ns: u64) -> bool {
        self.cuts.retain(|cut| now_ns < cut.until_ns);
        self.cuts.iter().any(|cut| cut.scope.covers(s, d))
    }

    /// Cuts still in force at `now_ns`.
    pub fn active(&self, now_ns: u64) -> usize {
        self.cuts.iter().filter(|cut| now_ns < cut.until_ns).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_cut_loses_both_directions_of_its_pair_only_until_it_heals() {
        let mut cuts = Cuts::default();
        cuts.cut(2, 0, 1500, 10 * MS);
        for now in [10 * MS, 800 * MS, 1509 * MS] {
            assert!(cuts.blocks(0, 2, now), "0 -> 2 at {now}");
            assert!(cuts.blocks(2, 0, now), "2 -> 0 at {now}");
            assert!(!cuts.blocks(0, 1, now), "other pair at {now}");
            assert!(!cuts.blocks(1, 2, now), "other pair at {now}");
            assert!(!cuts.blocks(2, 2, now), "self at {now}");
        }
        assert_eq!(cuts.active(1509 * MS), 1);
        // Healed on its own at start + 1500 ms.
        assert!(!cuts.blocks(0, 2, 1510 * MS));
        assert!(!cuts.blocks(2, 0, 1510 * MS));
        assert_eq!(cuts.active(1510 * MS), 0);
        // Forgotten once healed: an earlier time does not bring it back.
        assert!(!cuts.blocks(0, 2, 20 * MS));
    }

    #[test]
    fn isolate_cuts_a_cluster_from_everyone_else() {
        let mut cuts = Cuts::default();
        cuts.isolate(1, 100, 0);
        for other in [0, 2, 3] {
            assert!(cuts.blocks(1, other, 50 * MS));
            assert!(cuts.blocks(other, 1, 50 * MS));
        }
        assert!(!cuts.blocks(0, 2, 50 * MS));
        assert!(!cuts.blocks(1, 1, 50 * MS));
        assert!(!cuts.blocks(1, 0, 100 * MS));
    }

    #[test]
    fn zero_heals_now_and_a_new_window_replaces_the_old_one() {
        let mut cuts = Cuts::default();
        cuts.cut(0, 1, 10_000, 0);
        cuts.isolate(3, 10_000, 0);
        cuts.cut(1, 0, 0, 5 * MS);
        assert!(!cuts.blocks(0, 1, 5 * MS), "cut 1 0 0 heals the pair 0-1");
        assert!(cuts.blocks(3, 0, 5 * MS), "the isolation stays");
        cuts.isolate(3, 0, 6 * MS);
        assert!(!cuts.blocks(3, 0, 6 * MS));
        // A shorter window replaces a longer one.
        cuts.cut(0, 1, 10_000, 0);
        cuts.cut(0, 1, 20, 0);
        assert!(cuts.blocks(0, 1, 19 * MS));
        assert!(!cuts.blocks(0, 1, 20 * MS));
        // Two scopes covering one pair: lost while either holds.
        cuts.cut(0, 1, 100, 0);
        cuts.isolate(1, 200, 0);
        assert!(cuts.blocks(0, 1, 150 * MS));
        assert!(!cuts.blocks(0, 1, 200 * MS));
    }

    #[test]
    fn huge_windows_saturate() {
        let mut cuts = Cuts::default();
        cuts.cut(0, 1, u64::MAX, u64::MAX - 5);
        assert!(cuts.blocks(0, 1, u64::MAX - 1));
    }
}
