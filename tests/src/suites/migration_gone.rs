//! A migration whose destination leaves the machine for good (its QEMU exits; the router
//! tells the others), under each live strategy — issue 13's "destination gone". Before the
//! commit the process was never anywhere else: it goes on at its source, whole, and moves
//! later. After a post-copy's commit it lived only at the destination with part of its
//! pages: it is gone with it, and the source lets go of the pages it kept, never running a
//! second copy; its home logs the loss and keeps pointing at the cluster that left, so mail to
//! it, and a parent's `wait`, say `EHOSTDOWN` (`harden_noc`).
//! 4 clusters: cluster 0 drives, and tells each destination in turn to leave.

use abi::{ClusterId, MigrateOptions, Pid, Strategy};
use alloc::string::String;
use kernel::noc::{mailbox, NocError};
use kernel::process::{scheduler, with_table};
use multikernel::migration::source::Phase;

use super::migration_atomic::arm_router;
use super::migration_noc::{
    all_clusters_joined, exit_code, move_by, record_when, run_until, spawn_case,
};
use crate::{ensure, ensure_eq, tests};

pub const DRIVER: &[crate::framework::Test] = tests![
    all_clusters_joined,
    precopy_destination_gone_mid_rounds_leaves_it_running,
    hybrid_destination_gone_mid_round_leaves_it_running,
    postcopy_destination_gone_after_the_commit_lets_its_pages_go,
    every_cluster_told_to_leave
];

pub const SERVING: &[crate::framework::Test] =
    tests![joined_with_the_driver, serve_until_told_to_leave];

/// The port a serving cluster waits on for its turn to leave.
const LEAVE_PORT: u16 = 0x7200;

fn err(e: NocError) -> String {
    alloc::format!("{e:?}")
}

/// Tells `cluster` to end its run now: its QEMU exits, and the router tells the others.
fn tell_to_leave(cluster: u16) -> Result<(), String> {
    let to =
        mailbox::open(hal::noc::ClusterId(cluster), hal::noc::PortId(LEAVE_PORT)).map_err(err)?;
    let mut payload = [0u8; noc_proto::wire::MAILBOX_PAYLOAD];
    payload[..5].copy_from_slice(b"leave");
    kernel::noc::retry(super::migration_noc::TIMEOUT_NS, || {
        mailbox::write(&to, &payload)
    })
    .map_err(err)
}

/// Waits until the router says `cluster` left.
fn until_gone(cluster: u16) -> Result<(), String> {
    run_until("the destination to leave", || {
        hal::noc::live_clusters() & (1 << cluster) == 0
    })
}

/// A serving cluster is on the NoC with cluster 0. Not "every cluster joined": a cluster
/// that boots late may find another already told to leave.
fn joined_with_the_driver() -> Result<(), String> {
    let me = kernel::noc::cluster().0;
    run_until("this cluster and the driver to be on the NoC", || {
        let live = hal::noc::live_clusters();
        live & 1 != 0 && live & (1 << me) != 0
    })
}

/// A serving cluster: serves migrations until the driver tells it to leave.
fn serve_until_told_to_leave() -> Result<(), String> {
    let inbox = mailbox::create(hal::noc::PortId(LEAVE_PORT)).map_err(err)?;
    let deadline = hal::clock::now_ns() + 20 * super::migration_noc::TIMEOUT_NS;
    scheduler::run_until(
        || mailbox::try_read(&inbox).is_ok() || hal::timer::expired(deadline),
        || {},
    );
    ensure!(hal::clock::now_ns() <= deadline, "never told to leave");
    Ok(())
}

/// The last case: whichever serving cluster is still here leaves too.
fn every_cluster_told_to_leave() -> Result<(), String> {
    for cluster in 1..kernel::noc::cluster_count() {
        if hal::noc::live_clusters() & (1 << cluster) != 0 {
            tell_to_leave(cluster)?;
        }
    }
    Ok(())
}

/// `strategy` (a live one) to `to`, held in its rounds (the router loses the destination's
/// page grants), then the destination leaves: the migration fails, the process never
/// stopped, and it checks out after a move through a full image here.
fn destination_gone_mid_rounds(strategy: Strategy, to: u16) -> Result<(), String> {
    let pid = spawn_case("heap64", 1)?;
    arm_router(&alloc::format!(
        "drop 1000000 {to} 0 {} *",
        multikernel_proto::ports::IMAGE_PAGES
    ))?;
    multikernel::request_migration_with(pid, ClusterId(to), MigrateOptions::new(strategy));
    run_until("the rounds", || {
        multikernel::migration_phase(pid) == Some(Phase::PreCopying)
    })?;
    tell_to_leave(to)?;
    until_gone(to)?;
    run_until("the migration to end", || {
        multikernel::outcome(pid).is_some()
    })?;
    arm_router("drop 0 * * * *")?;
    let outcome = multikernel::outcome(pid);
    ensure!(matches!(outcome, Some(Err(_))), "{outcome:?}");
    let state = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.is_frozen()));
    ensure_eq!(state, Some(false));
    ensure_eq!(multikernel::location(pid), None);
    migration::local::checkpoint_restore(pid).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn precopy_destination_gone_mid_rounds_leaves_it_running() -> Result<(), String> {
    destination_gone_mid_rounds(Strategy::PreCopy, 3)
}

fn hybrid_destination_gone_mid_round_leaves_it_running() -> Result<(), String> {
    destination_gone_mid_rounds(Strategy::Hybrid, 2)
}

/// A post-copy to cluster 1 commits with its pages held here (the router loses cluster 1's
/// page allowances), then cluster 1 leaves: the process is gone with it — no copy runs
/// here, the pages kept for it are let go, its home still names cluster 1 (so mail to it is
/// answered `EHOSTDOWN`), and the record of the move
/// is completed as cut short.
fn postcopy_destination_gone_after_the_commit_lets_its_pages_go() -> Result<(), String> {
    let pid: Pid = spawn_case("heap64", 2)?;
    arm_router(&alloc::format!(
        "drop 1000000 1 0 {} *",
        multikernel_proto::ports::POSTCOPY_PAGES
    ))?;
    move_by(pid, 1, Strategy::PostCopy)?;
    ensure!(
        multikernel::serves_postcopy_to(ClusterId(1)),
        "no page kept for it"
    );
    tell_to_leave(1)?;
    until_gone(1)?;
    run_until("its pages to be let go", || {
        !multikernel::serves_postcopy_to(ClusterId(1))
    })?;
    arm_router("drop 0 * * * *")?;
    ensure!(
        !with_table(|t| t.is_alive(pid)),
        "a copy runs at the source"
    );
    // Its home still says where it was lost: mail to it is answered `EHOSTDOWN`.
    ensure_eq!(multikernel::location(pid), Some(ClusterId(1)));
    let record = record_when(pid, |r| r.phases.cut_short)?;
    ensure!(record.failure.is_none(), "{record:?}");
    Ok(())
}
