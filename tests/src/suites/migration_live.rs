//! Live migration between clusters (4 clusters, one boot): the zdtm cases moved by
//! pre-copy, post-copy and hybrid, a process that keeps writing its memory while it moves,
//! each strategy's failure paths, and the records of those moves read back by syscall
//! (`migration_record`), and pre-copy's throttle (`migration_throttle`). Cluster 0 drives, as in `migration_noc`; the others
//! serve.

use abi::{ClusterId, MigrateOptions, Pid, Strategy};
use alloc::string::String;
use kernel::process::with_table;
use migration::MigrationError;

use super::migration_noc::{
    all_clusters_joined, case_moved_by, every_case_moves_by, exit_code, faulted_then_moves,
    move_by, nothing_left_frozen, record_when, refused_then_moves, release_the_other_clusters,
    run_until, serve_until_the_driver_is_done, spawn_case,
};
use super::migration_record::{
    a_hybrid_record_read_by_syscall_adds_up, a_postcopy_record_read_by_syscall_adds_up,
    a_postcopy_record_reads_incomplete_then_cut_short,
    a_postcopy_report_that_matches_nothing_is_rejected,
    a_precopy_record_read_by_syscall_sums_its_rounds,
};
use super::migration_throttle::{
    a_failed_throttled_precopy_lifts_the_throttle, a_throttle_is_bounded_and_kernel_local,
    a_writer_that_outruns_the_link_is_throttled,
};
use crate::{ensure, ensure_eq, tests};

pub const DRIVER: &[crate::framework::Test] = tests![
    all_clusters_joined,
    a_throttle_is_bounded_and_kernel_local,
    a_writer_that_outruns_the_link_is_throttled,
    a_failed_throttled_precopy_lifts_the_throttle,
    every_case_moves_by_postcopy,
    every_case_moves_by_precopy,
    a_process_writing_its_memory_moves_intact,
    a_precopy_record_counts_its_rounds,
    precopy_to_a_refusing_destination_leaves_it_running,
    dma_fault_mid_precopy_leaves_the_process_at_home,
    kill_during_precopy_ends_it_once,
    a_process_writing_its_memory_moves_intact_by_postcopy,
    a_postcopy_resumes_before_its_pages_arrive,
    postcopy_to_a_refusing_destination_leaves_it_running,
    dma_fault_mid_postcopy_image_leaves_the_process_at_home,
    postcopy_survives_lost_page_requests,
    every_case_moves_by_hybrid,
    a_hybrid_record_counts_one_round_and_its_pages_by_phase,
    hybrid_to_a_refusing_destination_leaves_it_running,
    dma_fault_mid_hybrid_round_leaves_the_process_at_home,
    a_postcopy_record_read_by_syscall_adds_up,
    a_hybrid_record_read_by_syscall_adds_up,
    a_precopy_record_read_by_syscall_sums_its_rounds,
    a_postcopy_report_that_matches_nothing_is_rejected,
    a_postcopy_record_reads_incomplete_then_cut_short,
    source_gone_mid_postcopy_ends_the_process_with_a_report
];

pub const SERVING: &[crate::framework::Test] = tests![
    all_clusters_joined,
    serve_until_the_driver_is_done,
    nothing_left_frozen
];

/// Moves `pid` to `to` by pre-copy and waits until its home knows it arrived.
fn precopy_to(pid: Pid, to: u16) -> Result<(), String> {
    move_by(pid, to, Strategy::PreCopy)
}

/// Moves `pid` to `to` by post-copy and waits until its home knows it arrived.
fn postcopy_to(pid: Pid, to: u16) -> Result<(), String> {
    move_by(pid, to, Strategy::PostCopy)
}

/// Moves `pid` to `to` by hybrid (one pre-copy round, then post-copy).
fn hybrid_to(pid: Pid, to: u16) -> Result<(), String> {
    move_by(pid, to, Strategy::Hybrid)
}

/// The latest record of `pid` (a fresh process moved once from here): the move by
/// `strategy`, and a success. It is written when the destination confirms, so it may follow
/// the arrival.
fn record_of(pid: Pid, strategy: Strategy) -> Result<kernel::migstats::Record, String> {
    let record = record_when(pid, |_| true)?;
    ensure_eq!(record.strategy, strategy);
    ensure!(record.failure.is_none(), "{record:?}");
    Ok(record)
}

/// The zdtm cases of the stop-and-copy suite, each moved away and back by pre-copy (the
/// way back is asked of cluster 0, the process's home, for a process on cluster 1).
fn every_case_moves_by_precopy() -> Result<(), String> {
    every_case_moves_by(Strategy::PreCopy)
}

fn a_process_writing_its_memory_moves_intact() -> Result<(), String> {
    case_moved_by("dirty", &[2, 1, 0], precopy_to)
}

fn a_precopy_record_counts_its_rounds() -> Result<(), String> {
    let pid = spawn_case("dirty", 1)?;
    precopy_to(pid, 3)?;
    let record = record_of(pid, Strategy::PreCopy)?;
    ensure!(record.rounds >= 1, "no round: {record:?}");
    // Its 4 MiB went while it ran; the final copy sent only part of it again.
    ensure!(record.pages_live >= 1024, "{record:?}");
    ensure!(record.pages >= record.pages_live, "{record:?}");
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn precopy_to_a_refusing_destination_leaves_it_running() -> Result<(), String> {
    refused_then_moves("dirty", 2, Strategy::PreCopy)
}

/// A corrupted page transfer during the rounds: the migration fails, the process never
/// stopped, and it moves intact afterwards.
fn dma_fault_mid_precopy_leaves_the_process_at_home() -> Result<(), String> {
    faulted_then_moves("dirty", Strategy::PreCopy)
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

/// The zdtm cases again, each moved away and back by post-copy: it resumes at once there,
/// its pages following.
fn every_case_moves_by_postcopy() -> Result<(), String> {
    every_case_moves_by(Strategy::PostCopy)
}

fn a_process_writing_its_memory_moves_intact_by_postcopy() -> Result<(), String> {
    case_moved_by("dirty", &[2, 1, 0], postcopy_to)
}

/// Its downtime carried only the threads' hot pages: the record counts far fewer pages than
/// the process has (64 MiB of heap), and it still checks out.
fn a_postcopy_resumes_before_its_pages_arrive() -> Result<(), String> {
    let pid = spawn_case("heap64", 1)?;
    postcopy_to(pid, 2)?;
    let record = record_of(pid, Strategy::PostCopy)?;
    ensure!(
        record.pages < 1024,
        "{} pages went before it resumed",
        record.pages
    );
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn postcopy_to_a_refusing_destination_leaves_it_running() -> Result<(), String> {
    refused_then_moves("memory", 3, Strategy::PostCopy)
}

/// A corrupted transfer of the image (before the commit): the process stays home, intact.
fn dma_fault_mid_postcopy_image_leaves_the_process_at_home() -> Result<(), String> {
    faulted_then_moves("memory", Strategy::PostCopy)
}

/// The link from the new cluster back to the old one loses every daemon message for a while
/// (page requests among them), then heals: the threads wait, nothing is lost.
fn postcopy_survives_lost_page_requests() -> Result<(), String> {
    let pid = spawn_case("dirty", 1)?;
    crate::suites::migration_atomic::arm_router(&alloc::format!(
        "drop 40 2 0 {} *",
        multikernel_proto::ports::DAEMON
    ))?;
    postcopy_to(pid, 2)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn hybrid_to_a_refusing_destination_leaves_it_running() -> Result<(), String> {
    refused_then_moves("dirty", 2, Strategy::Hybrid)
}

/// A corrupted transfer during hybrid's round: the migration fails, the process never
/// stopped, and it moves intact afterwards.
fn dma_fault_mid_hybrid_round_leaves_the_process_at_home() -> Result<(), String> {
    faulted_then_moves("dirty", Strategy::Hybrid)
}

/// The last case: a process moves to cluster 1, then back here by post-copy, with cluster 1
/// never allowed to send its pages (the router drops this cluster's allowances to it, and
/// their re-announcements). It
/// resumes here and waits for them; the other clusters are released, so cluster 1 powers
/// off with its pages. The process cannot be whole: it is ended with its own exit code and
/// a report — it never runs with missing memory.
fn source_gone_mid_postcopy_ends_the_process_with_a_report() -> Result<(), String> {
    let pid = spawn_case("dirty", 2)?;
    super::migration_noc::move_to(pid, 1)?;
    crate::suites::migration_atomic::arm_router(&alloc::format!(
        "drop 1000000 0 1 {} *",
        multikernel_proto::ports::POSTCOPY_PAGES
    ))?;
    postcopy_to(pid, 0)?;
    run_until("its threads to wait for pages", || {
        with_table(|t| t.remote_waiters(pid)) > 0
    })?;
    release_the_other_clusters()?;
    ensure_eq!(exit_code(pid)?, multikernel::PAGES_LOST_EXIT);
    let reported = kernel::process::console_history(Some(pid))
        .iter()
        .any(|line| line.contains("left with") && line.contains("of its pages"));
    ensure!(reported, "no report of the lost pages");
    Ok(())
}

/// Hybrid: the cases, the process that keeps writing among them, moved by one pre-copy
/// round and then post-copy.
fn every_case_moves_by_hybrid() -> Result<(), String> {
    every_case_moves_by(Strategy::Hybrid)
}

/// One round went while it ran; the pages it did not write again were not sent twice: the
/// downtime carried far fewer pages than the round did.
fn a_hybrid_record_counts_one_round_and_its_pages_by_phase() -> Result<(), String> {
    let pid = spawn_case("heap64", 1)?;
    hybrid_to(pid, 3)?;
    let record = record_of(pid, Strategy::Hybrid)?;
    ensure_eq!(record.rounds, 1);
    ensure!(record.pages_live >= 16_384, "{record:?}");
    let stopped = record.pages - record.pages_live;
    ensure!(stopped < 1024, "{stopped} pages went while it was stopped");
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}
