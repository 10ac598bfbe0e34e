//! How a process migrates: the strategy and its tuning, as `migrate_with` takes them.
//!
//! The options travel as a versioned block in user memory (`size` first), so later versions
//! can add fields without a new call: the kernel reads the fields its version knows, requires
//! every byte it does not know to be zero, and rejects a block shorter than version 1.

/// The migration strategies. The number is what `migrate_with`'s block, the migration
/// record's `strategy` byte and the monitor use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Strategy {
    /// Freeze, copy everything, resume at the destination (the default; what `migrate` does).
    #[default]
    StopAndCopy = 0,
    /// Copy the pages while the process runs, re-send what it dirtied, then stop and copy
    /// the rest.
    PreCopy = 1,
}

impl Strategy {
    /// Every strategy, in number order.
    pub const ALL: [Strategy; 2] = [Strategy::StopAndCopy, Strategy::PreCopy];

    /// The strategy numbered `n`.
    pub fn from_number(n: u64) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| *s as u64 == n)
    }

    /// The name the monitor, the console and the benchmark use.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::StopAndCopy => "stop-and-copy",
            Strategy::PreCopy => "pre-copy",
        }
    }

    /// The strategy named `name` (its full name or the monitor's short one: `stop`, `pre`).
    pub fn from_name(name: &str) -> Option<Strategy> {
        match name {
            "stop" | "stop-and-copy" => Some(Strategy::StopAndCopy),
            "pre" | "pre-copy" | "precopy" => Some(Strategy::PreCopy),
            _ => None,
        }
    }
}

/// `migrate_with`'s options. Zero in a tuning field means "the default".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MigrateOptions {
    /// How the process moves.
    pub strategy: Strategy,
    /// Pre-copy: most rounds of copying while the process runs (default
    /// [`MigrateOptions::DEFAULT_MAX_ROUNDS`]).
    pub max_rounds: u32,
    /// Pre-copy: stop when a round would send at most this many dirty pages (default
    /// [`MigrateOptions::DEFAULT_STOP_PAGES`]).
    pub stop_pages: u32,
}

impl MigrateOptions {
    /// Bytes of a version-1 block: `size: u32, strategy: u32, max_rounds: u32,
    /// stop_pages: u32`, little-endian.
    pub const SIZE_V1: usize = 16;
    /// Largest block the kernel reads (later fields must be zero).
    pub const MAX_SIZE: usize = 256;
    /// Pre-copy rounds when `max_rounds` is 0.
    pub const DEFAULT_MAX_ROUNDS: u32 = 8;
    /// Pre-copy's stop threshold when `stop_pages` is 0 (256 KiB).
    pub const DEFAULT_STOP_PAGES: u32 = 64;
    /// Most rounds a caller may ask for.
    pub const MAX_ROUNDS: u32 = 64;

    /// Stop-and-copy, every tuning at its default.
    pub const STOP_AND_COPY: MigrateOptions = MigrateOptions {
        strategy: Strategy::StopAndCopy,
        max_rounds: 0,
        stop_pages: 0,
    };

    /// `strategy` with every tuning at its default.
    pub fn new(strategy: Strategy) -> MigrateOptions {
        MigrateOptions {
            strategy,
            ..MigrateOptions::default()
        }
    }

    /// The rounds this request may take (the default for 0, capped at [`Self::MAX_ROUNDS`]).
    pub fn rounds(&self) -> u32 {
        match self.max_rounds {
            0 => Self::DEFAULT_MAX_ROUNDS,
            n => n.min(Self::MAX_ROUNDS),
        }
    }

    /// The stop threshold in pages (the default for 0).
    pub fn stop_threshold(&self) -> u32 {
        match self.stop_pages {
            0 => Self::DEFAULT_STOP_PAGES,
            n => n,
        }
    }

    /// The version-1 block.
    pub fn to_bytes(&self) -> [u8; Self::SIZE_V1] {
        let mut out = [0u8; Self::SIZE_V1];
        out[0..4].copy_from_slice(&(Self::SIZE_V1 as u32).to_le_bytes());
        out[4..8].copy_from_slice(&(self.strategy as u32).to_le_bytes());
        out[8..12].copy_from_slice(&self.max_rounds.to_le_bytes());
        out[12..16].copy_from_slice(&self.stop_pages.to_le_bytes());
        out
    }

    /// Reads a block: `bytes` is the whole block as its `size` says. `None` if it is shorter
    /// than version 1, its `size` disagrees, the strategy is unknown, a round count is over
    /// [`Self::MAX_ROUNDS`], or a byte past the known fields is not zero.
    pub fn from_bytes(bytes: &[u8]) -> Option<MigrateOptions> {
        if bytes.len() < Self::SIZE_V1 || bytes.len() > Self::MAX_SIZE {
            return None;
        }
        let word = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(w)
        };
        if word(0) as usize != bytes.len() || bytes[Self::SIZE_V1..].iter().any(|b| *b != 0) {
            return None;
        }
        let options = MigrateOptions {
            strategy: Strategy::from_number(word(4) as u64)?,
            max_rounds: word(8),
            stop_pages: word(12),
        };
        (options.max_rounds <= Self::MAX_ROUNDS).then_some(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert_eq, proptest};

    #[test]
    fn names_and_numbers_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::from_number(s as u64), Some(s));
            assert_eq!(Strategy::from_name(s.name()), Some(s));
        }
        assert_eq!(Strategy::from_number(9), None);
        assert_eq!(Strategy::from_name("pre"), Some(Strategy::PreCopy));
        assert_eq!(Strategy::from_name("sideways"), None);
    }

    #[test]
    fn defaults_apply_for_zero() {
        let o = MigrateOptions::new(Strategy::PreCopy);
        assert_eq!(o.rounds(), MigrateOptions::DEFAULT_MAX_ROUNDS);
        assert_eq!(o.stop_threshold(), MigrateOptions::DEFAULT_STOP_PAGES);
    }

    #[test]
    fn bad_blocks_are_rejected() {
        let good = MigrateOptions::new(Strategy::PreCopy).to_bytes();
        assert!(MigrateOptions::from_bytes(&good).is_some());
        assert_eq!(MigrateOptions::from_bytes(&good[..12]), None);
        let mut wrong_size = good;
        wrong_size[0] = 20;
        assert_eq!(MigrateOptions::from_bytes(&wrong_size), None);
        let mut unknown = good;
        unknown[4] = 7;
        assert_eq!(MigrateOptions::from_bytes(&unknown), None);
        let mut rounds = good;
        rounds[8..12].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(MigrateOptions::from_bytes(&rounds), None);
        // A longer (later-version) block is read if its extra bytes are zero.
        let mut longer = [0u8; 24];
        longer[..16].copy_from_slice(&good);
        longer[0] = 24;
        assert!(MigrateOptions::from_bytes(&longer).is_some());
        longer[20] = 1;
        assert_eq!(MigrateOptions::from_bytes(&longer), None);
    }

    proptest! {
        #[test]
        fn blocks_round_trip(strategy in 0u64..2, rounds in 0u32..=64, stop in any::<u32>()) {
            let o = MigrateOptions {
                strategy: Strategy::from_number(strategy).unwrap(),
                max_rounds: rounds,
                stop_pages: stop,
            };
            prop_assert_eq!(MigrateOptions::from_bytes(&o.to_bytes()), Some(o));
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = MigrateOptions::from_bytes(&bytes);
        }
    }
}
