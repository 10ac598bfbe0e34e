//! The byte layouts of the records the kernel writes into user buffers and the clusters
//! exchange: `proc_list` entries ([`ProcessInfo`]) and `migration_stats` entries
//! ([`MigrationRecord`]). Fixed little-endian layouts, defined once here for the kernel, the
//! daemons and userland, and pinned by round-trip tests.

use crate::types::ProcessInfo;
use crate::{ClusterId, Pid};

/// Reads a little-endian integer of `N` bytes at `at` (the caller guarantees the bounds).
fn le<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

impl ProcessInfo {
    /// The record exactly as its `#[repr(C)]` layout (64 bytes, little-endian): what
    /// `proc_list` writes and what clusters exchange for `ps all`.
    pub fn to_bytes(&self) -> [u8; ProcessInfo::SIZE] {
        let mut out = [0u8; ProcessInfo::SIZE];
        out[0..4].copy_from_slice(&self.pid.to_le_bytes());
        out[4..8].copy_from_slice(&self.parent.to_le_bytes());
        out[8..10].copy_from_slice(&self.birth_cluster.to_le_bytes());
        out[10..12].copy_from_slice(&self.current_cluster.to_le_bytes());
        out[12..14].copy_from_slice(&self.threads.to_le_bytes());
        out[14] = self.state;
        out[15] = self._reserved;
        out[16..32].copy_from_slice(&self.name);
        out[32..40].copy_from_slice(&self.cpu_time_ns.to_le_bytes());
        out[40..48].copy_from_slice(&self.mapped_bytes.to_le_bytes());
        out[48..56].copy_from_slice(&self.syscalls.to_le_bytes());
        out[56..60].copy_from_slice(&self.migrations.to_le_bytes());
        out[60..64].copy_from_slice(&self._reserved2.to_le_bytes());
        out
    }

    /// The inverse of [`ProcessInfo::to_bytes`].
    pub fn from_bytes(bytes: &[u8; ProcessInfo::SIZE]) -> ProcessInfo {
        ProcessInfo {
            pid: u32::from_le_bytes(le(bytes, 0)),
            parent: u32::from_le_bytes(le(bytes, 4)),
            birth_cluster: u16::from_le_bytes(le(bytes, 8)),
            current_cluster: u16::from_le_bytes(le(bytes, 10)),
            threads: u16::from_le_bytes(le(bytes, 12)),
            state: bytes[14],
            _reserved: bytes[15],
            name: le(bytes, 16),
            cpu_time_ns: u64::from_le_bytes(le(bytes, 32)),
            mapped_bytes: u64::from_le_bytes(le(bytes, 40)),
            syscalls: u64::from_le_bytes(le(bytes, 48)),
            migrations: u32::from_le_bytes(le(bytes, 56)),
            _reserved2: u32::from_le_bytes(le(bytes, 60)),
        }
    }
}

/// One `migration_stats` entry: a migration that left this cluster, timed on its clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationRecord {
    /// The process (raw pid).
    pub pid: u32,
    /// Where it left from.
    pub source: ClusterId,
    /// Where it was going.
    pub destination: ClusterId,
    /// How: a [`crate::Strategy`] number (0 stop-and-copy, 1 pre-copy).
    pub strategy: u8,
    /// True if it failed (the process stayed at the source).
    pub failed: bool,
    /// Pre-copy rounds while the process ran (0 for stop-and-copy).
    pub rounds: u16,
    /// Pages the process dirtied per second during pre-copy (saturating; 0 for
    /// stop-and-copy).
    pub dirty_rate: u32,
    /// Request to freeze.
    pub preparation_ns: u64,
    /// Freeze to resume: the process ran nowhere.
    pub downtime_ns: u64,
    /// Last byte sent to the destination's confirmation.
    pub resume_ns: u64,
    /// Request to the end.
    pub total_ns: u64,
    /// Bytes of image sent.
    pub bytes: u64,
    /// Pages sent.
    pub pages: u64,
}

impl MigrationRecord {
    /// Size of one record in bytes (stable: part of the ABI).
    pub const SIZE: usize = 64;

    /// The layout `migration_stats` writes (see `docs/abi.md`).
    pub fn to_bytes(&self) -> [u8; MigrationRecord::SIZE] {
        let mut out = [0u8; MigrationRecord::SIZE];
        out[0..4].copy_from_slice(&self.pid.to_le_bytes());
        out[4..6].copy_from_slice(&self.source.0.to_le_bytes());
        out[6..8].copy_from_slice(&self.destination.0.to_le_bytes());
        out[8] = self.strategy;
        out[9] = self.failed as u8;
        out[10..12].copy_from_slice(&self.rounds.to_le_bytes());
        out[12..16].copy_from_slice(&self.dirty_rate.to_le_bytes());
        let times = [
            self.preparation_ns,
            self.downtime_ns,
            self.resume_ns,
            self.total_ns,
            self.bytes,
            self.pages,
        ];
        for (i, value) in times.iter().enumerate() {
            out[16 + 8 * i..24 + 8 * i].copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// The inverse of [`MigrationRecord::to_bytes`]; `None` if a field is out of range
    /// (a failed flag other than 0 or 1, or no valid pid).
    pub fn from_bytes(bytes: &[u8; MigrationRecord::SIZE]) -> Option<MigrationRecord> {
        let pid = u32::from_le_bytes(le(bytes, 0));
        Pid::from_raw(pid)?;
        if bytes[9] > 1 {
            return None;
        }
        let at = |i: usize| u64::from_le_bytes(le(bytes, 16 + 8 * i));
        Some(MigrationRecord {
            pid,
            source: ClusterId(u16::from_le_bytes(le(bytes, 4))),
            destination: ClusterId(u16::from_le_bytes(le(bytes, 6))),
            strategy: bytes[8],
            failed: bytes[9] == 1,
            rounds: u16::from_le_bytes(le(bytes, 10)),
            dirty_rate: u32::from_le_bytes(le(bytes, 12)),
            preparation_ns: at(0),
            downtime_ns: at(1),
            resume_ns: at(2),
            total_ns: at(3),
            bytes: at(4),
            pages: at(5),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn process_info_round_trips(bytes in proptest::collection::vec(any::<u8>(), 64)) {
            let bytes: [u8; 64] = bytes.try_into().unwrap();
            let info = ProcessInfo::from_bytes(&bytes);
            prop_assert_eq!(info.to_bytes(), bytes);
            prop_assert_eq!(ProcessInfo::from_bytes(&info.to_bytes()), info);
        }

        #[test]
        fn migration_record_round_trips(
            local in 1u32..0xFFFF, cluster in 0u16..16, source in any::<u16>(),
            destination in any::<u16>(), strategy in any::<u8>(), failed in any::<bool>(),
            rounds in any::<u16>(), dirty_rate in any::<u32>(),
            times in proptest::array::uniform6(any::<u64>()),
        ) {
            let pid = Pid::new(ClusterId(cluster), local).unwrap().raw();
            let record = MigrationRecord {
                pid, source: ClusterId(source), destination: ClusterId(destination), strategy,
                failed, rounds, dirty_rate, preparation_ns: times[0], downtime_ns: times[1], resume_ns: times[2],
                total_ns: times[3], bytes: times[4], pages: times[5],
            };
            prop_assert_eq!(MigrationRecord::from_bytes(&record.to_bytes()), Some(record));
        }
    }

    #[test]
    fn process_info_layout_matches_the_abi() {
        let mut info = ProcessInfo::ZERO;
        info.pid = 0x0102_0304;
        info.state = 3;
        info.migrations = 7;
        let bytes = info.to_bytes();
        assert_eq!(&bytes[0..4], &[4, 3, 2, 1]);
        assert_eq!(bytes[14], 3);
        assert_eq!(&bytes[56..60], &[7, 0, 0, 0]);
    }

    #[test]
    fn migration_record_rejects_bad_fields() {
        let pid = Pid::new(ClusterId(1), 2).unwrap().raw();
        let good = MigrationRecord {
            pid,
            source: ClusterId(1),
            destination: ClusterId(2),
            strategy: 0,
            failed: false,
            rounds: 0,
            dirty_rate: 0,
            preparation_ns: 1,
            downtime_ns: 2,
            resume_ns: 3,
            total_ns: 4,
            bytes: 5,
            pages: 6,
        }
        .to_bytes();
        let mut bad_flag = good;
        bad_flag[9] = 2;
        assert_eq!(MigrationRecord::from_bytes(&bad_flag), None);
        let mut no_pid = good;
        no_pid[0..4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(MigrationRecord::from_bytes(&no_pid), None);
    }
}
