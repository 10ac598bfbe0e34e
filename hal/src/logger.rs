//! The `log` facade on the serial console.
//!
//! Every line carries the monotonic time since boot and the cluster number, so the merged log
//! of many clusters can be read in order.

use core::sync::atomic::{AtomicU32, Ordering};
use log::{Level, LevelFilter, Log, Metadata, Record};

static CLUSTER: AtomicU32 = AtomicU32::new(0);

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let ns = crate::clock::now_ns();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        crate::serial::write_fmt(format_args!(
            "[{:>5}.{:06} c{} {}] {}\n",
            ns / 1_000_000_000,
            (ns / 1_000) % 1_000_000,
            CLUSTER.load(Ordering::Relaxed),
            level,
            record.args()
        ));
    }

    fn flush(&self) {}
}

/// Installs the logger (Info level). Idempotent.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

/// Changes the level below which records are dropped.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// Sets the cluster number shown on every line.
pub fn set_cluster(cluster: u32) {
    CLUSTER.store(cluster, Ordering::Relaxed);
}

/// The cluster number shown on log lines.
pub fn cluster() -> u32 {
    CLUSTER.load(Ordering::Relaxed)
}
