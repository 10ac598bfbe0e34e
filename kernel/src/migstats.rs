//! Per-migration records, after seed 000's metrics: the migration daemon adds one per
//! migration (success or failure), the `migration_stats` calls and the monitor read them.
//!
//! A post-copy (or hybrid) record is written when the process resumes at the destination,
//! before its last pages arrive; the destination's page client reports the rest later and
//! [`complete_postcopy`] fills it in. Every record is logged once, as one line, when it is
//! complete.

use abi::records_ex::ROUNDS_RECORDED;
use abi::{ClusterId, MigrationRecordEx, Pid};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

pub use abi::Strategy;

/// One migration, timed on the source's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub pid: Pid,
    pub source: ClusterId,
    pub destination: ClusterId,
    pub strategy: Strategy,
    /// Request to freeze: checks, console flush, snapshot setup.
    pub preparation_ns: u64,
    /// Freeze to resume: the process ran nowhere.
    pub downtime_ns: u64,
    /// Last byte sent to the destination's confirmation that the threads are runnable.
    pub resume_ns: u64,
    /// Request to commit.
    pub total_ns: u64,
    /// Bytes sent over every phase (post-copy's once the record is complete).
    pub bytes: u64,
    /// Pages sent, over every phase (a page sent twice counts twice; post-copy's once the
    /// record is complete).
    pub pages: u64,
    /// Of `pages`, those sent while the process ran (pre-copy rounds).
    pub pages_live: u64,
    /// Pre-copy rounds while it ran.
    pub rounds: u16,
    /// Pages it dirtied per second during pre-copy.
    pub dirty_rate: u32,
    /// `None` if it succeeded.
    pub failure: Option<&'static str>,
    /// The figures by phase.
    pub phases: Phases,
}

/// What each phase moved, and the figures only the end of post-copy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// Every figure is final.
    pub complete: bool,
    /// Post-copy ended before every remote page arrived.
    pub cut_short: bool,
    pub precopy_bytes: u64,
    /// Pages in each pre-copy round.
    pub round_pages: [u32; ROUNDS_RECORDED],
    /// The image sent while the process was stopped.
    pub stop_pages: u64,
    pub stop_bytes: u64,
    /// Pages left at the source when it resumed (post-copy, hybrid).
    pub remote_pages: u64,
    pub postcopy: PostCopyFigures,
    /// Bytes the daemons put on the NoC for this migration (both ends, once complete).
    pub link_bytes: u64,
    /// Pre-copy: the CPU throttle (per cent) the process had when its rounds ended.
    pub throttle_pct: u32,
}

impl Phases {
    pub const ZERO: Phases = Phases {
        complete: false,
        cut_short: false,
        precopy_bytes: 0,
        round_pages: [0; ROUNDS_RECORDED],
        stop_pages: 0,
        stop_bytes: 0,
        remote_pages: 0,
        postcopy: PostCopyFigures::ZERO,
        link_bytes: 0,
        throttle_pct: 0,
    };
}

/// What the destination's page client measured, reported when post-copy ended there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostCopyFigures {
    /// Pages a thread faulted on and waited for.
    pub pulled: u64,
    /// Pages that came before anything asked.
    pub pushed: u64,
    /// Time threads waited for pulled pages, summed.
    pub fault_wait_ns: u64,
    /// Resume to the last page.
    pub residual_ns: u64,
    /// Bytes post-copy put on the NoC (pieces, pages, requests, its report).
    pub link_bytes: u64,
    /// Every remote page arrived.
    pub whole: bool,
}

impl PostCopyFigures {
    pub const ZERO: PostCopyFigures = PostCopyFigures {
        pulled: 0,
        pushed: 0,
        fault_wait_ns: 0,
        residual_ns: 0,
        link_bytes: 0,
        whole: false,
    };
}

/// Why a post-copy report did not complete a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// No post-copy record of that process, to that cluster, waits for one.
    NoRecord,
    /// It does not add up (more pages than stayed remote).
    Inconsistent,
}

/// Bytes of one record as `migration_stats` writes it (see `docs/abi.md`).
pub const RECORD_LEN: usize = abi::MigrationRecord::SIZE;

impl Record {
    /// The 64-byte layout of `migration_stats`.
    pub fn base(&self) -> abi::MigrationRecord {
        abi::MigrationRecord {
            pid: self.pid.raw(),
            source: self.source,
            destination: self.destination,
            strategy: self.strategy as u8,
            failed: self.failure.is_some(),
            rounds: self.rounds,
            dirty_rate: self.dirty_rate,
            preparation_ns: self.preparation_ns,
            downtime_ns: self.downtime_ns,
            resume_ns: self.resume_ns,
            total_ns: self.total_ns,
            bytes: self.bytes,
            pages: self.pages,
        }
    }

    /// The fixed little-endian layout of `migration_stats`.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        self.base().to_bytes()
    }

    /// The long record of `migration_stats_ex`.
    pub fn extended(&self) -> MigrationRecordEx {
        let p = &self.phases;
        let post = &p.postcopy;
        MigrationRecordEx {
            complete: p.complete,
            cut_short: p.cut_short,
            precopy_pages: self.pages_live,
            precopy_bytes: p.precopy_bytes,
            stop_pages: p.stop_pages,
            stop_bytes: p.stop_bytes,
            pulled_pages: post.pulled,
            pulled_bytes: post.pulled * PAGE,
            pushed_pages: post.pushed,
            pushed_bytes: post.pushed * PAGE,
            remote_pages: p.remote_pages,
            fault_wait_ns: post.fault_wait_ns,
            link_bytes: p.link_bytes,
            residual_ns: post.residual_ns,
            round_pages: p.round_pages,
            throttle_pct: p.throttle_pct,
            ..MigrationRecordEx::from_base(self.base())
        }
    }

    /// A post-copy strategy that has not heard from its destination yet.
    fn awaits_postcopy(&self) -> bool {
        !self.phases.complete
            && self.failure.is_none()
            && matches!(self.strategy, Strategy::PostCopy | Strategy::Hybrid)
    }

    /// Fills in what the destination measured; `pages` and `bytes` then count every phase.
    fn finish_postcopy(&mut self, figures: PostCopyFigures) {
        let moved = figures.pulled + figures.pushed;
        self.pages += moved;
        self.bytes += moved * PAGE;
        self.phases.postcopy = figures;
        self.phases.link_bytes += figures.link_bytes;
        self.phases.cut_short = !figures.whole;
        self.phases.complete = true;
    }
}

const PAGE: u64 = 4096;
const HISTORY: usize = 256;
static RECORDS: Mutex<VecDeque<Record>> = Mutex::new(VecDeque::new());
static REJECTED_REPORTS: AtomicU64 = AtomicU64::new(0);

/// Keeps a record, and logs it if it is complete.
pub fn record(record: Record) {
    if record.phases.complete {
        log_record(&record);
    }
    hal::cpu::without_interrupts(|| {
        let mut records = RECORDS.lock();
        if records.len() == HISTORY {
            records.pop_front();
        }
        records.push_back(record);
    });
}

/// Completes the newest post-copy record of `pid` that went to `destination` with what its
/// page client measured. A report that matches no such record, or that `fits` refuses given
/// the record's remote pages, is rejected and counted ([`rejected_reports`]).
pub fn complete_postcopy(
    pid: Pid,
    destination: ClusterId,
    figures: PostCopyFigures,
    fits: impl FnOnce(u64) -> bool,
) -> Result<(), Rejected> {
    let result = hal::cpu::without_interrupts(|| {
        let mut records = RECORDS.lock();
        let record = records
            .iter_mut()
            .rev()
            .find(|r| r.pid == pid && r.destination == destination && r.awaits_postcopy())
            .ok_or(Rejected::NoRecord)?;
        if !fits(record.phases.remote_pages) {
            return Err(Rejected::Inconsistent);
        }
        record.finish_postcopy(figures);
        Ok(*record)
    });
    match result {
        Ok(record) => {
            log_record(&record);
            Ok(())
        }
        Err(why) => {
            REJECTED_REPORTS.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "post-copy report of {pid} from c{}: rejected ({why:?})",
                destination.0
            );
            Err(why)
        }
    }
}

/// `destination` left: its post-copy records will hear nothing more; they are completed with
/// what they have, cut short.
pub fn destination_gone(destination: ClusterId) {
    let ended: Vec<Record> = hal::cpu::without_interrupts(|| {
        let mut records = RECORDS.lock();
        let mut ended = Vec::new();
        for record in records
            .iter_mut()
            .filter(|r| r.destination == destination && r.awaits_postcopy())
        {
            record.finish_postcopy(PostCopyFigures::ZERO);
            ended.push(*record);
        }
        ended
    });
    for record in &ended {
        log_record(record);
    }
}

/// Post-copy reports rejected so far.
pub fn rejected_reports() -> u64 {
    REJECTED_REPORTS.load(Ordering::Relaxed)
}

/// The most recent records, oldest first.
pub fn recent() -> Vec<Record> {
    hal::cpu::without_interrupts(|| RECORDS.lock().iter().copied().collect())
}

/// One line with every field.
fn log_record(r: &Record) {
    let p = &r.phases;
    let post = &p.postcopy;
    let rounds = &p.round_pages[..(r.rounds as usize).min(ROUNDS_RECORDED)];
    log::info!(
        "migration {} c{}->c{}: {}: {}{}, total {} us, downtime {} us, preparation {} us, resume {} us, residual {} us; {} pages, {} bytes: pre-copy {} pages {} bytes in {} rounds {:?} ({} dirty pages/s, throttled {}%), stopped {} pages {} bytes, post-copy {} remote: {} pulled, {} pushed, threads waited {} us; link {} bytes",
        r.pid,
        r.source.0,
        r.destination.0,
        r.failure.unwrap_or("ok"),
        r.strategy.name(),
        if p.cut_short { " (post-copy cut short)" } else { "" },
        r.total_ns / 1000,
        r.downtime_ns / 1000,
        r.preparation_ns / 1000,
        r.resume_ns / 1000,
        post.residual_ns / 1000,
        r.pages,
        r.bytes,
        r.pages_live,
        p.precopy_bytes,
        r.rounds,
        rounds,
        r.dirty_rate,
        p.throttle_pct,
        p.stop_pages,
        p.stop_bytes,
        p.remote_pages,
        post.pulled,
        post.pushed,
        post.fault_wait_ns / 1000,
        p.link_bytes,
    );
}
