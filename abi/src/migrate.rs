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
    /// Move the execution context and resume at once at the destination; the pages follow
    /// (pulled on a fault, pushed in the background).
    PostCopy = 2,
    /// One pre-copy round while it runs, then post-copy: what that round sent and the process
    /// did not write again is not sent twice.
    Hybrid = 3,
}

impl Strategy {
    /// Every strategy, in number order.
    pub const ALL: [Strategy; 4] = [
        Strategy::StopAndCopy,
        Strategy::PreCopy,
        Strategy::PostCopy,
        Strategy::Hybrid,
    ];

    /// The strategy numbered `n`.
    pub fn from_number(n: u64) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| *s as u64 == n)
    }

    /// Offered while the process still runs (it is frozen only for the final copy).
    pub fn is_live(self) -> bool {
        matches!(self, Strategy::PreCopy | Strategy::Hybrid)
    }

    /// The name the monitor, the console and the benchmark use.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::StopAndCopy => "stop-and-copy",
            Strategy::PreCopy => "pre-copy",
            Strategy::PostCopy => "post-copy",
            Strategy::Hybrid => "hybrid",
        }
    }

    /// The strategy named `name` (its full name or the monitor's short one: `stop`, `pre`).
    pub fn from_name(name: &str) -> Option<Strategy> {
        match name {
            "stop" | "stop-and-copy" => Some(Strategy::StopAndCopy),
            "pre" | "pre-copy" | "precopy" => Some(Strategy::PreCopy),
            "post" | "post-copy" | "postcopy" => Some(Strategy::PostCopy),
            "hybrid" => Some(Strategy::Hybrid),
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
    /// Pre-copy: the most the source may throttle a process that outruns the link, in per
    /// cent of its CPU time (0: never throttle, the default; at most
    /// [`MigrateOptions::MAX_THROTTLE_PCT`]). Version 2 of the block.
    pub throttle_max_pct: u32,
    /// Pre-copy: how much the throttle rises after each round that still did not shrink the
    /// dirty set (default [`MigrateOptions::DEFAULT_THROTTLE_STEP_PCT`]). Version 2.
    pub throttle_step_pct: u32,
}

impl MigrateOptions {
    /// Bytes of a version-1 block: `size: u32, strategy: u32, max_rounds: u32,
    /// stop_pages: u32`, little-endian.
    pub const SIZE_V1: usize = 16;
    /// Bytes of a version-2 block: version 1, then `throttle_max_pct: u32,
    /// throttle_step_pct: u32`.
    pub const SIZE_V2: usize = 24;
    /// Largest block the kernel reads (later fields must be zero).
    pub const MAX_SIZE: usize = 256;
    /// Pre-copy rounds when `max_rounds` is 0.
    pub const DEFAULT_MAX_ROUNDS: u32 = 8;
    /// Pre-copy's stop threshold when `stop_pages` is 0 (256 KiB).
    pub const DEFAULT_STOP_PAGES: u32 = 64;
    /// Most rounds a caller may ask for.
    pub const MAX_ROUNDS: u32 = 64;
    /// The throttle a process gets the first time it outruns the link (QEMU's
    /// `cpu-throttle-initial`), or `throttle_max_pct` if that is lower.
    pub const INITIAL_THROTTLE_PCT: u32 = 20;
    /// The throttle's rise per round when `throttle_step_pct` is 0 (QEMU's
    /// `cpu-throttle-increment`).
    pub const DEFAULT_THROTTLE_STEP_PCT: u32 = 10;
    /// The most a process can be throttled: it always keeps 1 % of the CPU.
    pub const MAX_THROTTLE_PCT: u32 = 99;

    /// Stop-and-copy, every tuning at its default.
    pub const STOP_AND_COPY: MigrateOptions = MigrateOptions {
        strategy: Strategy::StopAndCopy,
        max_rounds: 0,
        stop_pages: 0,
        throttle_max_pct: 0,
        throttle_step_pct: 0,
    };

    /// `strategy` with every tuning at its default.
    pub fn new(strategy: Strategy) -> MigrateOptions {
        MigrateOptions {
            strategy,
            ..MigrateOptions::default()
        }
    }

    /// The rounds this request may take (the default for 0, capped at [`Self::MAX_ROUNDS`];
    /// hybrid takes one).
    pub fn rounds(&self) -> u32 {
        if self.strategy == Strategy::Hybrid {
            return 1;
        }
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

    /// The monitor's words after `migrate PID CLUSTER`: none (stop-and-copy), a strategy
    /// name, and for pre-copy optionally `throttle` (auto-converge up to
    /// [`Self::MAX_THROTTLE_PCT`]) or `throttle=N` (up to `N` %, 1..=99). `None` for anything
    /// else.
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Option<MigrateOptions> {
        let mut words = words.into_iter();
        let Some(name) = words.next() else {
            return Some(MigrateOptions::STOP_AND_COPY);
        };
        let mut options = MigrateOptions::new(Strategy::from_name(name)?);
        if let Some(throttle) = words.next() {
            if options.strategy != Strategy::PreCopy {
                return None;
            }
            options.throttle_max_pct = match throttle.strip_prefix("throttle") {
                Some("") => Self::MAX_THROTTLE_PCT,
                Some(pct) => pct.strip_prefix('=')?.parse().ok()?,
                None => return None,
            };
            if !(1..=Self::MAX_THROTTLE_PCT).contains(&options.throttle_max_pct) {
                return None;
            }
        }
        words.next().is_none().then_some(options)
    }

    /// The throttle after one more round that outran the link, from `current` (0: not
    /// throttled yet): [`Self::INITIAL_THROTTLE_PCT`] first, then up by the step, never over
    /// `throttle_max_pct`. 0 if this request never throttles.
    pub fn next_throttle(&self, current: u32) -> u32 {
        let max = self.throttle_max_pct.min(Self::MAX_THROTTLE_PCT);
        let step = match self.throttle_step_pct {
            0 => Self::DEFAULT_THROTTLE_STEP_PCT,
            n => n,
        };
        match current {
            0 => Self::INITIAL_THROTTLE_PCT.min(max),
            n => n.saturating_add(step).min(max),
        }
    }

    /// The version-2 block (a version-1 reader's fields first, unchanged).
    pub fn to_bytes(&self) -> [u8; Self::SIZE_V2] {
        let mut out = [0u8; Self::SIZE_V2];
        out[0..4].copy_from_slice(&(Self::SIZE_V2 as u32).to_le_bytes());
        out[4..8].copy_from_slice(&(self.strategy as u32).to_le_bytes());
        out[8..12].copy_from_slice(&self.max_rounds.to_le_bytes());
        out[12..16].copy_from_slice(&self.stop_pages.to_le_bytes());
        out[16..20].copy_from_slice(&self.throttle_max_pct.to_le_bytes());
        out[20..24].copy_from_slice(&self.throttle_step_pct.to_le_bytes());
        out
    }

    /// Reads a block: `bytes` is the whole block as its `size` says. A version-1 block (16 to
    /// 23 bytes) never throttles. `None` if it is shorter than version 1, its `size`
    /// disagrees, the strategy is unknown, a round count is over [`Self::MAX_ROUNDS`], a
    /// throttle percentage is over [`Self::MAX_THROTTLE_PCT`], or a byte past the known
    /// fields is not zero.
    pub fn from_bytes(bytes: &[u8]) -> Option<MigrateOptions> {
        if bytes.len() < Self::SIZE_V1 || bytes.len() > Self::MAX_SIZE {
            return None;
        }
        let word = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(w)
        };
        // A block shorter than version 2 knows only version 1's fields.
        let known = if bytes.len() >= Self::SIZE_V2 {
            Self::SIZE_V2
        } else {
            Self::SIZE_V1
        };
        if word(0) as usize != bytes.len() || bytes[known..].iter().any(|b| *b != 0) {
            return None;
        }
        let v2 = |at: usize| if known == Self::SIZE_V2 { word(at) } else { 0 };
        let options = MigrateOptions {
            strategy: Strategy::from_number(word(4) as u64)?,
            max_rounds: word(8),
            stop_pages: word(12),
            throttle_max_pct: v2(16),
            throttle_step_pct: v2(20),
        };
        let valid = options.max_rounds <= Self::MAX_ROUNDS
            && options.throttle_max_pct <= Self::MAX_THROTTLE_PCT
            && options.throttle_step_pct <= Self::MAX_THROTTLE_PCT;
        valid.then_some(options)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

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
        let mut longer = [0u8; 32];
        longer[..24].copy_from_slice(&good);
        longer[0] = 32;
        assert!(MigrateOptions::from_bytes(&longer).is_some());
        longer[28] = 1;
        assert_eq!(MigrateOptions::from_bytes(&longer), None);
    }

    /// A version-1 block, as programs built before the throttle write it.
    fn v1(strategy: u32, rounds: u32, stop: u32) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, w) in [16, strategy, rounds, stop].into_iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    #[test]
    fn a_version_1_block_means_what_it_meant() {
        let o = MigrateOptions::from_bytes(&v1(1, 5, 9)).unwrap();
        assert_eq!(
            o,
            MigrateOptions {
                strategy: Strategy::PreCopy,
                max_rounds: 5,
                stop_pages: 9,
                throttle_max_pct: 0,
                throttle_step_pct: 0,
            }
        );
        assert_eq!(o.next_throttle(0), 0, "a version-1 request never throttles");
        // 20 bytes: version 1 and four zero bytes (not yet version 2).
        let mut padded = [0u8; 20];
        padded[..16].copy_from_slice(&v1(1, 5, 9));
        padded[0] = 20;
        assert_eq!(MigrateOptions::from_bytes(&padded), Some(o));
        padded[16] = 50;
        assert_eq!(MigrateOptions::from_bytes(&padded), None);
    }

    #[test]
    fn the_throttle_is_decoded_and_bounded() {
        let mut o = MigrateOptions::new(Strategy::PreCopy);
        o.throttle_max_pct = 60;
        o.throttle_step_pct = 15;
        let bytes = o.to_bytes();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[16..20], &60u32.to_le_bytes());
        assert_eq!(&bytes[20..24], &15u32.to_le_bytes());
        assert_eq!(MigrateOptions::from_bytes(&bytes), Some(o));
        for (at, bad) in [(16, 100u32), (16, u32::MAX), (20, 100)] {
            let mut too_much = bytes;
            too_much[at..at + 4].copy_from_slice(&bad.to_le_bytes());
            assert_eq!(MigrateOptions::from_bytes(&too_much), None, "{at}: {bad}");
        }
        let mut most = bytes;
        most[16..20].copy_from_slice(&99u32.to_le_bytes());
        assert!(MigrateOptions::from_bytes(&most).is_some());
    }

    #[test]
    fn the_monitor_words() {
        let words = |line: &str| MigrateOptions::from_words(line.split_whitespace());
        assert_eq!(words(""), Some(MigrateOptions::STOP_AND_COPY));
        assert_eq!(words("pre"), Some(MigrateOptions::new(Strategy::PreCopy)));
        assert_eq!(words("post").map(|o| o.strategy), Some(Strategy::PostCopy));
        let throttled = words("pre throttle").unwrap();
        assert_eq!(throttled.strategy, Strategy::PreCopy);
        assert_eq!(throttled.throttle_max_pct, 99);
        assert_eq!(words("pre throttle=60").unwrap().throttle_max_pct, 60);
        for bad in [
            "sideways",
            "pre throttle=0",
            "pre throttle=100",
            "pre throttle=x",
            "pre throttle60",
            "pre fast",
            "post throttle",
            "stop throttle",
            "pre throttle extra",
        ] {
            assert_eq!(words(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_throttle_rises_like_auto_converge() {
        let mut o = MigrateOptions::new(Strategy::PreCopy);
        assert_eq!(o.next_throttle(0), 0);
        o.throttle_max_pct = 99;
        let mut pct = 0;
        let mut seen = std::vec::Vec::new();
        for _ in 0..12 {
            pct = o.next_throttle(pct);
            seen.push(pct);
        }
        assert_eq!(&seen[..4], &[20, 30, 40, 50]);
        assert_eq!(*seen.last().unwrap(), 99);
        o.throttle_max_pct = 15;
        assert_eq!(
            o.next_throttle(0),
            15,
            "the initial step is capped by the maximum"
        );
        o.throttle_max_pct = 50;
        o.throttle_step_pct = 25;
        assert_eq!(o.next_throttle(20), 45);
        assert_eq!(o.next_throttle(45), 50);
    }

    proptest! {
        #[test]
        fn blocks_round_trip(
            strategy in 0u64..4,
            rounds in 0u32..=64,
            stop in any::<u32>(),
            (max, step) in (0u32..=99, 0u32..=99),
        ) {
            let o = MigrateOptions {
                strategy: Strategy::from_number(strategy).unwrap(),
                max_rounds: rounds,
                stop_pages: stop,
                throttle_max_pct: max,
                throttle_step_pct: step,
            };
            prop_assert_eq!(MigrateOptions::from_bytes(&o.to_bytes()), Some(o));
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = MigrateOptions::from_bytes(&bytes);
        }
    }
}
