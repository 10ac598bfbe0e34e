//! Pre-copy's throttle (QEMU's auto-converge), run in `migration_live`: a process that
//! writes faster than the link drains is moved with and without throttling and the two
//! records compared; the throttle is lifted when the migration ends or fails, and the
//! scheduler's throttle itself is bounded and kernel-local.

use abi::{ClusterId, MigrateOptions, Pid, Strategy};
use alloc::string::String;
use kernel::process::throttle::{pause_for, MayThrottle};
use kernel::process::with_table;

use super::migration_noc::{move_with, run_until};
use crate::{ensure, ensure_eq};

/// The tests' capability to throttle (their own writers, lifted before each test ends).
struct Tester;

// SAFETY: used only in `a_throttle_is_bounded_and_kernel_local`, on a process of its own that
// it un-throttles before it returns (and on a pid that does not exist).
unsafe impl MayThrottle for Tester {}

/// A writer that outruns the link: 16 MiB, every page rewritten as fast as it can (the rate
/// asked for is out of reach), for `SECONDS`, then exit 0.
const WRITER: &[&str] = &["16", "100000000", SECONDS];
const SECONDS: &str = "8";

fn spawn_writer() -> Result<Pid, String> {
    let pid =
        with_table(|t| t.spawn("memtouch", WRITER, None)).map_err(|e| alloc::format!("{e:?}"))?;
    run_until("the writer to be ready", || {
        kernel::process::console_history(Some(pid))
            .iter()
            .any(|l| l.starts_with("ready"))
    })?;
    Ok(pid)
}

/// Pre-copy that may throttle up to 99 %, rising 40 points a round (20, 60, 99), and goes on
/// until a round would send at most one page (or 64 rounds). So however fast this host lets
/// the writer run, its rounds shrink until they no longer halve — each round costs at least
/// a NoC round trip, during which the writer dirties pages — and the throttle must fire.
fn throttled() -> MigrateOptions {
    MigrateOptions {
        throttle_max_pct: 99,
        throttle_step_pct: 40,
        stop_pages: 1,
        max_rounds: 64,
        ..MigrateOptions::new(Strategy::PreCopy)
    }
}

/// The record of `pid`'s move (written when the destination confirms).
fn record_of(pid: Pid) -> Result<kernel::migstats::Record, String> {
    let latest = || {
        kernel::migstats::recent()
            .into_iter()
            .rev()
            .find(|r| r.pid == pid)
    };
    run_until("the record", || latest().is_some())?;
    let record = latest().ok_or("no record")?;
    ensure!(record.failure.is_none(), "{record:?}");
    Ok(record)
}

/// The CPU time `pid` has had here so far.
fn cpu_time(pid: Pid) -> u64 {
    with_table(|t| {
        t.processes
            .get(&pid)
            .map_or(0, |p| p.uarea.counters.cpu_time_ns)
    })
}

fn exit_code(pid: Pid) -> Result<i32, String> {
    super::migration_noc::exit_code(pid)
}

/// The same writer moved twice from here, once plain and once throttled: the plain move is
/// never throttled; the throttled one is, once its rounds stop halving. How many pages each
/// stop copies depends on how fast this host lets the writer run, so it is logged, not
/// asserted (the throttled stop was 0–166 pages against 244–1,216 plain in the runs that
/// wrote this test). Both check out; nothing stays throttled here.
pub fn a_writer_that_outruns_the_link_is_throttled() -> Result<(), String> {
    let plain = spawn_writer()?;
    move_with(plain, 2, MigrateOptions::new(Strategy::PreCopy))?;
    let plain = (plain, record_of(plain)?);
    let slowed = spawn_writer()?;
    move_with(slowed, 3, throttled())?;
    let slowed = (slowed, record_of(slowed)?);
    let (p, t) = (&plain.1.phases, &slowed.1.phases);
    log::info!(
        "throttle: plain {} rounds {:?}, {} stopped pages; throttled {}% {} rounds {:?}, {} stopped pages",
        plain.1.rounds,
        &p.round_pages[..plain.1.rounds as usize],
        p.stop_pages,
        t.throttle_pct,
        slowed.1.rounds,
        &t.round_pages[..slowed.1.rounds as usize],
        t.stop_pages
    );
    ensure_eq!(p.throttle_pct, 0);
    ensure!(t.throttle_pct > 0, "never throttled: {:?}", slowed.1);
    ensure!(
        slowed.1.rounds >= 3,
        "throttled after {} rounds",
        slowed.1.rounds
    );
    // The same through `migration_stats_ex`, as a program reads it.
    let read = |pid: Pid| -> Result<u64, String> {
        super::migration_record::read_back(pid)?.get("throttle_pct")
    };
    ensure_eq!(read(plain.0)?, 0);
    ensure_eq!(read(slowed.0)?, t.throttle_pct as u64);
    ensure!(
        with_table(|t| t.throttles().is_empty()),
        "a throttle outlived its migration"
    );
    ensure_eq!(exit_code(plain.0)?, 0);
    ensure_eq!(exit_code(slowed.0)?, 0);
    Ok(())
}

/// A DMA fault after the throttle was set fails the migration: the writer stays here, runs
/// at full speed again (no throttle left), and checks out. (A refusing destination refuses
/// the offer, before any round: nothing is throttled then, as the first check shows.)
pub fn a_failed_throttled_precopy_lifts_the_throttle() -> Result<(), String> {
    let pid = spawn_writer()?;
    multikernel::set_refusing(ClusterId(1), true);
    multikernel::request_migration_with(pid, ClusterId(1), throttled());
    run_until("the refusal", || multikernel::outcome(pid).is_some())?;
    multikernel::set_refusing(ClusterId(1), false);
    ensure_eq!(with_table(|t| t.throttles().pct(pid)), 0);

    multikernel::request_migration_with(pid, ClusterId(1), throttled());
    run_until("the throttle", || {
        with_table(|t| t.throttles().pct(pid)) > 0 || multikernel::outcome(pid).is_some()
    })?;
    ensure!(
        with_table(|t| t.throttles().pct(pid)) > 0,
        "no throttle before the fault: {:?}",
        multikernel::outcome(pid)
    );
    crate::suites::migration_atomic::arm_router("dma-corrupt 1")?;
    run_until("the failed migration", || {
        matches!(multikernel::outcome(pid), Some(Err(_)))
    })?;
    ensure!(
        with_table(|t| t.is_alive(pid)),
        "the writer is gone after a failed migration"
    );
    ensure_eq!(multikernel::location(pid), None);
    ensure!(
        with_table(|t| t.throttles().is_empty()),
        "the failed migration left its throttle"
    );
    // Its record failed, and says it had been slowed.
    let failed = kernel::migstats::recent()
        .into_iter()
        .rev()
        .find(|r| r.pid == pid)
        .ok_or("no record of the failed migration")?;
    ensure!(failed.failure.is_some(), "{failed:?}");
    ensure!(failed.phases.throttle_pct > 0, "{failed:?}");
    // It runs again: its CPU time grows while nothing holds it back.
    let cpu = || cpu_time(pid);
    let before = cpu();
    run_until("the writer to run", || cpu() > before)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// The scheduler's throttle: clamped to 99 %, only for a live process here, lifted by 0;
/// its pauses leave the process `100 − P` % of the time; and a throttled process still runs.
pub fn a_throttle_is_bounded_and_kernel_local() -> Result<(), String> {
    ensure_eq!(pause_for(10_000_000, 0), 0);
    ensure_eq!(pause_for(10_000_000, 50), 10_000_000);
    ensure_eq!(pause_for(10_000_000, 20), 2_500_000);
    ensure_eq!(pause_for(10_000_000, 99), 990_000_000);
    ensure_eq!(pause_for(10_000_000, 250), 990_000_000);
    ensure_eq!(pause_for(u64::MAX, 99), u64::MAX);
    let nobody = Pid::new(ClusterId(0), 4000).ok_or("pid")?;
    ensure!(
        !with_table(|t| t.set_throttle(&Tester, nobody, 50)),
        "throttled a ghost"
    );
    ensure!(
        with_table(|t| t.throttles().is_empty()),
        "a ghost's throttle"
    );

    let pid = spawn_writer()?;
    let quantum = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.sched.quantum_ns));
    ensure!(
        with_table(|t| t.set_throttle(&Tester, pid, 150)),
        "no throttle"
    );
    ensure_eq!(with_table(|t| t.throttles().pct(pid)), 99);
    ensure!(
        with_table(|t| t.set_throttle(&Tester, pid, 50)),
        "no throttle"
    );
    ensure_eq!(with_table(|t| t.throttles().pct(pid)), 50);
    let cpu = || cpu_time(pid);
    // Twenty slices and more, each after a pause: every pause ends (the scheduler's wake-up
    // for it), even with nothing else to run on this cluster.
    let before = cpu();
    let slices = 20 * kernel::process::throttle::SLICE_NS;
    run_until("the throttled writer to run", || cpu() >= before + slices)?;
    // Nothing in its UArea changed: the throttle is not part of what migrates.
    let after = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.sched.quantum_ns));
    ensure_eq!(after, quantum);
    ensure!(
        with_table(|t| t.set_throttle(&Tester, pid, 0)),
        "lifting failed"
    );
    ensure!(with_table(|t| t.throttles().is_empty()), "not lifted");
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}
