//! The in-kernel test framework.
//!
//! A test is a plain function returning `Result<(), String>`; the `ensure!` macros return an
//! error describing what did not hold. The suite announces `suite NAME: running N tests`; each
//! test prints one whole line when it ends (so log output from inside the test cannot split
//! it), `test NAME ... ok` or `test NAME ... FAILED: reason`, and the suite ends with
//! `suite NAME: N passed, N failed`
//! and a QEMU exit status (33 pass, 35 fail) that `cargo xtask test` turns into a verdict.
//! There is no unwinding in the kernel, so a panic inside a test is reported as that test's
//! failure and ends the run with the failure status.

use alloc::string::String;
use core::sync::atomic::{AtomicUsize, Ordering};

/// One registered test.
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> Result<(), String>,
}

/// A named list of tests that runs in one boot.
pub struct Suite {
    pub name: &'static str,
    pub tests: &'static [&'static [Test]],
    /// In a multi-cluster suite driven by cluster 0, what the other clusters run instead.
    pub serving: Option<&'static [&'static [Test]]>,
}

/// Registers test functions of the calling module: `tests![a, b]`.
#[macro_export]
macro_rules! tests {
    ($($function:ident),* $(,)?) => {
        &[$($crate::framework::Test {
            name: concat!(module_path!(), "::", stringify!($function)),
            run: $function,
        }),*]
    };
}

/// Fails the test with a formatted message unless `condition` holds.
#[macro_export]
macro_rules! ensure {
    ($condition:expr) => {
        if !$condition {
            return Err(alloc::format!("assertion failed: {}", stringify!($condition)));
        }
    };
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(alloc::format!($($message)+));
        }
    };
}

/// Fails the test unless both sides are equal, showing both values.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    return Err(alloc::format!(
                        "{} != {}: {:?} != {:?}",
                        stringify!($left),
                        stringify!($right),
                        left,
                        right
                    ));
                }
            }
        }
    };
}

static CURRENT_TEST: spin::Mutex<&'static str> = spin::Mutex::new("");
static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);
static SUITE: spin::Mutex<&'static str> = spin::Mutex::new("");

fn short_name(name: &'static str) -> &'static str {
    name.split_once("::suites::").map_or(name, |(_, rest)| rest)
}

/// Runs every test of `suite` and exits QEMU with the verdict.
pub fn run_suite(suite: &Suite) -> ! {
    *SUITE.lock() = suite.name;
    let tests = match suite.serving {
        Some(serving) if kernel::noc::cluster().0 != 0 => serving,
        _ => suite.tests,
    };
    let count: usize = tests.iter().map(|tests| tests.len()).sum();
    hal::println!("suite {}: running {} tests", suite.name, count);
    for test in tests.iter().flat_map(|tests| tests.iter()) {
        *CURRENT_TEST.lock() = test.name;
        let started = hal::clock::now_ns();
        match (test.run)() {
            Ok(()) => {
                PASSED.fetch_add(1, Ordering::SeqCst);
                let ms = (hal::clock::now_ns() - started) / 1_000_000;
                hal::println!("test {} ... ok ({ms} ms)", short_name(test.name));
            }
            Err(reason) => {
                FAILED.fetch_add(1, Ordering::SeqCst);
                hal::println!("test {} ... FAILED: {reason}", short_name(test.name));
            }
        }
    }
    *CURRENT_TEST.lock() = "";
    finish()
}

fn finish() -> ! {
    let (passed, failed) = (PASSED.load(Ordering::SeqCst), FAILED.load(Ordering::SeqCst));
    let suite = SUITE.try_lock().map_or("?", |name| *name);
    hal::println!("suite {suite}: {passed} passed, {failed} failed");
    if failed == 0 {
        hal::power::exit_success()
    } else {
        hal::power::exit_failure()
    }
}

/// The test kernel's panic path: the running test fails, the suite ends.
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    hal::cpu::disable_interrupts();
    // SAFETY: the panicking code never resumes, so a console lock it held is dead.
    unsafe { hal::serial::force_unlock() };
    let test = CURRENT_TEST.try_lock().map_or("?", |name| *name);
    if test.is_empty() {
        kernel::panic::report(info);
    }
    let location = info
        .location()
        .map(|l| (l.file(), l.line()))
        .unwrap_or(("?", 0));
    hal::println!(
        "test {} ... FAILED: panicked at {}:{}: {}",
        short_name(test),
        location.0,
        location.1,
        info.message()
    );
    FAILED.fetch_add(1, Ordering::SeqCst);
    hal::println!("(a panic ends the suite: the kernel cannot unwind)");
    finish()
}
