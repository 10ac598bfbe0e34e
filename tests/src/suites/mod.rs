//! The tests of every suite the test kernel knows. Which suites exist, on how many clusters
//! and with what verdict is `suite-catalog` (shared with `cargo xtask`); `cargo xtask test`
//! boots once per suite.
//!
//! `core` holds every test that must pass. `double_fault` and `panic` are expected to end the
//! run with the failure status; `cargo xtask test` checks that they do, and that the report
//! says why — the proof that a fatal kernel error never hangs or triple-faults.

pub mod bench;
pub mod bench_migration;
pub mod boot;
pub mod clock;
pub mod exceptions;
pub mod fatal;
pub mod frames;
pub mod harden;
pub mod harden_budget;
pub mod harden_noc;
pub mod heap;
pub mod migration;
pub mod migration_atomic;
pub mod migration_cut;
pub mod migration_gone;
pub mod migration_live;
pub mod migration_noc;
pub mod migration_record;
pub mod migration_throttle;
pub mod migration_userdma;
pub mod noc;
pub mod noc_bench;
pub mod noc_code;
pub mod noc_dma;
pub mod paging;
pub mod process;
pub mod timer;

use crate::framework::Suite;

pub static SUITES: &[Suite] = &[
    Suite {
        name: "core",
        tests: &[
            boot::TESTS,
            exceptions::TESTS,
            heap::TESTS,
            frames::TESTS,
            paging::TESTS,
            timer::TESTS,
        ],
        serving: None,
    },
    Suite {
        name: "process",
        tests: &[process::TESTS, harden::TESTS, harden_budget::TESTS],
        serving: None,
    },
    Suite {
        name: "migration_local",
        tests: &[migration::TESTS],
        serving: None,
    },
    Suite {
        name: "migration",
        tests: &[migration_noc::DRIVER],
        serving: Some(&[migration_noc::SERVING]),
    },
    Suite {
        name: "harden_noc",
        tests: &[harden_noc::DRIVER],
        serving: Some(&[harden_noc::SERVING]),
    },
    Suite {
        name: "migration_live",
        tests: &[migration_live::DRIVER],
        serving: Some(&[migration_live::SERVING]),
    },
    Suite {
        name: "migration_cut",
        tests: &[migration_cut::DRIVER],
        serving: Some(&[migration_cut::SERVING]),
    },
    Suite {
        name: "migration_gone",
        tests: &[migration_gone::DRIVER],
        serving: Some(&[migration_gone::SERVING]),
    },
    Suite {
        name: "bench_kernel",
        tests: &[bench::TESTS],
        serving: None,
    },
    Suite {
        name: "bench_migration",
        tests: &[bench_migration::DRIVER],
        serving: Some(&[bench_migration::SERVING]),
    },
    Suite {
        name: "double_fault",
        tests: &[fatal::DOUBLE_FAULT],
        serving: None,
    },
    Suite {
        name: "panic",
        tests: &[fatal::PANIC],
        serving: None,
    },
    // Multi-cluster suites: booted on several clusters at once (`clusters=N`).
    Suite {
        name: "noc",
        tests: &[noc::TESTS],
        serving: None,
    },
    Suite {
        name: "noc_sync",
        tests: &[noc::SYNC_TESTS, clock::DRIVER],
        serving: Some(&[noc::SYNC_TESTS, clock::SERVING]),
    },
    Suite {
        name: "noc_bench",
        tests: &[noc_bench::TESTS],
        serving: None,
    },
];
