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
    record(pid, route, at, (bytes, pages), None);
}

/// Records a migration that failed (the process stayed at the source).
pub fn failed(pid: Pid, route: (ClusterId, ClusterId), at: Timeline, error: &MigrationError) {
    record(pid, route, at, (0, 0), Some(failure_name(error)));
}

fn record(
    pid: Pid,
    route: (ClusterId, ClusterId),
    at: Timeline,
    (bytes, pages): (u64, u64),
    failure: Option<&'static str>,
) {
    let now = hal::clock::now_ns();
    migstats::record(Record {
        pid,
        source: route.0,
        destination: route.1,
        strategy: Strategy::StopAndCopy,
        preparation_ns: at.frozen_ns - at.started_ns,
        downtime_ns: now - at.frozen_ns,
        resume_ns: if failure.is_none() {
            now - at.sent_ns
        } else {
            0
        },
        total_ns: now - at.started_ns,
        bytes,
        pages,
        failure,
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
        MigrationError::WriteInFlight => "a portal write stayed in flight",
    }
}
