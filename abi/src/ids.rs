//! Id newtypes that must not be mixed up.
//!
//! A [`Pid`] is global and never changes, even when the process migrates:
//! the birth cluster sits in the high bits, a per-cluster counter in the low
//! bits, so clusters hand out pids without talking to each other.
//!
//! ```text
//!  31        24 23                           0
//! +------------+------------------------------+
//! | birth      | local counter (1 ..= 2^24-1) |
//! | cluster    |                              |
//! +------------+------------------------------+
//! ```
//!
//! Local counter 0 is never used, so `Pid(0)` is never a valid process and
//! serves as "none" in fixed-size records.

use core::fmt;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// A compute cluster (one microkernel instance, one QEMU).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(transparent))]
pub struct ClusterId(pub u16);

impl ClusterId {
    /// Clusters a [`Pid`] can name as its birth cluster.
    pub const MAX_PID_CLUSTERS: u16 = 1 << Pid::CLUSTER_BITS;

    /// Clusters a machine can have (the NoC's address space).
    pub const MAX_CLUSTERS: u16 = 32;

    /// The NoC router (noc-sim) as a message source or destination: never a cluster, one
    /// past the last possible one (its ivshmem peer id).
    pub const ROUTER: ClusterId = ClusterId(Self::MAX_CLUSTERS);

    /// The raw number.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The number as an index (into per-cluster tables).
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// A global process id: birth cluster (high 8 bits) + local counter (low 24).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(transparent))]
pub struct Pid(u32);

impl Pid {
    /// Bits of the local counter.
    pub const LOCAL_BITS: u32 = 24;
    /// Bits of the birth cluster.
    pub const CLUSTER_BITS: u32 = 32 - Self::LOCAL_BITS;
    /// Largest local counter value.
    pub const MAX_LOCAL: u32 = (1 << Self::LOCAL_BITS) - 1;

    /// Compose a pid. `None` if `birth` does not fit in [`Self::CLUSTER_BITS`],
    /// or `local` is 0 or above [`Self::MAX_LOCAL`].
    pub const fn new(birth: ClusterId, local: u32) -> Option<Pid> {
        if birth.0 >= ClusterId::MAX_PID_CLUSTERS || local == 0 || local > Self::MAX_LOCAL {
            None
        } else {
            Some(Pid(((birth.0 as u32) << Self::LOCAL_BITS) | local))
        }
    }

    /// Interpret a raw value (from a register or a record). `None` if its
    /// local counter is 0.
    pub const fn from_raw(raw: u32) -> Option<Pid> {
        if raw & Self::MAX_LOCAL == 0 {
            None
        } else {
            Some(Pid(raw))
        }
    }

    /// Interpret a syscall argument register.
    pub const fn from_arg(arg: u64) -> Option<Pid> {
        if arg > u32::MAX as u64 {
            None
        } else {
            Self::from_raw(arg as u32)
        }
    }

    /// The raw value (what `getpid` returns).
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The cluster that created the process (never changes on migration).
    pub const fn birth_cluster(self) -> ClusterId {
        ClusterId((self.0 >> Self::LOCAL_BITS) as u16)
    }

    /// The birth cluster's counter value.
    pub const fn local(self) -> u32 {
        self.0 & Self::MAX_LOCAL
    }

    /// Whether the pid is well formed (the local counter is not 0). A `Pid`
    /// made by [`Pid::new`] or [`Pid::from_raw`] always is; one deserialized
    /// from untrusted bytes may not be.
    pub const fn is_valid(self) -> bool {
        self.0 & Self::MAX_LOCAL != 0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.birth_cluster().0, self.local())
    }
}

/// A thread id, unique within its process and kept across migration.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(transparent))]
pub struct Tid(pub u32);

impl Tid {
    /// The main thread of every process.
    pub const MAIN: Tid = Tid(0);
}

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A logical NoC port. Endpoints are addressed by `(Pid, PortId)`, so an
/// endpoint follows its process when it migrates.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(transparent))]
pub struct PortId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_composes_and_decomposes() {
        for cluster in [0u16, 1, 19, 255] {
            for local in [1u32, 2, 1000, Pid::MAX_LOCAL] {
                let pid = Pid::new(ClusterId(cluster), local).unwrap();
                assert_eq!(pid.birth_cluster(), ClusterId(cluster));
                assert_eq!(pid.local(), local);
                assert!(pid.is_valid());
                assert_eq!(Pid::from_raw(pid.raw()), Some(pid));
                assert_eq!(Pid::from_arg(pid.raw() as u64), Some(pid));
            }
        }
    }

    #[test]
    fn pid_rejects_out_of_range_parts() {
        assert_eq!(Pid::new(ClusterId(256), 1), None);
        assert_eq!(Pid::new(ClusterId(0), 0), None);
        assert_eq!(Pid::new(ClusterId(0), Pid::MAX_LOCAL + 1), None);
        assert_eq!(Pid::from_raw(0), None);
        assert_eq!(Pid::from_raw(3 << Pid::LOCAL_BITS), None);
        assert_eq!(Pid::from_arg(1 << 32 | 1), None);
    }

    #[test]
    fn pids_of_different_clusters_differ() {
        let a = Pid::new(ClusterId(1), 7).unwrap();
        let b = Pid::new(ClusterId(2), 7).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn pid_fits_a_non_negative_return_value() {
        let pid = Pid::new(ClusterId(255), Pid::MAX_LOCAL).unwrap();
        assert!((pid.raw() as isize) >= 0);
    }
}
