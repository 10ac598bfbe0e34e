//! Per-migration records (seed 000's metrics): kept in a bounded history, logged one line
//! each, and readable by the stats daemon and the `migration_stats` call.

use abi::{ClusterId, Pid};
use alloc::collections::VecDeque;
use spin::Mutex;

/// How a migration was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    StopAndCopy,
}

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
    /// Last byte received to threads runnable at the destination.
    pub resume_ns: u64,
    /// Request to commit.
    pub total_ns: u64,
    pub bytes: u64,
    pub pages: u64,
    /// `None` if it succeeded.
    pub failure: Option<&'static str>,
}

const HISTORY: usize = 256;
static RECORDS: Mutex<VecDeque<Record>> = Mutex::new(VecDeque::new());

/// Keeps and logs a record.
pub fn record(record: Record) {
    log::info!(
        "migration {} {}->{}: {} total {} us, downtime {} us, preparation {} us, resume {} us, {} pages, {} bytes",
        record.pid,
        record.source.0,
        record.destination.0,
        record.failure.unwrap_or("ok"),
        record.total_ns / 1000,
        record.downtime_ns / 1000,
        record.preparation_ns / 1000,
        record.resume_ns / 1000,
        record.pages,
        record.bytes
    );
    hal::cpu::without_interrupts(|| {
        let mut records = RECORDS.lock();
        if records.len() == HISTORY {
            records.pop_front();
        }
        records.push_back(record);
    });
}

/// The most recent records, oldest first.
pub fn recent() -> alloc::vec::Vec<Record> {
    hal::cpu::without_interrupts(|| RECORDS.lock().iter().copied().collect())
}
