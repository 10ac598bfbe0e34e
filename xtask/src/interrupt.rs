//! Ctrl-C and SIGTERM: one flag every long-running step polls, so an interrupted run stops
//! cleanly (its guards kill every QEMU and noc-sim, and remove the RAM files).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Installs the Ctrl-C / SIGTERM handler once and returns the flag it raises.
pub fn interrupted_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let setter = flag.clone();
        if let Err(error) = ctrlc::set_handler(move || setter.store(true, Ordering::SeqCst)) {
            eprintln!("xtask: warning: cannot handle Ctrl-C: {error}");
        }
        flag
    })
    .clone()
}
