//! User portal writes by DMA and truthful self-migration (issue 10 item 4, issue 11 item 7),
//! driven from cluster 0 of the `migration` suite: the writer lives here, its reader on
//! cluster 1 (`abitest dma-*`), and `zdtm self*` moves itself.

use abi::{ClusterId, Pid, PortId};
use alloc::string::String;
use kernel::envelope::{Mail, MailKind};
use kernel::process::{scheduler, with_table};
use uarea::{BlockReason, ThreadState};

use super::migration_atomic::arm_router;
use super::migration_noc::{exit_code, run_until};
use crate::{ensure, ensure_eq};

fn spawn(program: &str, args: &[&str]) -> Result<Pid, String> {
    with_table(|t| t.spawn(program, args, None)).map_err(|e| alloc::format!("spawn: {e:?}"))
}

/// True while a thread of `pid` is blocked in a portal write the engine carries out.
fn blocked_in_dma(pid: Pid) -> bool {
    with_table(|t| {
        t.processes.get(&pid).is_some_and(|p| {
            p.uarea
                .threads
                .iter()
                .any(|t| matches!(t.state, ThreadState::Blocked(BlockReason::PortalDma { .. })))
        })
    })
}

fn pinned() -> usize {
    hal::frames::pinned_count().0
}

/// Lets the scheduler and the daemons run for `ns` (no assertion on time: only sequencing).
fn pass_time(ns: u64) {
    let until = hal::clock::now_ns() + ns;
    scheduler::run_until(|| hal::timer::expired(until), || {});
}

/// (a) 1 MiB from a process here to one on cluster 1: the writer blocks in the DMA with its
/// pages held, returns `Ok(1 MiB)` only after the engine is done (it overwrites its buffer at
/// once, and the reader still sees the original bytes), and the pages are let go.
pub fn user_portal_write_by_dma_arrives_intact() -> Result<(), String> {
    let held_before = pinned();
    let pid = spawn("abitest", &["dma-write", "1"])?;
    run_until("the writer to block in the DMA", || blocked_in_dma(pid))?;
    ensure!(
        pinned() >= held_before + 256,
        "the writer's 1 MiB is not held: {} frames pinned",
        pinned()
    );
    ensure_eq!(exit_code(pid)?, 0);
    run_until("the pages to be let go", || pinned() == held_before)?;
    Ok(())
}

/// (b) The engine corrupts the transfer: the writer's call fails with `EIO`, the reader gets
/// nothing of it, and the next write arrives intact (`abitest dma-fault` checks both ends).
pub fn user_portal_dma_fault_reaches_the_writer() -> Result<(), String> {
    let held_before = pinned();
    arm_router("dma-corrupt 1")?;
    let pid = spawn("abitest", &["dma-fault", "1"])?;
    ensure_eq!(exit_code(pid)?, 0);
    run_until("the pages to be let go", || pinned() == held_before)?;
    Ok(())
}

/// (c) The receiving kernel's allowance is lost, so the write stays in flight with the
/// writer's pages held. Meanwhile a migration of the writer waits (it is not frozen), then
/// the writer unmaps its buffer and exits: the frames stay out of the pool (pinned, freed)
/// until the relay gives the transfer up, and only then return.
pub fn writer_unmaps_and_exits_mid_transfer() -> Result<(), String> {
    let held_before = pinned();
    let free_before = hal::frames::free_count();
    // The reader's kernel (cluster 1) allows cluster 0 on the user portal port: lose that.
    let user_portal = kernel::portal::USER_PORTAL_PORT.0;
    arm_router(&alloc::format!("drop 1 1 0 {user_portal} *"))?;
    let pid = spawn("abitest", &["dma-hold", "1"])?;
    run_until("the writer to block in the DMA", || blocked_in_dma(pid))?;
    ensure!(pinned() >= held_before + 256, "{} frames pinned", pinned());
    // A migration asked for now must not freeze it while the write is in flight.
    multikernel::request_migration(pid, ClusterId(2));
    run_until("the migration to be taken", || {
        multikernel::migration_phase(pid).is_some()
    })?;
    pass_time(300_000_000);
    let frozen = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.is_frozen()));
    ensure_eq!(frozen, Some(false));
    ensure!(blocked_in_dma(pid), "the write ended while held");
    // Unmap the buffer and exit, with the write in flight.
    let trigger = Mail {
        pid,
        port: PortId(23),
        kind: MailKind::Mailbox,
        data: b"go".to_vec(),
        from: None,
    };
    with_table(|t| kernel::envelope::send(t, trigger)).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(exit_code(pid)?, 0);
    let (held, freed) = hal::frames::pinned_count();
    ensure!(
        held >= held_before + 256 && freed >= 256,
        "after exit: {held} frames pinned, {freed} of them freed"
    );
    let child = kernel::process::console_history(Some(pid))
        .iter()
        .find_map(|l| l.strip_prefix("dma-hold: writing to child "))
        .and_then(|raw| raw.trim().parse().ok())
        .and_then(Pid::from_raw);
    run_until("the migration to end", || {
        multikernel::outcome(pid).is_some()
    })?;
    ensure!(
        matches!(multikernel::outcome(pid), Some(Err(_))),
        "an exited process migrated"
    );
    // The relay gives the transfer up after its stall limit (20 s): only then the frames go.
    run_until("the held frames to return", || pinned() == held_before)?;
    ensure!(
        hal::frames::free_count() + 64 >= free_before,
        "frames lost: {} free, {free_before} before",
        hal::frames::free_count()
    );
    if let Some(child) = child {
        kernel::requests::post(kernel::requests::Request::Kill(child));
    }
    arm_router("drop 0 * * * *")
}

/// (d) Moving itself to a refusing cluster returns `EAGAIN` where it is, intact; moving on
/// then returns 0 on the destination (`zdtm selfrefused` checks both).
pub fn self_migration_refused_returns_the_error() -> Result<(), String> {
    multikernel::set_refusing(ClusterId(2), true);
    let pid = spawn("zdtm", &["selfrefused", "1"]);
    let code = pid.and_then(exit_code);
    multikernel::set_refusing(ClusterId(2), false);
    ensure_eq!(code?, 0);
    Ok(())
}

/// (d) Two threads move their process at about the same time (`zdtm selfbusy`): each 0 is a
/// move that happened — overlapping calls give one `EBUSY`, a call after the first move a
/// second move.
pub fn self_migration_while_another_is_in_flight() -> Result<(), String> {
    let pid = spawn("zdtm", &["selfbusy"])?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}
