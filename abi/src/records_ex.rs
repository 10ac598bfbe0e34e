//! The long migration record of `migration_stats_ex`: every figure of a migration (issue 13's
//! metrics), readable by programs built before a field existed and by programs that know more
//! fields than the kernel has.
//!
//! Why a new call and not a longer `migration_stats` record: old programs size their buffers
//! by 64-byte records, so that layout cannot grow. The new call takes the record size the
//! caller was built with; the record begins with the 64-byte [`MigrationRecord`] unchanged and
//! carries its own size at byte 64, so each side reads the prefix both know: a shorter
//! `record_size` gets the record truncated, a longer one gets zeros past [`SIZE`].
//!
//! [`SIZE`]: MigrationRecordEx::SIZE

use crate::records::MigrationRecord;
use crate::{Errno, MigrateOptions};

/// Entries of [`MigrationRecordEx::round_pages`]: one per pre-copy round a request may take.
pub const ROUNDS_RECORDED: usize = MigrateOptions::MAX_ROUNDS as usize;

/// `flags` bit: every phase is over and every field is final (for post-copy and hybrid, once
/// the destination reported its last page; before that the post-copy fields read 0).
pub const FLAG_COMPLETE: u32 = 1 << 0;
/// `flags` bit: post-copy ended before every remote page arrived (the process ended at the
/// destination, or one of the two clusters left); the post-copy fields count what came.
pub const FLAG_CUT_SHORT: u32 = 1 << 1;
const KNOWN_FLAGS: u32 = FLAG_COMPLETE | FLAG_CUT_SHORT;

/// One `migration_stats_ex` record. Little-endian layout:
///
/// ```text
///   0..64   the migration_stats record (MigrationRecord), unchanged
///  64 u32   size of the whole record as this kernel writes it (SIZE)
///  68 u32   flags (FLAG_COMPLETE, FLAG_CUT_SHORT)
///  72 u64   precopy_pages    80 u64 precopy_bytes     pre-copy rounds, all of them
///  88 u64   stop_pages       96 u64 stop_bytes        the image sent while it was stopped
/// 104 u64   pulled_pages    112 u64 pulled_bytes      post-copy, asked for by a fault
/// 120 u64   pushed_pages    128 u64 pushed_bytes      post-copy, sent in the background
/// 136 u64   remote_pages      pages left at the source when it resumed (post-copy, hybrid)
/// 144 u64   fault_wait_ns     time its threads waited for pulled pages, summed over threads
/// 152 u64   link_bytes        bytes its daemons put on the NoC for it (docs/migration.md)
/// 160 u64   residual_ns       post-copy: resume to the last page at the destination
/// 168 u32 × 64 round_pages    pages sent in each pre-copy round (0 past `rounds`)
/// 424 u32   throttle_pct      pre-copy: the CPU throttle it had when it froze (0: none)
/// 428 u32   reserved (0)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationRecordEx {
    /// The 64-byte record `migration_stats` writes (its `pages` and `bytes` count every
    /// phase once the record is complete).
    pub base: MigrationRecord,
    /// [`FLAG_COMPLETE`]: nothing will change any more.
    pub complete: bool,
    /// [`FLAG_CUT_SHORT`]: post-copy did not bring every page.
    pub cut_short: bool,
    /// Pages sent by the pre-copy rounds while the process ran (a page sent twice counts
    /// twice); the sum of `round_pages`.
    pub precopy_pages: u64,
    /// Their bytes (4 KiB a page).
    pub precopy_bytes: u64,
    /// Pages of the image sent while the process was stopped (stop-and-copy: all of them).
    pub stop_pages: u64,
    /// That image's bytes: manifest, UArea, page index and pages.
    pub stop_bytes: u64,
    /// Post-copy pages a thread faulted on and waited for.
    pub pulled_pages: u64,
    /// Their bytes.
    pub pulled_bytes: u64,
    /// Post-copy pages sent in the background before anything asked for them.
    pub pushed_pages: u64,
    /// Their bytes.
    pub pushed_bytes: u64,
    /// Pages that stayed at the source when the process resumed (post-copy and hybrid).
    pub remote_pages: u64,
    /// Sum over threads of the time spent waiting for pulled pages.
    pub fault_wait_ns: u64,
    /// Bytes the NoC carried for this migration, as its daemons put them on the link.
    pub link_bytes: u64,
    /// Post-copy: the process resumed to its last page arriving (the residual dependency).
    pub residual_ns: u64,
    /// Pages sent in pre-copy round `i + 1`.
    pub round_pages: [u32; ROUNDS_RECORDED],
    /// Pre-copy: the per-cent CPU throttle the process had when its rounds ended (it
    /// outran the link and the request allowed throttling); 0 if it was never throttled.
    pub throttle_pct: u32,
}

/// Offsets of the fields past the base record.
mod at {
    pub const SIZE: usize = 64;
    pub const FLAGS: usize = 68;
    /// The u64 fields, in declaration order.
    pub const COUNTERS: usize = 72;
    pub const COUNTER_COUNT: usize = 12;
    pub const ROUNDS: usize = COUNTERS + 8 * COUNTER_COUNT;
    pub const THROTTLE: usize = ROUNDS + 4 * super::ROUNDS_RECORDED;
    /// Past the throttle: 4 reserved bytes, so the record stays a multiple of 8.
    pub const END: usize = THROTTLE + 8;
}

impl MigrationRecordEx {
    /// Bytes of the whole record as this kernel writes it.
    pub const SIZE: usize = at::END;
    /// The smallest `record_size` `migration_stats_ex` takes: the 64-byte base record.
    pub const MIN_RECORD_SIZE: usize = MigrationRecord::SIZE;
    /// The largest `record_size` it takes (a later record may grow up to this).
    pub const MAX_RECORD_SIZE: usize = 4096;

    /// A record with every field past `base` zero (not complete).
    pub fn from_base(base: MigrationRecord) -> MigrationRecordEx {
        MigrationRecordEx {
            base,
            complete: false,
            cut_short: false,
            precopy_pages: 0,
            precopy_bytes: 0,
            stop_pages: 0,
            stop_bytes: 0,
            pulled_pages: 0,
            pulled_bytes: 0,
            pushed_pages: 0,
            pushed_bytes: 0,
            remote_pages: 0,
            fault_wait_ns: 0,
            link_bytes: 0,
            residual_ns: 0,
            round_pages: [0; ROUNDS_RECORDED],
            throttle_pct: 0,
        }
    }

    fn counters(&self) -> [u64; at::COUNTER_COUNT] {
        [
            self.precopy_pages,
            self.precopy_bytes,
            self.stop_pages,
            self.stop_bytes,
            self.pulled_pages,
            self.pulled_bytes,
            self.pushed_pages,
            self.pushed_bytes,
            self.remote_pages,
            self.fault_wait_ns,
            self.link_bytes,
            self.residual_ns,
        ]
    }

    /// The whole record, [`Self::SIZE`] bytes.
    pub fn to_bytes(&self) -> [u8; MigrationRecordEx::SIZE] {
        let mut out = [0u8; MigrationRecordEx::SIZE];
        out[..MigrationRecord::SIZE].copy_from_slice(&self.base.to_bytes());
        out[at::SIZE..at::SIZE + 4].copy_from_slice(&(Self::SIZE as u32).to_le_bytes());
        let flags =
            (self.complete as u32 * FLAG_COMPLETE) | (self.cut_short as u32 * FLAG_CUT_SHORT);
        out[at::FLAGS..at::FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
        for (i, value) in self.counters().iter().enumerate() {
            let from = at::COUNTERS + 8 * i;
            out[from..from + 8].copy_from_slice(&value.to_le_bytes());
        }
        for (i, pages) in self.round_pages.iter().enumerate() {
            let from = at::ROUNDS + 4 * i;
            out[from..from + 4].copy_from_slice(&pages.to_le_bytes());
        }
        out[at::THROTTLE..at::THROTTLE + 4].copy_from_slice(&self.throttle_pct.to_le_bytes());
        out
    }

    /// Appends the record as a caller with records of `record_size` bytes reads it: the first
    /// `record_size` bytes, zeros past [`Self::SIZE`].
    pub fn write_sized(&self, record_size: usize, out: &mut impl Extend<u8>) {
        let bytes = self.to_bytes();
        let known = record_size.min(Self::SIZE);
        out.extend(bytes[..known].iter().copied());
        out.extend(core::iter::repeat_n(0u8, record_size - known));
    }

    /// Reads a record of any size from [`Self::MIN_RECORD_SIZE`] up (a shorter one, from an
    /// older kernel or a smaller `record_size`, reads 0 in the fields it lacks; bytes past
    /// [`Self::SIZE`] are ignored). `None` if the base record is invalid, the size field
    /// (when present) is under 64 or not a multiple of 8, or a flag bit is unknown.
    pub fn from_prefix(bytes: &[u8]) -> Option<MigrationRecordEx> {
        if bytes.len() < MigrationRecord::SIZE {
            return None;
        }
        let mut full = [0u8; MigrationRecordEx::SIZE];
        let known = bytes.len().min(Self::SIZE);
        full[..known].copy_from_slice(&bytes[..known]);
        let base: &[u8; MigrationRecord::SIZE] = full[..MigrationRecord::SIZE].try_into().ok()?;
        let base = MigrationRecord::from_bytes(base)?;
        let u32_at =
            |i: usize| u32::from_le_bytes([full[i], full[i + 1], full[i + 2], full[i + 3]]);
        let size = u32_at(at::SIZE) as usize;
        if known > at::SIZE && (size < MigrationRecord::SIZE || !size.is_multiple_of(8)) {
            return None;
        }
        let flags = u32_at(at::FLAGS);
        if flags & !KNOWN_FLAGS != 0 {
            return None;
        }
        let c = |i: usize| {
            let from = at::COUNTERS + 8 * i;
            let mut word = [0u8; 8];
            word.copy_from_slice(&full[from..from + 8]);
            u64::from_le_bytes(word)
        };
        let mut round_pages = [0u32; ROUNDS_RECORDED];
        for (i, pages) in round_pages.iter_mut().enumerate() {
            *pages = u32_at(at::ROUNDS + 4 * i);
        }
        Some(MigrationRecordEx {
            base,
            complete: flags & FLAG_COMPLETE != 0,
            cut_short: flags & FLAG_CUT_SHORT != 0,
            precopy_pages: c(0),
            precopy_bytes: c(1),
            stop_pages: c(2),
            stop_bytes: c(3),
            pulled_pages: c(4),
            pulled_bytes: c(5),
            pushed_pages: c(6),
            pushed_bytes: c(7),
            remote_pages: c(8),
            fault_wait_ns: c(9),
            link_bytes: c(10),
            residual_ns: c(11),
            round_pages,
            throttle_pct: u32_at(at::THROTTLE),
        })
    }
}

/// The argument rules of `migration_stats_ex(buf, len, record_size)`, checked before the
/// kernel reads anything: `record_size` is 64..=4096 and a multiple of 8, `buf` is 8-aligned,
/// and `len` is a whole number of records (0: just the count). Returns how many records fit.
pub fn stats_ex_fit(buf: u64, len: u64, record_size: u64) -> Result<usize, Errno> {
    let sizes =
        MigrationRecordEx::MIN_RECORD_SIZE as u64..=MigrationRecordEx::MAX_RECORD_SIZE as u64;
    if !sizes.contains(&record_size) || !record_size.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    if !buf.is_multiple_of(8) || !len.is_multiple_of(record_size) {
        return Err(Errno::EINVAL);
    }
    Ok((len / record_size) as usize)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::{ClusterId, Pid};
    use proptest::prelude::*;
    use std::vec::Vec;

    fn base(pid_local: u32) -> MigrationRecord {
        MigrationRecord {
            pid: Pid::new(ClusterId(1), pid_local).unwrap().raw(),
            source: ClusterId(1),
            destination: ClusterId(2),
            strategy: 2,
            failed: false,
            rounds: 3,
            dirty_rate: 7,
            preparation_ns: 1,
            downtime_ns: 2,
            resume_ns: 3,
            total_ns: 4,
            bytes: 5,
            pages: 6,
        }
    }

    fn record() -> impl Strategy<Value = MigrationRecordEx> {
        (
            1u32..0xFFFF,
            any::<(bool, bool)>(),
            proptest::array::uniform12(any::<u64>()),
            proptest::array::uniform32(any::<u32>()),
        )
            .prop_map(|(local, (complete, cut_short), c, rounds)| {
                let mut r = MigrationRecordEx::from_base(base(local));
                r.throttle_pct = rounds[1] % 100;
                r.complete = complete;
                r.cut_short = cut_short;
                [
                    r.precopy_pages,
                    r.precopy_bytes,
                    r.stop_pages,
                    r.stop_bytes,
                    r.pulled_pages,
                    r.pulled_bytes,
                    r.pushed_pages,
                    r.pushed_bytes,
                    r.remote_pages,
                    r.fault_wait_ns,
                    r.link_bytes,
                    r.residual_ns,
                ] = c;
                r.round_pages[..32].copy_from_slice(&rounds);
                r.round_pages[63] = rounds[0];
                r
            })
    }

    proptest! {
        #[test]
        fn round_trips(r in record()) {
            prop_assert_eq!(MigrationRecordEx::from_prefix(&r.to_bytes()), Some(r));
        }

        /// A caller built for any size reads the prefix both know, the rest zero.
        #[test]
        fn every_record_size_reads_its_prefix(r in record(), words in 8usize..=512) {
            let size = words * 8;
            let mut out = Vec::new();
            r.write_sized(size, &mut out);
            prop_assert_eq!(out.len(), size);
            let full = r.to_bytes();
            let known = size.min(MigrationRecordEx::SIZE);
            prop_assert_eq!(&out[..known], &full[..known]);
            prop_assert!(out[known..].iter().all(|b| *b == 0));
            if size >= MigrationRecordEx::SIZE {
                prop_assert_eq!(MigrationRecordEx::from_prefix(&out), Some(r));
            }
        }
    }

    #[test]
    fn the_first_64_bytes_are_the_migration_stats_record() {
        let mut r = MigrationRecordEx::from_base(base(9));
        r.pulled_pages = 11;
        r.complete = true;
        let bytes = r.to_bytes();
        assert_eq!(&bytes[..64], &r.base.to_bytes());
        assert_eq!(MigrationRecordEx::SIZE, 432);
        assert_eq!(&bytes[64..68], &432u32.to_le_bytes());
        assert_eq!(&bytes[68..72], &FLAG_COMPLETE.to_le_bytes());
        assert_eq!(&bytes[104..112], &11u64.to_le_bytes());
        // An old-size record is the base alone, everything else zero and not complete.
        let old = MigrationRecordEx::from_prefix(&bytes[..64]).unwrap();
        assert_eq!(old, MigrationRecordEx::from_base(r.base));
    }

    #[test]
    fn the_throttle_follows_the_rounds() {
        let mut r = MigrationRecordEx::from_base(base(4));
        r.throttle_pct = 40;
        r.round_pages[63] = 5;
        let bytes = r.to_bytes();
        assert_eq!(&bytes[424..428], &40u32.to_le_bytes());
        assert_eq!(&bytes[428..432], &[0; 4]);
        // A caller built for the 424-byte record reads everything but the throttle.
        let older = MigrationRecordEx::from_prefix(&bytes[..424]).unwrap();
        assert_eq!(older.throttle_pct, 0);
        assert_eq!(older.round_pages, r.round_pages);
    }

    #[test]
    fn bad_records_are_rejected() {
        let good = MigrationRecordEx::from_base(base(3)).to_bytes();
        assert!(MigrationRecordEx::from_prefix(&good[..63]).is_none());
        let mut unknown_flag = good;
        unknown_flag[68] = 4;
        assert!(MigrationRecordEx::from_prefix(&unknown_flag).is_none());
        let mut bad_size = good;
        bad_size[64..68].copy_from_slice(&60u32.to_le_bytes());
        assert!(MigrationRecordEx::from_prefix(&bad_size).is_none());
        let mut no_pid = good;
        no_pid[0..4].fill(0);
        assert!(MigrationRecordEx::from_prefix(&no_pid).is_none());
    }

    #[test]
    fn call_bounds() {
        let size = MigrationRecordEx::SIZE as u64;
        assert_eq!(stats_ex_fit(0x1000, 0, size), Ok(0));
        assert_eq!(stats_ex_fit(0x1000, 3 * size, size), Ok(3));
        assert_eq!(stats_ex_fit(0x1000, 128, 64), Ok(2));
        assert_eq!(stats_ex_fit(0x1000, 4096, 4096), Ok(1));
        // A short buffer, a partial record, a misaligned one, bad record sizes.
        assert_eq!(stats_ex_fit(0x1000, size - 8, size), Err(Errno::EINVAL));
        assert_eq!(stats_ex_fit(0x1000, size + 8, size), Err(Errno::EINVAL));
        assert_eq!(stats_ex_fit(0x1004, size, size), Err(Errno::EINVAL));
        for bad in [0, 8, 56, 63, 65, 100, 4104, u64::MAX] {
            assert_eq!(stats_ex_fit(0x1000, 4096, bad), Err(Errno::EINVAL), "{bad}");
        }
    }
}
