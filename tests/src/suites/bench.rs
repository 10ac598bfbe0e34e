//! Kernel benchmarks (not a test suite: `cargo xtask bench kernel` boots it and reads the
//! `KBENCH` and `UAREA` lines). The micro-benchmarks run in user space (`kbench`); the UArea
//! size of each example app is measured here, right after spawning it.

use alloc::string::String;
use kernel::process::{scheduler, with_table};

use crate::{ensure, tests};

pub const TESTS: &[crate::framework::Test] = tests![kernel_benchmarks, uarea_size_of_each_app];

fn kernel_benchmarks() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("kbench", &[], None)).map_err(|e| alloc::format!("{e:?}"))?;
    let deadline = hal::clock::now_ns() + 600_000_000_000;
    scheduler::run_until(
        || with_table(|t| t.orphan_exit_code(pid)).is_some() || hal::timer::expired(deadline),
        || {},
    );
    ensure!(
        with_table(|t| t.orphan_exit_code(pid)) == Some(0),
        "kbench did not finish cleanly"
    );
    Ok(())
}

fn uarea_size_of_each_app() -> Result<(), String> {
    for file in kernel::ramdisk::files() {
        let pid =
            with_table(|t| t.spawn(file.name, &[], None)).map_err(|e| alloc::format!("{e:?}"))?;
        let size = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.encoded_len()));
        with_table(|t| t.exit_process(pid, 0));
        hal::println!("UAREA {} {}", file.name, size.unwrap_or(0));
    }
    Ok(())
}
