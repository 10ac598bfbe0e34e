//! Process identity: who the process is and where it lives.

use alloc::string::String;

use abi::{ClusterId, Pid};
use serde::{Deserialize, Serialize};

/// Process-wide flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UAreaFlags(u32);

impl UAreaFlags {
    /// No flag.
    pub const EMPTY: UAreaFlags = UAreaFlags(0);
    /// Every thread is stopped at the user/kernel boundary for migration;
    /// no thread may be `Running`.
    pub const FROZEN: UAreaFlags = UAreaFlags(1 << 0);
    /// `exit` was called: the exit code is set, threads are being torn down.
    pub const EXITING: UAreaFlags = UAreaFlags(1 << 1);
    /// Every defined flag.
    pub const ALL: UAreaFlags = UAreaFlags(Self::FROZEN.0 | Self::EXITING.0);

    /// Flags from raw bits, `None` if an unknown bit is set.
    pub const fn from_bits(bits: u32) -> Option<UAreaFlags> {
        if bits & !Self::ALL.0 != 0 {
            None
        } else {
            Some(UAreaFlags(bits))
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: UAreaFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Set or clear the flags of `other`.
    pub fn set(&mut self, other: UAreaFlags, on: bool) {
        if on {
            self.0 |= other.0;
        } else {
            self.0 &= !other.0;
        }
    }

    /// Whether only defined bits are set (false only for untrusted input).
    pub const fn is_known(self) -> bool {
        self.0 & !Self::ALL.0 == 0
    }
}

/// Identity and placement of the process.
///
/// The envelope (see the crate docs) carries the magic and the format version;
/// this record carries everything else the "header" of a Nanvix UArea holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`UAreaFlags`].
    pub flags: UAreaFlags,
    /// Global pid; never changes.
    pub pid: Pid,
    /// The parent, `None` for a process started by the kernel.
    pub parent: Option<Pid>,
    /// Program name (1 ..= [`abi::PROC_NAME_MAX`] printable ASCII bytes); the
    /// destination loads `from image` segments from the image of this name.
    pub name: String,
    /// Cluster of birth (equal to `pid.birth_cluster()`).
    pub birth_cluster: ClusterId,
    /// Cluster the process runs on (the destination rewrites it on restore).
    pub current_cluster: ClusterId,
}
