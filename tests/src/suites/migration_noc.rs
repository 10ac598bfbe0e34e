//! Migration between clusters over the NoC (4 clusters, one boot). Cluster 0 drives every
//! case: it spawns a `zdtm` program, asks the migration daemons to move it (its home keeps
//! track of where it is), and waits for the program's own verdict — its exit code, reported
//! home from whichever cluster it ends on. The other clusters serve: they run what arrives
//! until cluster 0 says the suite is over, then check nothing was left frozen.

use abi::{ClusterId, MigrateOptions, Pid, Strategy};
use alloc::string::String;
use kernel::noc::{self, sync};
use kernel::process::{scheduler, with_table};
use migration::MigrationError;

use crate::suites::migration_atomic::{
    commit_acknowledgement_lost_one_copy_runs, commit_decision_lost_one_copy_runs,
    kill_while_awaiting_prepared, kill_while_committing, kill_while_offered,
    kill_while_transferring,
};
use crate::suites::migration_userdma::{
    self_migration_refused_returns_the_error, self_migration_while_another_is_in_flight,
    user_portal_dma_fault_reaches_the_writer, user_portal_write_by_dma_arrives_intact,
    writer_unmaps_and_exits_mid_transfer,
};
use crate::{ensure, ensure_eq, tests};

pub const DRIVER: &[crate::framework::Test] = tests![
    all_clusters_joined,
    memory_moves_to_a_neighbour,
    threads_there_and_back,
    chain_through_every_cluster,
    thread_blocked_in_sleep,
    thread_blocked_in_futex_wait,
    main_thread_blocked_in_join,
    sse_registers_live,
    deep_recursion,
    busy_thread_mid_computation,
    process_migrates_itself,
    every_case_moves_by_stop_and_copy,
    flooded_mailbox_every_message_once,
    pingpong_across_clusters,
    spawn_on_another_cluster_and_wait,
    sync_rounds_with_processes_on_every_cluster,
    portal_1mib_between_processes_on_two_clusters,
    portal_state_follows_sender_and_receiver,
    name_service_across_clusters,
    hundred_back_and_forth,
    heap_of_64_mib,
    destination_refuses,
    lost_offer_is_sent_again,
    dma_fault_mid_migration_leaves_the_process_at_home,
    commit_decision_lost_one_copy_runs,
    commit_acknowledgement_lost_one_copy_runs,
    kill_while_offered,
    kill_while_transferring,
    kill_while_awaiting_prepared,
    kill_while_committing,
    user_portal_write_by_dma_arrives_intact,
    user_portal_dma_fault_reaches_the_writer,
    self_migration_refused_returns_the_error,
    self_migration_while_another_is_in_flight,
    writer_unmaps_and_exits_mid_transfer,
    destination_gone_mid_transfer,
];

pub const SERVING: &[crate::framework::Test] = tests![
    all_clusters_joined,
    serve_until_the_driver_is_done,
    nothing_left_frozen
];

pub const TIMEOUT_NS: u64 = 150_000_000_000;
const RELEASE_PORT: u16 = 0x7100;

pub fn run_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    scheduler::run_until(|| done() || hal::timer::expired(deadline), || {});
    if done() {
        Ok(())
    } else {
        Err(alloc::format!("timed out waiting for {what}"))
    }
}

fn all_nodes() -> alloc::vec::Vec<hal::noc::ClusterId> {
    (0..noc::cluster_count()).map(hal::noc::ClusterId).collect()
}

pub fn all_clusters_joined() -> Result<(), String> {
    ensure!(
        noc::cluster_count() >= 2,
        "needs 2 clusters or more, have {}",
        noc::cluster_count()
    );
    run_until("every cluster to join", noc::all_joined)
}

/// The zdtm cases that wait to be moved (`zdtm CASE N`): each strategy's suite moves every
/// one of them away and back.
pub const CASES: &[&str] = &[
    "memory",
    "threads",
    "sleep",
    "futex",
    "join",
    "fpu",
    "recursion",
    "heap64",
    "busy",
    "clock",
    "dirty",
    "mailbox",
];

pub fn spawn_case(case: &str, moves: u32) -> Result<Pid, String> {
    let moves = alloc::format!("{moves}");
    let pid = with_table(|t| t.spawn("zdtm", &[case, &moves], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    run_until("the case to be ready", || {
        kernel::process::console_history(Some(pid))
            .iter()
            .any(|l| l.starts_with("ready"))
    })?;
    Ok(pid)
}

/// Moves `pid` to `to` (stop-and-copy) and waits until its home knows it arrived.
pub fn move_to(pid: Pid, to: u16) -> Result<(), String> {
    move_by(pid, to, Strategy::StopAndCopy)
}

/// Moves `pid` to `to` by `strategy` and waits until its home knows it arrived.
pub fn move_by(pid: Pid, to: u16, strategy: Strategy) -> Result<(), String> {
    move_with(pid, to, MigrateOptions::new(strategy))
}

/// As [`move_by`], with every option of `migrate_with`.
pub fn move_with(pid: Pid, to: u16, options: MigrateOptions) -> Result<(), String> {
    let (here, strategy) = (noc::cluster().0, options.strategy);
    multikernel::request_migration_with(pid, ClusterId(to), options);
    if to == here {
        run_until("the process to come home", || {
            with_table(|t| t.processes.contains_key(&pid)) && multikernel::location(pid).is_none()
        })
    } else {
        run_until("the migration", || {
            multikernel::location(pid) == Some(ClusterId(to))
                || matches!(multikernel::outcome(pid), Some(Err(_)))
        })?;
        match multikernel::outcome(pid) {
            Some(Err(error)) if multikernel::location(pid) != Some(ClusterId(to)) => Err(
                alloc::format!("{} to c{to} failed: {error:?}", strategy.name()),
            ),
            _ => Ok(()),
        }
    }
}

/// A destination that refuses: the migration fails, the process runs on here, unfrozen,
/// and moves fine once the destination accepts again.
pub fn refused_then_moves(name: &str, to: u16, strategy: Strategy) -> Result<(), String> {
    let pid = spawn_case(name, 1)?;
    multikernel::set_refusing(ClusterId(to), true);
    multikernel::request_migration_with(pid, ClusterId(to), MigrateOptions::new(strategy));
    run_until("the refusal", || multikernel::outcome(pid).is_some())?;
    let outcome = multikernel::outcome(pid);
    multikernel::set_refusing(ClusterId(to), false);
    ensure_eq!(outcome, Some(Err(MigrationError::Refused)));
    ensure!(
        with_table(|t| t.is_alive(pid)),
        "the process died after a refused migration"
    );
    let frozen = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.is_frozen()));
    ensure_eq!(frozen, Some(false));
    // It still works, and can still move.
    move_by(pid, to, strategy)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// The DMA engine corrupts the next transfer: the migration fails, the process is still
/// here and intact, and it moves fine afterwards.
pub fn faulted_then_moves(name: &str, strategy: Strategy) -> Result<(), String> {
    let pid = spawn_case(name, 1)?;
    crate::suites::migration_atomic::arm_router("dma-corrupt 1")?;
    multikernel::request_migration_with(pid, ClusterId(1), MigrateOptions::new(strategy));
    run_until("the failed migration", || {
        multikernel::outcome(pid).is_some()
    })?;
    let outcome = multikernel::outcome(pid);
    ensure!(
        matches!(outcome, Some(Err(_))),
        "a corrupted transfer succeeded: {outcome:?}"
    );
    ensure!(
        with_table(|t| t.is_alive(pid)),
        "the process is gone after a failed migration"
    );
    ensure_eq!(multikernel::location(pid), None);
    // Nothing lost: it moves fine afterwards and its memory checks out.
    move_by(pid, 1, strategy)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// The newest migration record of `pid` on this (the source) cluster, once one satisfies
/// `ready`: records are written when the destination confirms (and completed when a
/// post-copy's report comes), so one may follow the process's arrival.
pub fn record_when(
    pid: Pid,
    ready: impl Fn(&kernel::migstats::Record) -> bool,
) -> Result<kernel::migstats::Record, String> {
    let latest = || {
        kernel::migstats::recent()
            .into_iter()
            .rev()
            .find(|r| r.pid == pid)
            .filter(|r| ready(r))
    };
    run_until("the record", || latest().is_some())?;
    latest().ok_or_else(|| "no record".into())
}

pub fn exit_code(pid: Pid) -> Result<i32, String> {
    run_until("the case to exit", || {
        with_table(|t| t.orphan_exit_code(pid)).is_some()
    })?;
    with_table(|t| t.orphan_exit_code(pid)).ok_or_else(|| "no exit code".into())
}

/// Spawns a case, moves it along `path`, and expects its own check to pass.
fn case(name: &str, path: &[u16]) -> Result<(), String> {
    case_moved_by(name, path, move_to)
}

/// As [`case`], each move made by `move_to` (a strategy's).
pub fn case_moved_by(
    name: &str,
    path: &[u16],
    move_to: impl Fn(Pid, u16) -> Result<(), String>,
) -> Result<(), String> {
    let pid = spawn_case(name, path.len() as u32)?;
    for &to in path {
        move_to(pid, to)?;
    }
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn memory_moves_to_a_neighbour() -> Result<(), String> {
    case("memory", &[1])
}

fn threads_there_and_back() -> Result<(), String> {
    case("threads", &[1, 0])
}

fn chain_through_every_cluster() -> Result<(), String> {
    let path: alloc::vec::Vec<u16> = (1..noc::cluster_count()).collect();
    case("memory", &path)
}

fn thread_blocked_in_sleep() -> Result<(), String> {
    case("sleep", &[2])
}

fn thread_blocked_in_futex_wait() -> Result<(), String> {
    case("futex", &[3])
}

fn main_thread_blocked_in_join() -> Result<(), String> {
    case("join", &[1])
}

fn sse_registers_live() -> Result<(), String> {
    case("fpu", &[2, 3])
}

fn deep_recursion() -> Result<(), String> {
    case("recursion", &[3])
}

fn busy_thread_mid_computation() -> Result<(), String> {
    case("busy", &[1])
}

fn process_migrates_itself() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("zdtm", &["selfmove", "3"], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    ensure_eq!(multikernel::location(pid), None);
    Ok(())
}

fn every_case_moves_by_stop_and_copy() -> Result<(), String> {
    every_case_moves_by(Strategy::StopAndCopy)
}

/// Every zdtm case moved away and back by `strategy`, one through every other cluster, and
/// the case that moves itself (the way back is asked of cluster 0, the process's home).
pub fn every_case_moves_by(strategy: Strategy) -> Result<(), String> {
    let move_to = |pid, to| move_by(pid, to, strategy);
    for name in CASES {
        case_moved_by(name, &[1, 0], move_to).map_err(|e| alloc::format!("{name}: {e}"))?;
    }
    case_moved_by("memory", &[1, 2, 3, 0], move_to)?;
    moves_itself_by(strategy).map_err(|e| alloc::format!("selfmove: {e}"))
}

/// `zdtm selfmove 3 STRATEGY`: the process calls `migrate_with` on itself; the call returns 0
/// on cluster 3, and it finishes there.
pub fn moves_itself_by(strategy: Strategy) -> Result<(), String> {
    let args = ["selfmove", "3", strategy.name()];
    let pid = with_table(|t| t.spawn("zdtm", &args, None)).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    ensure_eq!(multikernel::location(pid), None);
    Ok(())
}

fn flooded_mailbox_every_message_once() -> Result<(), String> {
    // Moved twice while its child floods it, with its main thread blocked in mailbox_read.
    case("mailbox", &[1, 2])
}

fn pingpong_across_clusters() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("pingpong", &["20", "3"], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn spawn_on_another_cluster_and_wait() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("zdtm", &["spawnwait", "2"], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn sync_rounds_with_processes_on_every_cluster() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("abitest", &["barrier"], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn portal_1mib_between_processes_on_two_clusters() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("abitest", &["portal", "2"], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// The sender moves (its allowance follows) before it writes; the receiver moves (the unread
/// megabyte follows) before it reads: every byte arrives (`abitest portal-follow`).
fn portal_state_follows_sender_and_receiver() -> Result<(), String> {
    let args = ["portal-follow", "1", "2", "3"];
    let pid =
        with_table(|t| t.spawn("abitest", &args, None)).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn name_service_across_clusters() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("abitest", &["names", "3"], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

fn hundred_back_and_forth() -> Result<(), String> {
    let path: alloc::vec::Vec<u16> = (0..100).map(|i| if i % 2 == 0 { 1 } else { 0 }).collect();
    case("threads", &path)
}

fn heap_of_64_mib() -> Result<(), String> {
    let pid = spawn_case("heap64", 1)?;
    move_to(pid, 1)?;
    ensure_eq!(exit_code(pid)?, 0);
    if let Some(record) = kernel::migstats::recent()
        .iter()
        .rev()
        .find(|r| r.pid == pid)
    {
        hal::println!(
            "    (64 MiB over the NoC: {} pages, {} ms total)",
            record.pages,
            record.total_ns / 1_000_000
        );
    }
    Ok(())
}

fn destination_refuses() -> Result<(), String> {
    refused_then_moves("memory", 2, Strategy::StopAndCopy)
}

fn lost_offer_is_sent_again() -> Result<(), String> {
    let pid = spawn_case("memory", 1)?;
    // The router damages the next message to cluster 1 (after its checksum), as a flaky link
    // would: cluster 1 drops the offer, and the source offers again.
    crate::suites::migration_atomic::arm_router("corrupt 1 1")?;
    move_to(pid, 1)?;
    ensure!(
        !with_table(|t| t.processes.contains_key(&pid)),
        "a copy is left at the source"
    );
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// The DMA engine fails the image mid-migration: the source aborts and thaws the process,
/// which runs on at home, intact (issue 10: a DMA fault leaves the process at its source).
fn dma_fault_mid_migration_leaves_the_process_at_home() -> Result<(), String> {
    faulted_then_moves("memory", Strategy::StopAndCopy)
}

/// The last case: a 64 MiB process starts moving to cluster 3, and the other clusters are
/// released meanwhile, so cluster 3 powers off in the middle of the transfer. The source must
/// notice (the router marks the cluster gone), thaw the process and keep it running, intact.
fn destination_gone_mid_transfer() -> Result<(), String> {
    let pid = spawn_case("heap64", 1)?;
    let last = noc::cluster_count() - 1;
    // By DMA the 64 MiB move takes well under a second: hold it mid-transfer by losing the
    // destination's grants for the pages (its allowances on the pages port), then end the
    // other clusters.
    crate::suites::migration_atomic::arm_router(&alloc::format!(
        "drop 1000000 {last} 0 {} *",
        multikernel_proto::ports::IMAGE_PAGES
    ))?;
    multikernel::request_migration(pid, ClusterId(last));
    run_until("the pages to be on their way", || {
        multikernel::migration_phase(pid)
            == Some(multikernel::migration::source::Phase::Transferring)
    })?;
    let until = hal::clock::now_ns() + 100_000_000;
    scheduler::run_until(|| hal::timer::expired(until), || {});
    release_the_other_clusters()?;
    run_until("the migration to end", || {
        multikernel::outcome(pid).is_some()
    })?;
    crate::suites::migration_atomic::arm_router("drop 0 * * * *")?;
    let outcome = multikernel::outcome(pid);
    ensure!(
        matches!(outcome, Some(Err(_))),
        "the migration to a vanished cluster succeeded: {outcome:?}"
    );
    ensure!(
        with_table(|t| t.is_alive(pid)),
        "the process died with its destination"
    );
    let frozen = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.is_frozen()));
    ensure_eq!(frozen, Some(false));
    // Nothing lost: a move through a full image here lets it check its 64 MiB and finish.
    migration::local::checkpoint_restore(pid).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

pub fn release_the_other_clusters() -> Result<(), String> {
    let nodes = all_nodes();
    let release = sync::open(
        hal::noc::PortId(RELEASE_PORT),
        &nodes,
        sync::SyncMode::OneToAll,
    )
    .map_err(|e| alloc::format!("{e:?}"))?;
    kernel::noc::retry(TIMEOUT_NS, || sync::signal(&release)).map_err(|e| alloc::format!("{e:?}"))
}

pub fn serve_until_the_driver_is_done() -> Result<(), String> {
    let nodes = all_nodes();
    let release = sync::create(
        hal::noc::PortId(RELEASE_PORT),
        &nodes,
        sync::SyncMode::OneToAll,
    )
    .map_err(|e| alloc::format!("{e:?}"))?;
    // Long: the driver runs every case first.
    let deadline = hal::clock::now_ns() + 20 * TIMEOUT_NS;
    scheduler::run_until(
        || sync::try_wait(&release).is_ok() || hal::timer::expired(deadline),
        || {},
    );
    ensure!(
        hal::clock::now_ns() <= deadline,
        "the driver never finished"
    );
    Ok(())
}

pub fn nothing_left_frozen() -> Result<(), String> {
    let frozen = with_table(|t| t.processes.values().filter(|p| p.uarea.is_frozen()).count());
    ensure_eq!(frozen, 0);
    Ok(())
}
