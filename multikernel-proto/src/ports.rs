//! Every NoC port number the system reserves, in one place, so no two services collide.
//!
//! Plain `u16`s: the kernel wraps them in its `PortId`. User programs pick their own ports
//! for their mailboxes (the kernel keys them by `(pid, port)`, so user ports never collide
//! with these kernel ports); the in-kernel test suites use fixed low ports, listed below so
//! a new service does not take one of them.

/// Mailbox port of every cluster's daemon (migration, names, spawn, kill, list): the
/// [`crate::message::Message`]s arrive here (`multikernel/src/daemons.rs`).
pub const DAEMON: u16 = 0xFF00;
/// Portal port migration images (the UArea and the page index) arrive on (`multikernel/src/migration/`).
pub const IMAGE: u16 = 0xFF01;
/// Portal port the pages of a migration image arrive on with the direct transport: the
/// destination grants the frames it mapped for them, the source's engine reads the frozen
/// process's frames (`multikernel/src/migration/`).
pub const IMAGE_PAGES: u16 = 0xFF02;
/// Portal port post-copy's pages arrive on after the process resumed at its new cluster,
/// frame to frame, each transfer led by a header frame naming its pages
/// (`multikernel/src/migration/page_server.rs`). 0xFF03 was post-copy's separate index port
/// (retired: the transfers describe themselves) and stays unused.
pub const POSTCOPY_PAGES: u16 = 0xFF04;
/// Mailbox port every cluster receives user mail on, `(pid, port)`-addressed
/// (`kernel/src/ipc.rs`).
pub const USER_MAIL: u16 = 0xFE00;
/// Portal port user portal transfers between clusters arrive on (`kernel/src/portal.rs`).
pub const USER_PORTAL: u16 = 0xFE01;
/// Mailbox port of the boot-time greeting between kernels (`kernel/src/noc/greeting.rs`).
pub const GREETING: u16 = 0xFFF0;

/// The kernel's reserved ports, with their names.
pub const KERNEL: [(&str, u16); 7] = [
    ("DAEMON", DAEMON),
    ("IMAGE", IMAGE),
    ("IMAGE_PAGES", IMAGE_PAGES),
    ("POSTCOPY_PAGES", POSTCOPY_PAGES),
    ("USER_MAIL", USER_MAIL),
    ("USER_PORTAL", USER_PORTAL),
    ("GREETING", GREETING),
];

/// Ports the in-kernel test suites use (`tests/src/suites/`). They only run in test images,
/// but a kernel service must not take them.
pub mod tests {
    /// `noc.rs`: ping (10) and pong (11) mailboxes.
    pub const NOC_PING: u16 = 10;
    /// `noc.rs`: pong replies.
    pub const NOC_PONG: u16 = 11;
    /// `noc.rs`: mailbox flood / ordering tests (20, 40, 50, 70).
    pub const NOC_MAILBOX: [u16; 4] = [20, 40, 50, 70];
    /// `noc.rs`: barriers, gather on `p`, release on `p + 1` (60/61, 90/91).
    pub const NOC_BARRIERS: [u16; 4] = [60, 61, 90, 91];
    /// `noc.rs`: sync points (80, 82, 84).
    pub const NOC_SYNC: [u16; 3] = [80, 82, 84];
    /// `noc_bench.rs`: mailbox round-trip requests (100) and replies (101).
    pub const BENCH_MAILBOX: [u16; 2] = [100, 101];
    /// `noc_bench.rs`: portal throughput, one port per run (110, 111, 112).
    pub const BENCH_PORTAL: [u16; 3] = [110, 111, 112];
    /// `migration_noc.rs`: the sync point that releases the serving clusters.
    pub const MIGRATION_RELEASE: u16 = 0x7100;

    /// Every test port.
    pub fn all() -> impl Iterator<Item = u16> {
        [NOC_PING, NOC_PONG, MIGRATION_RELEASE]
            .into_iter()
            .chain(NOC_MAILBOX)
            .chain(NOC_BARRIERS)
            .chain(NOC_SYNC)
            .chain(BENCH_MAILBOX)
            .chain(BENCH_PORTAL)
    }
}

#[cfg(test)]
mod check {
    use super::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    #[test]
    fn every_reserved_port_is_distinct() {
        let all: Vec<u16> = KERNEL.iter().map(|(_, p)| *p).chain(tests::all()).collect();
        let distinct: BTreeSet<u16> = all.iter().copied().collect();
        assert_eq!(all.len(), distinct.len(), "duplicate port in {all:?}");
    }

    #[test]
    fn kernel_ports_stay_above_the_test_ports() {
        let lowest_kernel = KERNEL.iter().map(|(_, p)| *p).min();
        assert!(tests::all().all(|p| Some(p) < lowest_kernel));
    }
}
