//! Argument types, flags, records and limits of the syscalls.

use bitflags::bitflags;

use crate::ids::{ClusterId, Pid};

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// Most bytes of one user mailbox message. A NoC mailbox message carries 120 bytes (Nanvix);
/// the kernel's port header (destination pid and port, length) takes 8 of them.
pub const MAILBOX_PAYLOAD_SIZE: usize = 112;

/// Largest single portal transfer (Nanvix HAL: 1 MiB).
pub const PORTAL_MAX_TRANSFER: usize = 1 << 20;

/// Longest process (program) name, in bytes, without terminator.
pub const PROC_NAME_MAX: usize = 16;

/// Largest spawn argument block (NUL-separated strings), in bytes.
pub const SPAWN_ARGS_MAX: usize = 4096;

/// Most processes in one sync point.
pub const SYNC_MAX_MEMBERS: usize = 64;

/// `spawn` cluster argument: let the spawner choose.
pub const ANY_CLUSTER: u64 = u64::MAX;

/// `wait` pid argument: reap any child.
pub const ANY_CHILD: u64 = 0;

/// `futex_wait` timeout argument: wait forever.
pub const FUTEX_NO_TIMEOUT: u64 = u64::MAX;

/// Default user stack size of `thread_create` when `stack_size` is 0.
pub const DEFAULT_THREAD_STACK: usize = 64 * 1024;

/// Page size of the user address space.
pub const PAGE_SIZE: usize = 4096;

/// First address above the user half (lower canonical half of x86_64 4-level paging).
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// Where every cluster's kernel image is mapped: the kernel is a position-independent
/// executable linked at 0, and the bootloader places it here (the kernel's
/// `BootloaderConfig`), so a debugger loads its symbols with this offset
/// (`cargo xtask run --gdb` prints the command). The first address of the upper half.
pub const KERNEL_BASE: u64 = 0xFFFF_8000_0000_0000;

bitflags! {
    /// `mmap` protection.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Prot: u64 {
        /// Readable.
        const READ = 1 << 0;
        /// Writable.
        const WRITE = 1 << 1;
        /// Executable. W^X: `WRITE | EXEC` together is `EINVAL`.
        const EXEC = 1 << 2;
    }
}

bitflags! {
    /// `mmap` flags. Every mapping is private and anonymous.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MapFlags: u64 {
        /// Map exactly at `addr` (page-aligned) or fail with `EEXIST` if any
        /// page there is mapped. Without it `addr` is a hint.
        const FIXED = 1 << 0;
    }
}

/// Direction of a sync point (Nanvix HAL `sync`).
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum SyncMode {
    /// The first member signals, all the others wait (broadcast).
    OneToAll = 0,
    /// All the others signal, the first member waits (gather).
    AllToOne = 1,
}

impl TryFrom<u64> for SyncMode {
    type Error = crate::Errno;

    fn try_from(arg: u64) -> Result<Self, Self::Error> {
        match arg {
            0 => Ok(SyncMode::OneToAll),
            1 => Ok(SyncMode::AllToOne),
            _ => Err(crate::Errno::EINVAL),
        }
    }
}

/// Clocks of `clock_ns`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum ClockId {
    /// Nanoseconds since the machine started. Each cluster keeps it in step
    /// with the others so that it does not jump when a process migrates.
    Monotonic = 0,
    /// CPU time consumed by the calling process (all threads, all clusters).
    ProcessCpu = 1,
    /// CPU time consumed by the calling thread.
    ThreadCpu = 2,
}

impl TryFrom<u64> for ClockId {
    type Error = crate::Errno;

    fn try_from(arg: u64) -> Result<Self, Self::Error> {
        match arg {
            0 => Ok(ClockId::Monotonic),
            1 => Ok(ClockId::ProcessCpu),
            2 => Ok(ClockId::ThreadCpu),
            _ => Err(crate::Errno::EINVAL),
        }
    }
}

/// Process state in a [`ProcessInfo`] record.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcessState {
    /// At least one thread can run.
    Running = 0,
    /// Every thread is blocked.
    Blocked = 1,
    /// Frozen for migration.
    Frozen = 2,
    /// Exited, not yet reaped by its parent.
    Zombie = 3,
}

/// One entry of `proc_list`. Fixed size, C layout, no pointers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Global pid (raw).
    pub pid: u32,
    /// Parent's pid (raw), 0 for none.
    pub parent: u32,
    /// Cluster of birth.
    pub birth_cluster: u16,
    /// Cluster the process runs on now.
    pub current_cluster: u16,
    /// Live threads.
    pub threads: u16,
    /// A [`ProcessState`] value.
    pub state: u8,
    /// Zero.
    pub _reserved: u8,
    /// Program name, NUL-padded.
    pub name: [u8; PROC_NAME_MAX],
    /// CPU time consumed, nanoseconds.
    pub cpu_time_ns: u64,
    /// Bytes of user memory mapped.
    pub mapped_bytes: u64,
    /// Syscalls made.
    pub syscalls: u64,
    /// Times the process migrated.
    pub migrations: u32,
    /// Zero.
    pub _reserved2: u32,
}

impl ProcessInfo {
    /// Size of one record in bytes (stable: part of the ABI).
    pub const SIZE: usize = 64;

    /// An all-zero record.
    pub const ZERO: ProcessInfo = ProcessInfo {
        pid: 0,
        parent: 0,
        birth_cluster: 0,
        current_cluster: 0,
        threads: 0,
        state: 0,
        _reserved: 0,
        name: [0; PROC_NAME_MAX],
        cpu_time_ns: 0,
        mapped_bytes: 0,
        syscalls: 0,
        migrations: 0,
        _reserved2: 0,
    };

    /// The pid, if the record holds a valid one.
    pub const fn pid(&self) -> Option<Pid> {
        Pid::from_raw(self.pid)
    }

    /// The cluster the process runs on.
    pub const fn current_cluster(&self) -> ClusterId {
        ClusterId(self.current_cluster)
    }

    /// The name up to the first NUL.
    pub fn name_bytes(&self) -> &[u8] {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(PROC_NAME_MAX);
        &self.name[..end]
    }

    /// Decode the state byte.
    pub const fn state(&self) -> Option<ProcessState> {
        match self.state {
            0 => Some(ProcessState::Running),
            1 => Some(ProcessState::Blocked),
            2 => Some(ProcessState::Frozen),
            3 => Some(ProcessState::Zombie),
            _ => None,
        }
    }
}

const _: () = assert!(core::mem::size_of::<ProcessInfo>() == ProcessInfo::SIZE);
const _: () = assert!(core::mem::align_of::<ProcessInfo>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_info_name_stops_at_nul() {
        let mut info = ProcessInfo::ZERO;
        info.name[..3].copy_from_slice(b"mgs");
        assert_eq!(info.name_bytes(), b"mgs");
        info.name = [b'x'; PROC_NAME_MAX];
        assert_eq!(info.name_bytes().len(), PROC_NAME_MAX);
    }

    #[test]
    fn enum_arguments_reject_unknown_values() {
        assert_eq!(SyncMode::try_from(1), Ok(SyncMode::AllToOne));
        assert!(SyncMode::try_from(2).is_err());
        assert_eq!(ClockId::try_from(0), Ok(ClockId::Monotonic));
        assert!(ClockId::try_from(3).is_err());
    }

    #[test]
    fn flags_reject_unknown_bits() {
        assert!(Prot::from_bits(1 << 3).is_none());
        assert!(MapFlags::from_bits(1 << 1).is_none());
    }
}
