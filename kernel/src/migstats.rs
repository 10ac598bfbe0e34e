//! Per-migration records, after seed 000's metrics: the migration daemon adds one per
//! migration (success or failure), the `migration_stats` call and the monitor read them.

use abi::{ClusterId, Pid};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use spin::Mutex;

/// How a migration was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Strategy {
    StopAndCopy = 0,
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
    /// Last byte sent to the destination's confirmation that the threads are runnable.
    pub resume_ns: u64,
    /// Request to commit.
    pub total_ns: u64,
    pub bytes: u64,
    pub pages: u64,
    /// `None` if it succeeded.
    pub failure: Option<&'static str>,
}

/// Bytes of one record as `migration_stats` writes it (see `docs/abi.md`).
pub const RECORD_LEN: usize = abi::MigrationRecord::SIZE;

impl Record {
    /// The fixed little-endian layout of `migration_stats`.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        abi::MigrationRecord {
            pid: self.pid.raw(),
            source: self.source,
            destination: self.destination,
            strategy: self.strategy as u8,
            failed: self.failure.is_some(),
            preparation_ns: self.preparation_ns,
            downtime_ns: self.downtime_ns,
            resume_ns: self.resume_ns,
            total_ns: self.total_ns,
            bytes: self.bytes,
            pages: self.pages,
        }
        .to_bytes()
    }
}

const HISTORY: usize = 256;
static RECORDS: Mutex<VecDeque<Record>> = Mutex::new(VecDeque::new());

/// Keeps and logs a record.
pub fn record(record: Record) {
    log::info!(
        "migration {} c{}->c{}: {}: total {} us, downtime {} us, preparation {} us, resume {} us, {} pages, {} bytes",
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
pub fn recent() -> Vec<Record> {
    hal::cpu::without_interrupts(|| RECORDS.lock().iter().copied().collect())
}
