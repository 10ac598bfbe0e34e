//! Migration stays atomic when the network loses the protocol's messages, and a kill that
//! arrives in any phase takes effect exactly once (issue 9). Cases of the `migration` suite
//! (4 clusters), driven by cluster 0.
//!
//! The router's `drop` fault loses chosen daemon messages (by source, destination, port and
//! message kind) without a trace, as a flaky link would. The protocol must re-send until the
//! message gets through, and exactly one copy of the process may ever run.

use abi::{ClusterId, Pid};
use alloc::string::String;
use kernel::process::{with_table, KILLED_EXIT_CODE};
use kernel::requests::{post, Request};
use multikernel::migration::source::Phase;
use multikernel_proto::message::kind;
use multikernel_proto::ports;

use super::migration_noc::{exit_code, move_to, run_until, spawn_case, TIMEOUT_NS};
use crate::{ensure, ensure_eq};

/// The protocol's re-send interval: a lost message delays the migration at least this much.
const RETRANSMIT_NS: u64 = 200_000_000;

/// Sends a fault-injection command to the router.
pub fn arm_router(command: &str) -> Result<(), String> {
    let request = hal::noc::Header::new(
        hal::noc::Kind::Control,
        hal::noc::ClusterId(kernel::noc::cluster().0),
        hal::noc::ClusterId::ROUTER,
        hal::noc::PortId(0),
        0,
    );
    kernel::noc::retry(TIMEOUT_NS, || {
        hal::noc::send(request, command.as_bytes()).map_err(kernel::noc::NocError::from)
    })
    .map_err(|e| alloc::format!("arming `{command}`: {e:?}"))?;
    // The command travels in the same TX ring as what follows, so it is armed first.
    Ok(())
}

/// Loses the next `count` daemon messages of `kind` from `src` to `dst`, once the earlier
/// migrations are over: their last re-sends and answers must not use up the budget.
fn drop_daemon_messages(count: u32, src: u16, dst: u16, kind: u8) -> Result<(), String> {
    run_until("earlier migrations to settle", multikernel::migrations_idle)?;
    let quiet_until = hal::clock::now_ns() + 2 * RETRANSMIT_NS;
    kernel::process::scheduler::run_until(|| hal::timer::expired(quiet_until), || {});
    arm_router(&alloc::format!(
        "drop {count} {src} {dst} {} {kind}",
        ports::DAEMON
    ))
}

fn clear_drops() -> Result<(), String> {
    arm_router("drop 0 * * * *")
}

/// The newest migration record of `pid` on this (the source) cluster.
fn downtime_ns(pid: Pid) -> Option<u64> {
    kernel::migstats::recent()
        .iter()
        .rev()
        .find(|r| r.pid == pid && r.failure.is_none())
        .map(|r| r.downtime_ns)
}

/// Moves a process to cluster 1 while `count` messages of `kind` are lost, then checks that
/// it runs there alone, that the loss really happened (the move waited for a re-send), and
/// that the process finishes its own check.
fn move_losing(kind: u8, src: u16, dst: u16) -> Result<(), String> {
    let pid = spawn_case("memory", 1)?;
    drop_daemon_messages(2, src, dst, kind)?;
    let moved = move_to(pid, 1);
    // The move is decided before the lost messages are re-sent: clear the fault only once
    // the destination has confirmed.
    let settled = run_until("the migration to settle", multikernel::migrations_idle);
    clear_drops()?;
    moved?;
    settled?;
    ensure!(
        !with_table(|t| t.processes.contains_key(&pid)),
        "a second copy is left at the source"
    );
    run_until("the migration record", || downtime_ns(pid).is_some())?;
    let downtime = downtime_ns(pid).unwrap_or(0);
    // Two losses cost at least two re-sends; the first may come early (an answer to the
    // destination's own re-send), hence half the interval.
    ensure!(
        downtime >= RETRANSMIT_NS / 2,
        "the move took {downtime} ns: the lost message was never lost"
    );
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// The source's Commit is lost twice: the destination waits, prepared, until a re-send
/// arrives (before, the source gave up and thawed while the destination ran: two copies).
pub fn commit_decision_lost_one_copy_runs() -> Result<(), String> {
    move_losing(kind::COMMIT, 0, 1)
}

/// The destination's Committed is lost twice: the source re-sends Commit, the destination
/// answers again, nothing runs twice.
pub fn commit_acknowledgement_lost_one_copy_runs() -> Result<(), String> {
    move_losing(kind::COMMITTED, 1, 0)
}

/// Starts moving a process that never exits by itself (it waits for 2 moves), holds the
/// migration in `phase` by losing messages, kills it there, and checks it ends exactly once,
/// killed — never finishing its own check on a copy that survived the kill.
fn kill_during(phase: Phase, case: &str, hold: Option<(u8, u16, u16)>) -> Result<(), String> {
    let pid = spawn_case(case, 2)?;
    if let Some((kind, src, dst)) = hold {
        drop_daemon_messages(8, src, dst, kind)?;
    }
    multikernel::request_migration(pid, ClusterId(1));
    let reached = run_until("the phase", || {
        let now = multikernel::migration_phase(pid);
        now == Some(phase) || (now.is_none() && multikernel::outcome(pid).is_some())
    });
    let in_phase = multikernel::migration_phase(pid) == Some(phase);
    post(Request::Kill(pid));
    let ended = exit_code(pid);
    clear_drops()?;
    reached?;
    ensure!(in_phase, "the migration never reached {phase:?}");
    ensure_eq!(ended?, KILLED_EXIT_CODE);
    ensure!(
        !with_table(|t| t.is_alive(pid)),
        "still alive at the source after the kill"
    );
    // Nothing left anywhere: the home knows of no location, and nothing else exits later.
    run_until("the home to forget it", || {
        multikernel::location(pid).is_none()
    })?;
    Ok(())
}

pub fn kill_while_offered() -> Result<(), String> {
    kill_during(Phase::Offered, "memory", Some((kind::ACCEPT, 1, 0)))
}

pub fn kill_while_transferring() -> Result<(), String> {
    kill_during(Phase::Transferring, "heap64", None)
}

pub fn kill_while_awaiting_prepared() -> Result<(), String> {
    kill_during(
        Phase::AwaitingPrepared,
        "memory",
        Some((kind::PREPARED, 1, 0)),
    )
}

pub fn kill_while_committing() -> Result<(), String> {
    kill_during(Phase::Committing, "memory", Some((kind::COMMIT, 0, 1)))
}
