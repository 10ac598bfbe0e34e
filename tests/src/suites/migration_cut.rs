//! Migration across a link that is cut for a while and heals (noc-sim `cut A B MS`, issue 13
//! "Failures"): a transient failure, never taken for the other cluster leaving. Post-copy and
//! hybrid ride it out — the threads that need a page wait, the requests, allowances and page
//! transfers lost to the cut go again, and the process ends with exactly its memory. A cut
//! during a stop-and-copy or pre-copy image transfer delays it until the heal (the lost
//! allowances are announced again) or, if a write failed across it, fails that migration
//! cleanly (the process goes on at its source) — exactly one copy either way. 4 clusters,
//! cluster 0 drives; each case cuts the link between cluster 0 and cluster 2 for [`CUT_MS`].

use abi::{ClusterId, MigrateOptions, Strategy};
use alloc::string::String;
use hal::noc::RouterCounter;
use kernel::process::with_table;
use multikernel::migration::source::Phase;

use super::migration_atomic::arm_router;
use super::migration_noc::{
    all_clusters_joined, exit_code, move_by, nothing_left_frozen, record_when,
    release_the_other_clusters, run_until, serve_until_the_driver_is_done, spawn_case,
};
use crate::{ensure, ensure_eq, tests};

pub const DRIVER: &[crate::framework::Test] = tests![
    all_clusters_joined,
    postcopy_rides_out_a_cut_after_the_commit,
    hybrid_rides_out_a_cut_after_the_commit,
    postcopy_rides_out_its_destination_isolated,
    a_cut_during_a_stop_and_copy_transfer_leaves_one_copy,
    a_cut_during_precopy_rounds_leaves_one_copy,
    a_lost_page_allowance_never_misplaces_pages,
    nothing_left_frozen,
    release_the_other_clusters
];

pub const SERVING: &[crate::framework::Test] = tests![
    all_clusters_joined,
    serve_until_the_driver_is_done,
    nothing_left_frozen
];

/// How long each case cuts the link: longer than every re-send interval (page requests
/// 50 ms, allowances 250 ms, the protocol 200 ms), far shorter than the stall timeout (20 s).
const CUT_MS: u64 = 1500;
/// The cluster cut off from this one.
const PEER: u16 = 2;

/// What the router has lost to cuts on this cluster's behalf (messages and DMA transfers,
/// to or from here).
fn lost_to_cuts() -> u64 {
    hal::noc::router_counter(RouterCounter::CutDropped)
        + hal::noc::router_counter(RouterCounter::CutDma)
}

fn cut_the_link() -> Result<(), String> {
    arm_router(&cut_command())
}

fn cut_command() -> String {
    alloc::format!("cut 0 {PEER} {CUT_MS}")
}

/// `name` moves to [`PEER`] by `strategy`; the moment the commit is decided here (its pages
/// start to be served) the link is cut. The process must end there with its own check
/// passed, the record must say the migration succeeded, and the cut must have lost
/// something (else this proved nothing).
fn rides_out_a_cut(name: &str, strategy: Strategy) -> Result<(), String> {
    rides_out(name, strategy, &cut_command())
}

/// As [`rides_out_a_cut`], with `fault` (a `cut` or `isolate` command) armed at the commit.
fn rides_out(name: &str, strategy: Strategy, fault: &str) -> Result<(), String> {
    let pid = spawn_case(name, 1)?;
    let lost_before = lost_to_cuts();
    multikernel::request_migration_with(pid, ClusterId(PEER), MigrateOptions::new(strategy));
    run_until("the commit", || {
        multikernel::location(pid) == Some(ClusterId(PEER))
            || matches!(multikernel::outcome(pid), Some(Err(_)))
    })?;
    arm_router(fault)?;
    ensure_eq!(multikernel::location(pid), Some(ClusterId(PEER)));
    ensure_eq!(exit_code(pid)?, 0);
    let record = record_when(pid, |_| true)?;
    ensure_eq!(record.strategy, strategy);
    ensure!(record.failure.is_none(), "{record:?}");
    let lost = lost_to_cuts() - lost_before;
    ensure!(lost > 0, "the cut lost nothing: it did not happen");
    log::info!(
        "{} of {name} across `{fault}`: {lost} messages and transfers lost, exit 0",
        strategy.name()
    );
    Ok(())
}

/// 64 MiB still at the source when the cut starts: the pushes in flight fail, the faulting
/// threads wait, and everything arrives after the heal.
fn postcopy_rides_out_a_cut_after_the_commit() -> Result<(), String> {
    rides_out_a_cut("heap64", Strategy::PostCopy)
}

/// The destination cut off from every cluster (`isolate`), not just from the source.
fn postcopy_rides_out_its_destination_isolated() -> Result<(), String> {
    rides_out(
        "heap64",
        Strategy::PostCopy,
        &alloc::format!("isolate {PEER} {CUT_MS}"),
    )
}

/// Hybrid: the pages it dirtied after its pre-copy round follow it across the cut.
fn hybrid_rides_out_a_cut_after_the_commit() -> Result<(), String> {
    rides_out_a_cut("dirty", Strategy::Hybrid)
}

/// `name` moves to [`PEER`] by `strategy`; once its source is in `phase` the link is cut.
/// Either the migration fails and the process goes on here, unfrozen, and moves intact
/// elsewhere afterwards — or it completes after the heal and the process runs there only.
fn one_copy_across_a_cut(name: &str, strategy: Strategy, phase: Phase) -> Result<(), String> {
    let pid = spawn_case(name, 1)?;
    let lost_before = lost_to_cuts();
    multikernel::request_migration_with(pid, ClusterId(PEER), MigrateOptions::new(strategy));
    run_until("the phase", || {
        multikernel::migration_phase(pid) == Some(phase) || multikernel::outcome(pid).is_some()
    })?;
    ensure!(
        multikernel::outcome(pid).is_none(),
        "ended before the cut: {:?}",
        multikernel::outcome(pid)
    );
    cut_the_link()?;
    run_until("the migration to end", || {
        multikernel::outcome(pid).is_some()
    })?;
    ensure!(lost_to_cuts() > lost_before, "the cut lost nothing");
    let here = with_table(|t| t.is_alive(pid));
    match multikernel::outcome(pid) {
        Some(Ok(to)) => {
            ensure_eq!(to, ClusterId(PEER));
            ensure!(!here, "a copy runs at both ends");
            log::info!("{} of {name}: completed after the heal", strategy.name());
        }
        outcome => {
            ensure!(here, "failed ({outcome:?}) and gone from its source");
            let frozen = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.is_frozen()));
            ensure_eq!(frozen, Some(false));
            ensure_eq!(multikernel::location(pid), None);
            log::info!(
                "{} of {name}: failed cleanly ({outcome:?})",
                strategy.name()
            );
            // Nothing lost: it moves (to a cluster not cut) and its memory checks out.
            move_by(pid, 1, strategy)?;
        }
    }
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn a_cut_during_a_stop_and_copy_transfer_leaves_one_copy() -> Result<(), String> {
    one_copy_across_a_cut("heap64", Strategy::StopAndCopy, Phase::Transferring)
}

fn a_cut_during_precopy_rounds_leaves_one_copy() -> Result<(), String> {
    one_copy_across_a_cut("heap64", Strategy::PreCopy, Phase::PreCopying)
}

/// The first page grant's allowance of a stop-and-copy image is lost (the router drops it) and
/// the later ones get through: the source fills the second grant with the first batch. The
/// destination sees a landing out of grant order and drops the image rather than map those
/// pages at the wrong addresses; the process stays here, whole, and moves intact afterwards.
fn a_lost_page_allowance_never_misplaces_pages() -> Result<(), String> {
    let pid = spawn_case("heap64", 1)?;
    run_until("earlier migrations to settle", multikernel::migrations_idle)?;
    arm_router(&alloc::format!(
        "drop 1 {PEER} 0 {} *",
        multikernel_proto::ports::IMAGE_PAGES
    ))?;
    multikernel::request_migration_with(
        pid,
        ClusterId(PEER),
        MigrateOptions::new(Strategy::StopAndCopy),
    );
    run_until("the migration to end", || {
        multikernel::outcome(pid).is_some()
    })?;
    let outcome = multikernel::outcome(pid);
    arm_router("drop 0 * * * *")?;
    ensure!(
        matches!(outcome, Some(Err(_))),
        "pages filled the wrong grant and the image was taken: {outcome:?}"
    );
    ensure!(with_table(|t| t.is_alive(pid)), "gone from its source");
    let frozen = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.is_frozen()));
    ensure_eq!(frozen, Some(false));
    ensure_eq!(multikernel::location(pid), None);
    move_by(pid, PEER, Strategy::StopAndCopy)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}
