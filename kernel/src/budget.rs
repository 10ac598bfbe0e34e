//! The kernel heap's budget for what user programs make it keep.
//!
//! Per-process quotas (`abi::limits`) bound each process, but enough processes — here and
//! on the other clusters, whose messages, names and requests land in this heap — could still
//! fill it together, and a full kernel heap is a panic. So every user-driven allocation that
//! outlives its system call (queued messages, names, requests for the daemons) also asks
//! here, and is refused once the heap holds `KERNEL_HEAP_BUDGET` bytes: the rest is the
//! kernel's reserve for its own work (daemons, migrations, page tables).

use core::sync::atomic::{AtomicU64, Ordering};

/// Requests refused because the heap was at the budget.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// True if `bytes` more fit within the budget (counts a refusal otherwise).
pub fn admits(bytes: usize) -> bool {
    let (_, used) = hal::heap::stats();
    let fits = used.saturating_add(bytes) <= abi::limits::KERNEL_HEAP_BUDGET;
    if !fits {
        REFUSED.fetch_add(1, Ordering::Relaxed);
    }
    fits
}

/// Allocations refused so far.
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}
