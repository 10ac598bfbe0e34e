//! Per-migration records, after seed 000's metrics: the migration daemon adds one per
//! migration (success or failure), the `migration_stats` call and the monitor read them.

use abi::{ClusterId, Pid};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
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
    pub bytes: u64,
    /// Pages sent, over every phase (a page sent twice counts twice).
    pub pages: u64,
    /// Of `pages`, those sent while the process ran (pre-copy rounds).
    pub pages_live: u64,
    /// Pre-copy rounds while it ran.
    pub rounds: u16,
    /// Pages it dirtied per second during pre-copy.
    pub dirty_rate: u32,
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
            rounds: self.rounds,
            dirty_rate: self.dirty_rate,
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
        "migration {} c{}->c{}: {}: {}, total {} us, downtime {} us, preparation {} us, resume {} us, {} pages ({} while running, {} rounds, {} dirty pages/s), {} bytes",
        record.pid,
        record.source.0,
        record.destination.0,
        record.failure.unwrap_or("ok"),
        record.strategy.name(),
        record.total_ns / 1000,
        record.downtime_ns / 1000,
        record.preparation_ns / 1000,
        record.resume_ns / 1000,
        record.pages,
        record.pages_live,
        record.rounds,
        record.dirty_rate,
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
