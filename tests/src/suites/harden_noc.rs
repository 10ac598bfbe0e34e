//! Issue 11 across clusters (4 clusters, one boot): nothing accepted is lost between
//! mailboxes on different clusters, and the process tree survives migration and the loss
//! of a cluster. Cluster 0 drives `abitest mail-remote` and `abitest tree`: once the tree's
//! children exist (`tree: ready`) it moves the parent to cluster 1 and ends cluster 3. Clusters 1 and 2 serve until
//! the driver is done; cluster 3 serves until it is told to go.

use abi::Pid;
use alloc::string::String;
use kernel::noc::{self, sync};
use kernel::process::{console_history, scheduler, with_table};

use crate::suites::migration_noc::{
    all_clusters_joined, exit_code, move_to, nothing_left_frozen, run_until,
    serve_until_the_driver_is_done, TIMEOUT_NS,
};
use crate::{ensure, ensure_eq, tests};

pub const DRIVER: &[crate::framework::Test] = tests![
    all_clusters_joined,
    full_remote_inbox_refuses_and_nothing_accepted_is_lost,
    process_tree_survives_migration_and_a_lost_cluster,
    release_the_servers,
];

pub const SERVING: &[crate::framework::Test] = tests![
    all_clusters_joined,
    serve_until_released,
    nothing_left_frozen
];

/// The cluster the tree case loses.
const DOOMED: u16 = 3;
const DOOMED_PORT: u16 = 0x7300;

fn failures(pid: Pid) -> alloc::vec::Vec<String> {
    console_history(Some(pid))
        .into_iter()
        .filter(|l| l.starts_with("FAIL"))
        .collect()
}

fn printed(pid: Pid, line: &str) -> bool {
    console_history(Some(pid))
        .iter()
        .any(|l| l.starts_with(line))
}

fn full_remote_inbox_refuses_and_nothing_accepted_is_lost() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("abitest", &["mail-remote", "2"], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    let code = exit_code(pid)?;
    let failed = failures(pid);
    ensure!(failed.is_empty(), "{failed:?}");
    ensure_eq!(code, 0);
    Ok(())
}

fn process_tree_survives_migration_and_a_lost_cluster() -> Result<(), String> {
    let pid =
        with_table(|t| t.spawn("abitest", &["tree"], None)).map_err(|e| alloc::format!("{e:?}"))?;
    run_until("the children", || {
        printed(pid, "tree: ready") || exited(pid)
    })?;
    // The parent leaves its children behind: one here, two on cluster 2, one on 3; then
    // cluster 3 goes. Its console is on cluster 1 from now on: its exit code (reported
    // home) says whether every check there held.
    move_to(pid, 1)?;
    end_cluster(DOOMED)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn exited(pid: Pid) -> bool {
    with_table(|t| t.orphan_exit_code(pid)).is_some()
}

/// Tells `cluster` to end its boot, and waits until the router counts it gone.
fn end_cluster(cluster: u16) -> Result<(), String> {
    let nodes = [hal::noc::ClusterId(0), hal::noc::ClusterId(cluster)];
    let go = sync::open(
        hal::noc::PortId(DOOMED_PORT),
        &nodes,
        sync::SyncMode::OneToAll,
    )
    .map_err(|e| alloc::format!("{e:?}"))?;
    noc::retry(TIMEOUT_NS, || sync::signal(&go)).map_err(|e| alloc::format!("{e:?}"))?;
    run_until("the cluster to leave", || {
        hal::noc::live_clusters() & (1 << cluster) == 0
    })
}

fn release_the_servers() -> Result<(), String> {
    crate::suites::migration_noc::release_the_other_clusters()
}

fn serve_until_released() -> Result<(), String> {
    if noc::cluster().0 != DOOMED {
        return serve_until_the_driver_is_done();
    }
    let nodes = [hal::noc::ClusterId(0), hal::noc::ClusterId(DOOMED)];
    let go = sync::create(
        hal::noc::PortId(DOOMED_PORT),
        &nodes,
        sync::SyncMode::OneToAll,
    )
    .map_err(|e| alloc::format!("{e:?}"))?;
    let deadline = hal::clock::now_ns() + 20 * TIMEOUT_NS;
    scheduler::run_until(
        || sync::try_wait(&go).is_ok() || hal::timer::expired(deadline),
        || {},
    );
    ensure!(hal::clock::now_ns() <= deadline, "never told to go");
    Ok(())
}
