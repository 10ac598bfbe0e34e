//! Migration benchmarks (`cargo xtask bench migration`): every strategy this kernel knows
//! (`abi::Strategy::ALL`, so a new strategy is measured as soon as it is listed there) on
//! the Nanvix reference process, `mgs` at the Gobelins sizes, and `memtouch` over a grid of
//! touched sizes × dirty rates; then the run time of `mgs 1000` with one migration per
//! strategy against the same run without one (application degradation).
//!
//! Cluster 0 drives; each measured move goes 0 → 1 by the strategy and comes back by
//! stop-and-copy (only the 0 → 1 record is reported). The lines are the bench's interface
//! (`xtask/src/bench/migration_report.rs` parses them), `key=value` so a strategy with more
//! figures adds keys without breaking the parser:
//! - `MIGSTART app=A strategy=S`, then a pause before the move, so the host can read
//!   noc-sim's link counters before it (the link bytes of the move are the difference at the
//!   next `MIGBENCH`);
//! - `MIGBENCH strategy=S app=A ... ` from the migration daemon's own record, once complete
//!   (post-copy's pulled and pushed pages, fault wait and link bytes included);
//! - `MIGDEGRADE strategy=S|none app=A run_us=N` (one `mgs` run, ready to exit).

use abi::{ClusterId, MigrateOptions, Pid, Strategy};
use alloc::string::String;
use kernel::process::{scheduler, with_table};

use super::migration_noc::{
    all_clusters_joined, exit_code, move_to, nothing_left_frozen, release_the_other_clusters,
    run_until, serve_until_the_driver_is_done,
};
use crate::tests;

pub const DRIVER: &[crate::framework::Test] = tests![
    all_clusters_joined,
    nanvix_reference_process,
    mgs_gobelins_sizes,
    memtouch_sizes_and_dirty_rates,
    mgs_1000_degradation,
    release_the_other_clusters
];
pub const SERVING: &[crate::framework::Test] = tests![
    all_clusters_joined,
    serve_until_the_driver_is_done,
    nothing_left_frozen
];

/// Touched memory of the `memtouch` grid, in KiB (64 KiB .. 64 MiB).
const TOUCHED_KIB: [u64; 5] = [64, 1024, 4096, 16 * 1024, 64 * 1024];
/// Dirty rates of the grid: (label, pages per second): idle, 1 MiB/s, 16 MiB/s.
const DIRTY_RATES: [(&str, u64); 3] = [("idle", 0), ("1MiB/s", 256), ("16MiB/s", 4096)];
/// Time the host gets to read the link counters after `MIGSTART` (and the workload to
/// settle at its dirty rate) before the move.
const PAUSE_BEFORE_MOVE_NS: u64 = 400_000_000;

fn sleep_ns(ns: u64) {
    let until = hal::clock::now_ns() + ns;
    scheduler::run_until(|| hal::timer::expired(until), || {});
}

fn spawn_ready(program: &str, args: &[&str]) -> Result<Pid, String> {
    let pid = with_table(|t| t.spawn(program, args, None)).map_err(|e| alloc::format!("{e:?}"))?;
    run_until("the program to be ready", || {
        kernel::process::console_history(Some(pid))
            .iter()
            .any(|l| l.starts_with("ready"))
    })?;
    Ok(pid)
}

/// Successful moves of `pid` to cluster 1 recorded here, latest last.
fn moves_to_1(pid: Pid) -> alloc::vec::Vec<kernel::migstats::Record> {
    kernel::migstats::recent()
        .into_iter()
        .filter(|r| r.pid == pid && r.destination == ClusterId(1) && r.failure.is_none())
        .collect()
}

/// Moves `pid` (here, on cluster 0) to cluster 1 by `strategy`; returns its record.
fn move_to_1(pid: Pid, strategy: Strategy) -> Result<kernel::migstats::Record, String> {
    let before = moves_to_1(pid).len();
    multikernel::request_migration_with(pid, ClusterId(1), MigrateOptions::new(strategy));
    run_until("the migration", || {
        multikernel::location(pid) == Some(ClusterId(1))
            || matches!(multikernel::outcome(pid), Some(Err(_)))
    })?;
    if let Some(Err(error)) = multikernel::outcome(pid) {
        if multikernel::location(pid) != Some(ClusterId(1)) {
            return Err(alloc::format!(
                "{} to c1 failed: {error:?}",
                strategy.name()
            ));
        }
    }
    // The record is written once the destination confirmed it runs the process, and
    // complete (post-copy: once its last page arrived there) a little later.
    run_until("the migration record", || {
        let moves = moves_to_1(pid);
        moves.len() > before && moves.last().is_some_and(|r| r.phases.complete)
    })?;
    moves_to_1(pid)
        .pop()
        .ok_or_else(|| "no migration record".into())
}

/// `extra` goes on the line as is (`touched_bytes=… rate_pages_s=…` for `memtouch`). Every
/// figure comes from the complete record: `pages_pushed` are the pages sent while the
/// process ran (pre-copy rounds and post-copy's background pushes), `pages_pulled` those a
/// thread waited for, `link_bytes` what the daemons put on the NoC for the move.
fn print_record(label: &str, extra: &str, r: &kernel::migstats::Record) {
    let post = &r.phases.postcopy;
    let postcopy = matches!(r.strategy, Strategy::PostCopy | Strategy::Hybrid);
    let pulled = if postcopy {
        alloc::format!(
            " pages_pulled={} fault_wait_us={} residual_us={} pages_remote={}",
            post.pulled,
            post.fault_wait_ns / 1000,
            post.residual_ns / 1000,
            r.phases.remote_pages
        )
    } else {
        String::new()
    };
    hal::println!(
        "MIGBENCH strategy={} app={label}{extra} bytes={} preparation_us={} downtime_us={} resume_us={} total_us={} pages={} pages_pushed={} pages_precopy={} pages_stop={} rounds={} dirty_rate_pages_s={} link_bytes={}{pulled}",
        r.strategy.name(),
        r.bytes,
        r.preparation_ns / 1000,
        r.downtime_ns / 1000,
        r.resume_ns / 1000,
        r.total_ns / 1000,
        r.pages,
        r.pages_live + post.pushed,
        r.pages_live,
        r.phases.stop_pages,
        r.rounds,
        r.dirty_rate,
        r.phases.link_bytes,
    );
}

/// `runs` moves of the running `pid` by `strategy`, each there and back.
fn measure_moves(
    pid: Pid,
    strategy: Strategy,
    label: &str,
    extra: &str,
    runs: u32,
) -> Result<(), String> {
    for _ in 0..runs {
        hal::println!("MIGSTART app={label} strategy={}", strategy.name());
        sleep_ns(PAUSE_BEFORE_MOVE_NS);
        let record = move_to_1(pid, strategy)?;
        print_record(label, extra, &record);
        move_to(pid, 0)?;
    }
    Ok(())
}

/// Spawns `program`, measures `runs` moves per strategy, ends it.
fn measure(
    label: &str,
    program: &str,
    args: &[&str],
    runs: u32,
    extra: &str,
) -> Result<(), String> {
    let pid = spawn_ready(program, args)?;
    let result = Strategy::ALL
        .into_iter()
        .try_for_each(|strategy| measure_moves(pid, strategy, label, extra, runs));
    with_table(|t| t.exit_process(pid, 0));
    result
}

fn nanvix_reference_process() -> Result<(), String> {
    measure("nanvix-ref-352.8KB", "nanvixref", &[], 3, "")
}

fn mgs_gobelins_sizes() -> Result<(), String> {
    for n in ["500", "750", "1000", "1250"] {
        let label = alloc::format!("mgs-{n}");
        measure(&label, "mgs", &[n, "0"], 1, "")?;
    }
    Ok(())
}

/// One process per cell of the grid, one move per strategy.
fn memtouch_sizes_and_dirty_rates() -> Result<(), String> {
    for kib in TOUCHED_KIB {
        for (rate_label, pages_s) in DIRTY_RATES {
            let size = alloc::format!("{kib}K");
            let rate = alloc::format!("{pages_s}");
            let label = alloc::format!("memtouch-{size}-{rate_label}");
            let extra = alloc::format!(" touched_bytes={} rate_pages_s={pages_s}", kib * 1024);
            measure(&label, "memtouch", &[&size, &rate, "0"], 1, &extra)?;
        }
    }
    Ok(())
}

/// Runs `mgs 1000` once (ready to its exit code, on chip time), moved to cluster 1 by
/// `strategy` after `migrate_after_ns` if one is given; returns the run time in µs.
fn mgs_run(strategy: Option<Strategy>, migrate_after_ns: u64) -> Result<u64, String> {
    let pid = with_table(|t| t.spawn("mgs", &["1000", "1"], None))
        .map_err(|e| alloc::format!("{e:?}"))?;
    run_until("mgs to be ready", || {
        kernel::process::console_history(Some(pid))
            .iter()
            .any(|l| l.starts_with("ready"))
    })?;
    let started = hal::clock::now_ns();
    let mut downtime_us = 0;
    if let Some(strategy) = strategy {
        sleep_ns(migrate_after_ns);
        let record = move_to_1(pid, strategy)?;
        downtime_us = record.downtime_ns / 1000;
        print_record("mgs-1000-degradation", "", &record);
    }
    let code = exit_code(pid)?;
    let run_us = (hal::clock::now_ns() - started) / 1000;
    if code != 0 {
        return Err(alloc::format!("mgs 1000 exited {code}"));
    }
    hal::println!(
        "MIGDEGRADE strategy={} app=mgs-1000 run_us={run_us} downtime_us={downtime_us}",
        strategy.map_or("none", Strategy::name)
    );
    Ok(run_us)
}

/// Application degradation (seed 000): `mgs 1000` without a migration, then with one per
/// strategy, a third of the way into its run.
fn mgs_1000_degradation() -> Result<(), String> {
    let baseline_us = mgs_run(None, 0)?;
    for strategy in Strategy::ALL {
        mgs_run(Some(strategy), baseline_us * 1000 / 3)?;
    }
    Ok(())
}
