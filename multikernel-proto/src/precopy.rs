//! Pre-copy's decision after each round, sans-IO: another round, another round with the
//! process throttled harder (QEMU's auto-converge), or stop and copy the rest. The kernel's
//! pre-copy (`multikernel/src/migration/precopy.rs`) measures and acts; the rule lives here
//! so the host can check it over every sequence of rounds.

use abi::MigrateOptions;

/// What a round left, as pre-copy measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundEnd {
    /// Rounds sent so far (this one included).
    pub rounds: u32,
    /// Pages this round sent.
    pub sent: usize,
    /// Pages the process wrote while it went (what the next round would send).
    pub dirty: usize,
    /// The process's throttle now, per cent (0: none).
    pub throttle_pct: u32,
}

/// What pre-copy does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Another round, the process as it is.
    Round,
    /// Another round, the process throttled at this per cent first.
    Throttle(u32),
    /// The rounds are over: freeze and copy the rest. `outran`: the dirty set stopped
    /// shrinking with more pages left than the stop threshold (and the throttle, if the
    /// request allows one, at its maximum).
    Stop { outran: bool },
}

/// The rule after a round (`docs/migration.md`, "Throttling"). The rounds stop at the stop
/// threshold, after `max_rounds`, or when the dirty set did not shrink; but a round that did
/// not halve it (dirtied ≥ 50 % of what it sent, QEMU's throttle trigger) raises the throttle
/// if the request allows and it is not at its maximum yet, and another round goes.
pub fn after_round(options: &MigrateOptions, end: RoundEnd) -> Next {
    let later = end.rounds > 1; // round 1 sends everything: nothing to compare with
    let outran = later && end.dirty >= end.sent;
    let slow = later && end.dirty.saturating_mul(2) >= end.sent;
    let last = end.rounds >= options.rounds();
    let small = end.dirty <= options.stop_threshold() as usize;
    if small || last {
        return Next::Stop {
            outran: outran && !small,
        };
    }
    let harder = options.next_throttle(end.throttle_pct);
    if slow && harder > end.throttle_pct {
        return Next::Throttle(harder);
    }
    if outran {
        Next::Stop { outran: true }
    } else {
        Next::Round
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::Strategy;
    use proptest::prelude::*;

    fn options(max: u32, step: u32) -> MigrateOptions {
        MigrateOptions {
            throttle_max_pct: max,
            throttle_step_pct: step,
            ..MigrateOptions::new(Strategy::PreCopy)
        }
    }

    fn end(rounds: u32, sent: usize, dirty: usize, throttle_pct: u32) -> RoundEnd {
        RoundEnd {
            rounds,
            sent,
            dirty,
            throttle_pct,
        }
    }

    #[test]
    fn without_throttling_the_rule_is_unchanged() {
        let o = MigrateOptions::new(Strategy::PreCopy);
        assert_eq!(after_round(&o, end(1, 4000, 4000, 0)), Next::Round);
        assert_eq!(after_round(&o, end(2, 4000, 3000, 0)), Next::Round);
        assert_eq!(
            after_round(&o, end(3, 3000, 3000, 0)),
            Next::Stop { outran: true }
        );
        assert_eq!(
            after_round(&o, end(3, 3000, 64, 0)),
            Next::Stop { outran: false }
        );
        assert_eq!(
            after_round(&o, end(8, 3000, 2000, 0)),
            Next::Stop { outran: false }
        );
    }

    #[test]
    fn a_round_that_does_not_halve_throttles_harder_up_to_the_maximum() {
        let o = options(99, 40);
        assert_eq!(after_round(&o, end(2, 1000, 600, 0)), Next::Throttle(20));
        assert_eq!(after_round(&o, end(3, 600, 700, 20)), Next::Throttle(60));
        assert_eq!(after_round(&o, end(4, 700, 400, 60)), Next::Throttle(99));
        // At the maximum: a round that shrinks goes on, one that does not ends outrun.
        assert_eq!(after_round(&o, end(5, 400, 300, 99)), Next::Round);
        assert_eq!(
            after_round(&o, end(6, 300, 300, 99)),
            Next::Stop { outran: true }
        );
        // Halving is converging: no throttle.
        assert_eq!(after_round(&o, end(2, 1000, 400, 0)), Next::Round);
        // Not on the last round (the process freezes next anyway).
        assert_eq!(
            after_round(&o, end(8, 1000, 1000, 20)),
            Next::Stop { outran: true }
        );
    }

    proptest! {
        /// Whatever the process does, the throttle only rises, never past the maximum, and
        /// the rounds end within `max_rounds`.
        #[test]
        fn the_throttle_is_bounded_and_the_rounds_end(
            max in 0u32..=99,
            step in 0u32..=99,
            rounds in 0u32..=64,
            dirty in proptest::collection::vec(0usize..5000, 64),
        ) {
            let o = MigrateOptions { max_rounds: rounds, ..options(max, step) };
            let (mut sent, mut pct) = (5000usize, 0u32);
            let mut stopped = false;
            for (i, dirty) in dirty.into_iter().enumerate() {
                match after_round(&o, end(i as u32 + 1, sent, dirty, pct)) {
                    Next::Round => {}
                    Next::Throttle(next) => {
                        prop_assert!(next > pct && next <= max);
                        pct = next;
                    }
                    Next::Stop { .. } => {
                        prop_assert!((i as u32) < o.rounds());
                        stopped = true;
                        break;
                    }
                }
                sent = dirty;
            }
            prop_assert!(stopped);
        }
    }
}
