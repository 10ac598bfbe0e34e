//! Migration benchmarks (`cargo xtask bench migration`, 2 clusters): stop-and-copy of the
//! Nanvix reference process and of `mgs` at the Gobelins sizes, each moved cluster 0 → 1
//! several times while it runs. Cluster 0 prints one `MIGBENCH` line per move, from the
//! migration daemon's own record.

use abi::{ClusterId, Pid};
use alloc::string::String;
use kernel::process::with_table;

use super::migration_noc::{
    all_clusters_joined, move_to, nothing_left_frozen, release_the_other_clusters, run_until,
    serve_until_the_driver_is_done,
};
use crate::tests;

pub const DRIVER: &[crate::framework::Test] = tests![
    all_clusters_joined,
    nanvix_reference_process,
    mgs_gobelins_sizes,
    release_the_other_clusters
];
pub const SERVING: &[crate::framework::Test] = tests![
    all_clusters_joined,
    serve_until_the_driver_is_done,
    nothing_left_frozen
];

fn measure(label: &str, program: &str, args: &[&str], runs: u32) -> Result<(), String> {
    let pid: Pid =
        with_table(|t| t.spawn(program, args, None)).map_err(|e| alloc::format!("{e:?}"))?;
    run_until("the program to be ready", || {
        kernel::process::console_history(Some(pid))
            .iter()
            .any(|l| l.starts_with("ready"))
    })?;
    let moves_to_1 = || {
        kernel::migstats::recent()
            .into_iter()
            .filter(|r| r.pid == pid && r.destination == ClusterId(1) && r.failure.is_none())
            .count()
    };
    for _ in 0..runs {
        let before = moves_to_1();
        move_to(pid, 1)?;
        // The record is complete once the destination confirmed it runs the process.
        run_until("the migration record", || moves_to_1() > before)?;
        let record = kernel::migstats::recent()
            .into_iter()
            .rev()
            .find(|r| r.pid == pid && r.destination == ClusterId(1) && r.failure.is_none())
            .ok_or("no migration record")?;
        hal::println!(
            "MIGBENCH stop-and-copy {label} {} {} {} {} {} {}",
            record.bytes,
            record.preparation_ns / 1000,
            record.downtime_ns / 1000,
            record.resume_ns / 1000,
            record.total_ns / 1000,
            record.pages
        );
        move_to(pid, 0)?;
    }
    with_table(|t| t.exit_process(pid, 0));
    Ok(())
}

fn nanvix_reference_process() -> Result<(), String> {
    measure("nanvix-ref-352.8KB", "nanvixref", &[], 10)
}

fn mgs_gobelins_sizes() -> Result<(), String> {
    for n in ["500", "750", "1000", "1250"] {
        let label = alloc::format!("mgs-{n}");
        measure(&label, "mgs", &[n, "0"], 3)?;
    }
    Ok(())
}
