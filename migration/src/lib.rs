//! Process migration: a running process leaves one cluster and carries on at another.
//!
//! The phases follow the Nanvix UArea design (seed 001) and the metrics of seed 000:
//!
//! 1. [`freeze`]: every thread stops at the user/kernel boundary. Threads blocked in a system
//!    call are rewound to re-issue it, so the UArea is the process's whole kernel state.
//! 2. [`snapshot`]: the UArea and every present page become a migration image
//!    (`uarea::image`), streamed in chunks.
//! 3. [`restore`]: the destination checks the image record by record, maps each page at the
//!    same user address on fresh frames, and schedules the threads.
//! 4. Commit: the source frees its copy only once the destination confirmed; on any failure
//!    it thaws the process unchanged. There is exactly one running copy at all times.

#![no_std]

extern crate alloc;

pub mod freeze;
pub mod local;
pub mod precopy;
pub mod restore;
pub mod snapshot;

/// Pages moved by one DMA transfer of the direct transport (1 MiB: the engine's limit, and
/// at most as many ranges as a range list holds).
pub const BATCH_PAGES: usize = 256;

use uarea::image::ImageError;

/// Why a migration did not happen. The process keeps running where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationError {
    /// No live process with that pid here.
    NoSuchProcess,
    /// The process is already being migrated.
    AlreadyFrozen,
    /// The target cluster is this one, or does not exist.
    BadDestination,
    /// The destination declined (busy, out of memory, pid already there).
    Refused,
    /// The image was damaged or inconsistent.
    Image(ImageError),
    /// No frames for the incoming pages.
    OutOfMemory,
    /// The NoC failed or the destination vanished mid-transfer.
    LinkError,
    /// No answer in time.
    Timeout,
    /// A portal write of the process was still in flight (held pages the DMA engine reads)
    /// for longer than the daemon waits (docs/migration.md).
    WriteInFlight,
}

impl From<MigrationError> for abi::Errno {
    fn from(error: MigrationError) -> abi::Errno {
        use abi::Errno;
        match error {
            MigrationError::NoSuchProcess => Errno::ESRCH,
            MigrationError::AlreadyFrozen => Errno::EBUSY,
            MigrationError::BadDestination => Errno::EINVAL,
            MigrationError::Refused => Errno::EAGAIN,
            MigrationError::Image(_) => Errno::EINVAL,
            MigrationError::OutOfMemory => Errno::ENOMEM,
            MigrationError::LinkError => Errno::EHOSTUNREACH,
            MigrationError::Timeout => Errno::ETIMEDOUT,
            MigrationError::WriteInFlight => Errno::EBUSY,
        }
    }
}
