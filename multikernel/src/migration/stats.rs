//! One record per migration, after seed 000's metrics, kept by `kernel::migstats` (where the
//! `migration_stats` calls and the monitor read them): written at the source when the
//! destination runs the process, and completed by the destination's post-copy report when
//! pages stayed behind.

use abi::{ClusterId, Pid};
use kernel::migstats::{self, Phases, PostCopyFigures, Record, Strategy};
use migration::MigrationError;
use multikernel_proto::message::PostCopyReport;

use super::precopy::PreCopyStats;

/// The phases' timestamps on the source's clock.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub started_ns: u64,
    /// When it was frozen (`None` until then: live strategies run until their final copy).
    pub frozen_ns: Option<u64>,
    /// The last byte of the image left (0 if it never did).
    pub sent_ns: u64,
}

/// How a migration went, besides its times.
#[derive(Debug, Clone, Copy)]
pub struct Moved {
    pub strategy: Strategy,
    /// Bytes and pages that crossed the NoC up to the resume.
    pub bytes: u64,
    pub pages: u64,
    /// Of those, the image sent while the process was stopped.
    pub stop: (u64, u64),
    /// Post-copy: pages left at the source.
    pub remote_pages: u64,
    /// Bytes the source's messages and image put on the NoC (pre-copy's are in `precopy`).
    pub link_bytes: u64,
    /// What pre-copy measured, if it ran.
    pub precopy: Option<PreCopyStats>,
}

/// Records a migration that committed.
pub fn succeeded(pid: Pid, route: (ClusterId, ClusterId), at: Timeline, moved: Moved) {
    record(pid, route, at, moved, None);
}

/// Records a migration that failed (the process stayed at the source), with the bytes its
/// messages and image had put on the NoC by then and the throttle pre-copy had set (lifted
/// since, but the record says the process was slowed).
pub fn failed(
    pid: Pid,
    route: (ClusterId, ClusterId),
    at: Timeline,
    (strategy, link_bytes, throttle_pct): (Strategy, u64, u32),
    error: &MigrationError,
) {
    let moved = Moved {
        strategy,
        bytes: 0,
        pages: 0,
        stop: (0, 0),
        remote_pages: 0,
        link_bytes,
        precopy: None,
    };
    let mut record = build(pid, route, at, moved, Some(failure_name(error)));
    record.phases.throttle_pct = throttle_pct;
    migstats::record(record);
}

fn record(
    pid: Pid,
    route: (ClusterId, ClusterId),
    at: Timeline,
    moved: Moved,
    failure: Option<&'static str>,
) {
    migstats::record(build(pid, route, at, moved, failure));
}

fn build(
    pid: Pid,
    route: (ClusterId, ClusterId),
    at: Timeline,
    moved: Moved,
    failure: Option<&'static str>,
) -> Record {
    let precopy = moved.precopy.unwrap_or_default();
    let now = hal::clock::now_ns();
    Record {
        pid,
        source: route.0,
        destination: route.1,
        strategy: moved.strategy,
        // A live migration that failed before its freeze never stopped the process.
        preparation_ns: at.frozen_ns.unwrap_or(now) - at.started_ns,
        downtime_ns: at.frozen_ns.map_or(0, |frozen| now - frozen),
        resume_ns: if failure.is_none() {
            now - at.sent_ns
        } else {
            0
        },
        total_ns: now - at.started_ns,
        bytes: moved.bytes,
        pages: moved.pages,
        pages_live: precopy.pages,
        rounds: precopy.rounds.min(u16::MAX as u32) as u16,
        dirty_rate: precopy.dirty_rate,
        failure,
        phases: Phases {
            // Pages still at the source: complete when the destination reports them.
            complete: failure.is_some() || moved.remote_pages == 0,
            precopy_bytes: precopy.pages * 4096,
            round_pages: precopy.round_pages,
            stop_bytes: moved.stop.0,
            stop_pages: moved.stop.1,
            remote_pages: moved.remote_pages,
            link_bytes: moved.link_bytes + precopy.link_bytes,
            throttle_pct: precopy.throttle_pct,
            ..Phases::ZERO
        },
    }
}

/// The destination's page client measured post-copy (`from`: that destination): the record
/// is complete. A report that matches no record waiting for one, or does not add up, is
/// rejected and counted by `kernel::migstats`.
pub fn postcopy_report(from: ClusterId, report: &PostCopyReport) {
    let figures = PostCopyFigures {
        pulled: report.pulled,
        pushed: report.pushed,
        fault_wait_ns: report.fault_wait_ns,
        residual_ns: report.residual_ns,
        link_bytes: report.link_bytes,
        whole: report.whole,
    };
    let _ = migstats::complete_postcopy(report.pid, from, figures, |remote| report.fits(remote));
}

/// `cluster` left: the post-copy records of migrations to it will get no report.
pub fn destination_gone(cluster: ClusterId) {
    migstats::destination_gone(cluster);
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
