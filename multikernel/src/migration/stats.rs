//! One record per migration, after seed 000's metrics, kept by `kernel::migstats` (where the
//! `migration_stats` call and the monitor read them).

use abi::{ClusterId, Pid};
use kernel::migstats::{self, Record, Strategy};
use migration::MigrationError;

/// The phases' timestamps on the source's clock.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub started_ns: u64,
    pub frozen_ns: u64,
    /// The last byte of the image left (0 if it never did).
    pub sent_ns: u64,
}

/// Records a migration that committed.
pub fn succeeded(pid: Pid, route: (ClusterId, ClusterId), at: Timeline, bytes: u64, pages: u64) {
    let now = hal::clock::now_ns();
    migstats::record(Record {
        pid,
        source: route.0,
        destination: route.1,
        strategy: Strategy::StopAndCopy,
        preparation_ns: at.frozen_ns - at.started_ns,
        downtime_ns: now - at.frozen_ns,
        resume_ns: now - at.sent_ns,
        total_ns: now - at.started_ns,
        bytes,
        pages,
        failure: None,
    });
}

/// Records a migration that failed (the process stayed at the source).
pub fn failed(pid: Pid, route: (ClusterId, ClusterId), at: Timeline, error: &MigrationError) {
    let now = hal::clock::now_ns();
    migstats::record(Record {
        pid,
        source: route.0,
        destination: route.1,
        strategy: Strategy::StopAndCopy,
        preparation_ns: at.frozen_ns - at.started_ns,
        downtime_ns: now - at.frozen_ns,
        resume_ns: 0,
        total_ns: now - at.started_ns,
        bytes: 0,
        pages: 0,
        failure: Some(failure_name(error)),
    });
}

fn failure_name(error: &MigrationError) -> &'static str {
    match error {
        MigrationError::NoSuchProcess => "no such process",
        MigrationError::AlreadyFrozen => "already migrating",
        MigrationError::BadDestination => "bad destination",
        MigrationError::Refused => "refused by the destination",
        MigrationError::Image(_) => "bad image",
        MigrationError::OutOfMemory => "destination out of memory",
        MigrationError::LinkError => "link error or destination gone",
        MigrationError::Timeout => "timed out",
    }
}
