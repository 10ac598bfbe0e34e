//! Every in-kernel test suite, defined once: the test kernel runs the suite named on its
//! command line from this list, and `cargo xtask test` boots each suite marked for the test
//! run with the cluster count and the verdict given here.
//!
//! Plain data, `no_std`, no dependencies: the host tool reads it without linking anything of
//! the kernel.

#![no_std]

/// What a suite's boot must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exit status 33 and every announced test `ok`.
    Pass,
    /// Exit status 35 and each of these strings somewhere in the log: a fatal error must be
    /// reported, never hang.
    Fatal(&'static [&'static str]),
}

/// One suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub name: &'static str,
    /// Clusters booted together (1: a single QEMU without noc-sim). Benchmarks choose their
    /// own count; this is their default.
    pub clusters: usize,
    pub expect: Expect,
    /// Run by `cargo xtask test` (benchmark suites are run by `cargo xtask bench`).
    pub in_test_run: bool,
}

const fn test(name: &'static str, clusters: usize) -> Suite {
    Suite {
        name,
        clusters,
        expect: Expect::Pass,
        in_test_run: true,
    }
}

const fn bench(name: &'static str, clusters: usize) -> Suite {
    Suite {
        name,
        clusters,
        expect: Expect::Pass,
        in_test_run: false,
    }
}

/// Every suite, in the order `cargo xtask test` runs them.
pub const SUITES: &[Suite] = &[
    test("core", 1),
    test("process", 1),
    test("migration_local", 1),
    Suite {
        name: "double_fault",
        clusters: 1,
        expect: Expect::Fatal(&[
            "FATAL CPU EXCEPTION",
            "#DF Double Fault",
            "kernel stack overflow",
        ]),
        in_test_run: true,
    },
    Suite {
        name: "panic",
        clusters: 1,
        expect: Expect::Fatal(&[
            "test fatal::panic_fails_the_test ... FAILED: panicked at",
            "deliberate panic",
            "suite panic: 0 passed, 1 failed",
        ]),
        in_test_run: true,
    },
    test("noc", 4),
    test("noc_sync", 16),
    test("migration", 4),
    test("harden_noc", 4),
    test("migration_live", 4),
    test("migration_cut", 4),
    test("migration_gone", 4),
    bench("bench_kernel", 1),
    bench("bench_migration", 16),
    bench("noc_bench", 16),
];

/// The suite called `name`.
pub fn find(name: &str) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.name == name)
}
