//! Live migration between clusters (4 clusters, one boot): the zdtm cases moved by
//! pre-copy, a process that keeps writing its memory while it moves, and pre-copy's failure
//! paths. Cluster 0 drives, as in `migration_noc`; the others serve.

use abi::{ClusterId, MigrateOptions, Pid, Strategy};
use alloc::string::String;
use kernel::process::with_table;
use migration::MigrationError;

use super::migration_noc::{
    all_clusters_joined, case_moved_by, exit_code, nothing_left_frozen, release_the_other_clusters,
    run_until, serve_until_the_driver_is_done, spawn_case,
};
use crate::{ensure, ensure_eq, tests};

pub const DRIVER: &[crate::framework::Test] = tests![
    all_clusters_joined,
    every_case_moves_by_precopy,
    a_process_writing_its_memory_moves_intact,
    a_precopy_record_counts_its_rounds,
    precopy_to_a_refusing_destination_leaves_it_running,
    dma_fault_mid_precopy_leaves_the_process_at_home,
    kill_during_precopy_ends_it_once,
    release_the_other_clusters
];

pub const SERVING: &[crate::framework::Test] = tests![
    all_clusters_joined,
    serve_until_the_driver_is_done,
    nothing_left_frozen
];

/// Moves `pid` to `to` by pre-copy and waits until its home knows it arrived.
fn precopy_to(pid: Pid, to: u16) -> Result<(), String> {
    let before = kernel::migstats::recent().len();
    // The record is kept by the source: wait for it only when that is this cluster.
    let from_here = with_table(|t| t.is_alive(pid));
    multikernel::request_migration_with(pid, ClusterId(to), MigrateOptions::new(Strategy::PreCopy));
    if to == kernel::noc::cluster().0 {
        return run_until("the process to come home", || {
            with_table(|t| t.processes.contains_key(&pid)) && multikernel::location(pid).is_none()
        });
    }
    run_until("the migration", || {
        multikernel::location(pid) == Some(ClusterId(to))
            || matches!(multikernel::outcome(pid), Some(Err(_)))
    })?;
    if let Some(Err(error)) = multikernel::outcome(pid) {
        return Err(alloc::format!("pre-copy to c{to} failed: {error:?}"));
    }
    if from_here {
        run_until("the record", || kernel::migstats::recent().len() > before)?;
    }
    Ok(())
}

fn case(name: &str, path: &[u16]) -> Result<(), String> {
    case_moved_by(name, path, precopy_to)
}

/// The zdtm cases of the stop-and-copy suite, each moved away and back by pre-copy (the
/// way back is asked of cluster 0, the process's home, for a process on cluster 1).
fn every_case_moves_by_precopy() -> Result<(), String> {
    for name in [
        "memory",
        "threads",
        "sleep",
        "futex",
        "join",
        "fpu",
        "recursion",
        "busy",
        "clock",
        "mailbox",
    ] {
        case(name, &[1, 0]).map_err(|e| alloc::format!("{name}: {e}"))?;
    }
    // Through every other cluster.
    case("memory", &[1, 2, 3, 0])
}

fn a_process_writing_its_memory_moves_intact() -> Result<(), String> {
    case("dirty", &[2, 1, 0])
}

fn a_precopy_record_counts_its_rounds() -> Result<(), String> {
    let pid = spawn_case("dirty", 1)?;
    precopy_to(pid, 3)?;
    let record = kernel::migstats::recent()
        .into_iter()
        .rev()
        .find(|r| r.pid == pid)
        .ok_or("no record")?;
    ensure_eq!(record.strategy, Strategy::PreCopy);
    ensure!(record.failure.is_none(), "{record:?}");
    ensure!(record.rounds >= 1, "no round: {record:?}");
    // Its 4 MiB went while it ran; the final copy sent only part of it again.
    ensure!(record.pages_live >= 1024, "{record:?}");
    ensure!(record.pages >= record.pages_live, "{record:?}");
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn precopy_to_a_refusing_destination_leaves_it_running() -> Result<(), String> {
    let pid = spawn_case("dirty", 1)?;
    multikernel::set_refusing(ClusterId(2), true);
    let options = MigrateOptions::new(Strategy::PreCopy);
    multikernel::request_migration_with(pid, ClusterId(2), options);
    run_until("the refusal", || multikernel::outcome(pid).is_some())?;
    let outcome = multikernel::outcome(pid);
    multikernel::set_refusing(ClusterId(2), false);
    ensure_eq!(outcome, Some(Err(MigrationError::Refused)));
    let frozen = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.is_frozen()));
    ensure_eq!(frozen, Some(false));
    precopy_to(pid, 2)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// A corrupted page transfer during the rounds: the migration fails, the process never
/// stopped, and it moves intact afterwards.
fn dma_fault_mid_precopy_leaves_the_process_at_home() -> Result<(), String> {
    let pid = spawn_case("dirty", 1)?;
    crate::suites::migration_atomic::arm_router("dma-corrupt 1")?;
    multikernel::request_migration_with(pid, ClusterId(1), MigrateOptions::new(Strategy::PreCopy));
    run_until("the failed migration", || {
        multikernel::outcome(pid).is_some()
    })?;
    let outcome = multikernel::outcome(pid);
    ensure!(
        matches!(outcome, Some(Err(_))),
        "a corrupted transfer succeeded: {outcome:?}"
    );
    ensure!(with_table(|t| t.is_alive(pid)), "the process is gone");
    ensure_eq!(multikernel::location(pid), None);
    precopy_to(pid, 1)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// A kill while the rounds run reaches the running process at once; the migration ends and
/// nothing arrives anywhere.
fn kill_during_precopy_ends_it_once() -> Result<(), String> {
    let pid = spawn_case("heap64", 1)?;
    multikernel::request_migration_with(pid, ClusterId(3), MigrateOptions::new(Strategy::PreCopy));
    run_until("the rounds", || {
        multikernel::migration_phase(pid) == Some(multikernel::migration::source::Phase::PreCopying)
    })?;
    kernel::requests::post(kernel::requests::Request::Kill(pid));
    run_until("the migration to end", || {
        multikernel::outcome(pid).is_some()
    })?;
    ensure_eq!(
        multikernel::outcome(pid),
        Some(Err(MigrationError::NoSuchProcess))
    );
    ensure!(!with_table(|t| t.is_alive(pid)), "the killed process runs");
    ensure_eq!(multikernel::location(pid), None);
    Ok(())
}
