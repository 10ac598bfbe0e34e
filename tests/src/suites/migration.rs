//! Migration test cases after CRIU's zdtm: each `zdtm` case builds state, is migrated, then
//! checks its own state; the harness also compares the visible state (memory map, thread
//! count, endpoints) before and after each move.
//!
//! This suite moves processes through a full migration image on one cluster (freeze,
//! snapshot, stream, restore): every step of a migration but the wire.

use alloc::string::String;
use alloc::vec::Vec;
use kernel::process::{console_history, scheduler, with_table};

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    memory_in_data_bss_heap_and_mmap,
    eight_threads_keep_working,
    thread_blocked_in_sleep,
    thread_blocked_in_futex_wait,
    main_thread_blocked_in_join,
    sse_registers_live_in_a_running_thread,
    deep_recursion,
    busy_thread_migrated_mid_computation,
    hundred_moves,
    counter_continues_without_gap_or_repeat,
    heap_of_64_mib,
    failed_restore_leaves_the_process_running,
];

const TIMEOUT_NS: u64 = 180_000_000_000;

fn spawn(program: &str, args: &[&str]) -> Result<abi::Pid, String> {
    with_table(|t| t.spawn(program, args, None))
        .map_err(|e| alloc::format!("spawn {program}: {e:?}"))
}

fn lines(pid: abi::Pid) -> Vec<String> {
    console_history(Some(pid))
}

fn run_until_line(pid: abi::Pid, prefix: &str) -> Result<(), String> {
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    scheduler::run_until(
        || lines(pid).iter().any(|l| l.starts_with(prefix)) || hal::timer::expired(deadline),
        || {},
    );
    ensure!(
        lines(pid).iter().any(|l| l.starts_with(prefix)),
        "no `{prefix}` line: {:?}",
        lines(pid)
    );
    Ok(())
}

fn run_for_ms(ms: u64) {
    let until = hal::clock::now_ns() + ms * 1_000_000;
    scheduler::run_until(|| hal::timer::expired(until), || {});
}

fn run_to_exit(pid: abi::Pid) -> Result<i32, String> {
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    scheduler::run_until(
        || with_table(|t| t.orphan_exit_code(pid)).is_some() || hal::timer::expired(deadline),
        || {},
    );
    with_table(|t| t.orphan_exit_code(pid)).ok_or_else(|| alloc::format!("{pid} did not exit"))
}

/// What an observer can see of a process from outside.
#[derive(Debug, PartialEq)]
struct Visible {
    segments: Vec<uarea::Segment>,
    threads: Vec<abi::Tid>,
    endpoints: usize,
    name: String,
}

fn visible(pid: abi::Pid) -> Result<Visible, String> {
    with_table(|t| {
        t.processes.get(&pid).map(|p| Visible {
            segments: p.uarea.memory.segments.clone(),
            threads: p.uarea.threads.iter().map(|t| t.tid).collect(),
            endpoints: p.uarea.endpoints.len(),
            name: p.uarea.header.name.clone(),
        })
    })
    .ok_or_else(|| alloc::format!("{pid} is gone"))
}

/// Runs a zdtm case: ready, `moves` migrations with state comparison, then its own check.
fn zdtm(case: &str, moves: u32, settle_ms: u64) -> Result<(), String> {
    let moves_arg = alloc::format!("{moves}");
    let pid = spawn("zdtm", &[case, &moves_arg])?;
    run_until_line(pid, "ready")?;
    run_for_ms(settle_ms);
    for i in 0..moves {
        let before = visible(pid)?;
        migration::local::checkpoint_restore(pid).map_err(|e| alloc::format!("move {i}: {e:?}"))?;
        let after = visible(pid)?;
        ensure_eq!(before, after);
        run_for_ms(settle_ms);
    }
    let code = run_to_exit(pid)?;
    let output = lines(pid);
    ensure!(
        code == 0 && output.iter().any(|l| l.ends_with(": PASS")),
        "exit {code}, output {output:?}"
    );
    Ok(())
}

fn memory_in_data_bss_heap_and_mmap() -> Result<(), String> {
    zdtm("memory", 1, 10)
}

fn eight_threads_keep_working() -> Result<(), String> {
    zdtm("threads", 2, 30)
}

fn thread_blocked_in_sleep() -> Result<(), String> {
    zdtm("sleep", 1, 50)
}

fn thread_blocked_in_futex_wait() -> Result<(), String> {
    zdtm("futex", 1, 10)
}

fn main_thread_blocked_in_join() -> Result<(), String> {
    zdtm("join", 1, 10)
}

fn sse_registers_live_in_a_running_thread() -> Result<(), String> {
    zdtm("fpu", 3, 40)
}

fn deep_recursion() -> Result<(), String> {
    zdtm("recursion", 1, 10)
}

fn busy_thread_migrated_mid_computation() -> Result<(), String> {
    zdtm("busy", 2, 30)
}

fn hundred_moves() -> Result<(), String> {
    zdtm("threads", 100, 2)
}

fn counter_continues_without_gap_or_repeat() -> Result<(), String> {
    let pid = spawn("counter", &["20"])?;
    run_until_line(pid, "count 3")?;
    for _ in 0..5 {
        migration::local::checkpoint_restore(pid).map_err(|e| alloc::format!("{e:?}"))?;
        run_for_ms(60);
    }
    with_table(|t| t.exit_process(pid, 0));
    let counts: Vec<u64> = lines(pid)
        .iter()
        .filter_map(|l| l.strip_prefix("count ")?.split(' ').next()?.parse().ok())
        .collect();
    ensure!(counts.len() > 8, "too few lines: {counts:?}");
    for (i, &c) in counts.iter().enumerate() {
        ensure_eq!(c, counts[0] + i as u64);
    }
    Ok(())
}

fn heap_of_64_mib() -> Result<(), String> {
    let pid = spawn("zdtm", &["heap64", "1"])?;
    run_until_line(pid, "ready")?;
    let record = migration::local::checkpoint_restore(pid).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(record.pages >= 16384, "only {} pages moved", record.pages);
    hal::println!(
        "    (64 MiB heap: {} pages, {} ms total)",
        record.pages,
        record.total_ns / 1_000_000
    );
    ensure_eq!(run_to_exit(pid)?, 0);
    Ok(())
}

fn failed_restore_leaves_the_process_running() -> Result<(), String> {
    // Freeze, then ask for a snapshot to a cluster that is not us: the restorer refuses the
    // image (wrong destination) and the process must carry on unchanged.
    let pid = spawn("counter", &["20"])?;
    run_until_line(pid, "count 2")?;
    let before = visible(pid)?;
    let refused = with_table(|t| {
        migration::freeze::freeze(t, pid).map_err(|e| alloc::format!("{e:?}"))?;
        let snapshot = migration::snapshot::Snapshot::take(
            t,
            pid,
            abi::ClusterId(99),
            1,
            uarea::image::PageTransport::Inline,
        )
        .map_err(|e| alloc::format!("{e:?}"))?;
        let result = migration::restore::Restorer::new(t, snapshot.manifest).map(|_| ());
        migration::freeze::thaw(t, pid);
        Ok::<_, String>(result)
    })?;
    ensure_eq!(refused, Err(migration::MigrationError::Refused));
    ensure_eq!(visible(pid)?, before);
    let count_before = lines(pid).len();
    run_for_ms(100);
    ensure!(
        lines(pid).len() > count_before,
        "the process stopped after a failed migration"
    );
    with_table(|t| t.exit_process(pid, 0));
    Ok(())
}
