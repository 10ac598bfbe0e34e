//! User processes end to end: programs from the boot archive run in ring 3, every system
//! call's success and failure cases hold (checked by the `abitest` program itself), threads,
//! FPU state across switches, isolation, and a faulting process that dies alone.

use alloc::string::String;
use alloc::vec::Vec;
use kernel::process::{console_history, scheduler, with_table, KILLED_EXIT_CODE};

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    boot_archive_has_the_apps,
    hello_prints_and_exits_zero,
    every_syscall_success_and_failure_case,
    thousand_threads_created_and_joined,
    futex_mutex_protects_a_counter,
    fpu_state_kept_across_switches,
    sse_math_in_user_space,
    faulting_process_dies_alone,
    every_fault_kind_kills_only_the_faulter,
    processes_cannot_see_each_others_memory,
    memory_is_returned_when_a_process_exits,
    unknown_program_is_refused,
    uarea_of_a_live_process_validates_and_round_trips,
];

/// Generous: a loaded two-core host can slow a TCG guest down a lot.
const TIMEOUT_NS: u64 = 120_000_000_000;

fn spawn(program: &str, args: &[&str]) -> Result<abi::Pid, String> {
    with_table(|t| t.spawn(program, args, None))
        .map_err(|e| alloc::format!("spawn {program}: {e:?}"))
}

fn exit_code(pid: abi::Pid) -> Option<i32> {
    with_table(|t| t.orphan_exit_code(pid))
}

/// Runs the scheduler until every pid has exited; returns their exit codes.
fn run_to_exit(pids: &[abi::Pid]) -> Result<Vec<i32>, String> {
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    scheduler::run_until(
        || pids.iter().all(|p| exit_code(*p).is_some()) || hal::timer::expired(deadline),
        || {},
    );
    pids.iter()
        .map(|p| exit_code(*p).ok_or_else(|| alloc::format!("process {p} did not exit in time")))
        .collect()
}

fn output(pid: abi::Pid) -> Vec<String> {
    console_history(Some(pid))
}

fn boot_archive_has_the_apps() -> Result<(), String> {
    let names: Vec<&str> = kernel::ramdisk::files().map(|f| f.name).collect();
    for app in ["hello", "threads", "counter", "memtouch", "mgs", "abitest"] {
        ensure!(
            names.contains(&app),
            "{app} missing from the boot archive: {names:?}"
        );
    }
    Ok(())
}

fn hello_prints_and_exits_zero() -> Result<(), String> {
    let pid = spawn("hello", &["tests"])?;
    ensure_eq!(run_to_exit(&[pid])?, [0]);
    let lines = output(pid);
    ensure!(
        lines
            .iter()
            .any(|l| l.starts_with("hello, tests! I am process")
                && l.contains(&alloc::format!("{pid}"))),
        "unexpected output {lines:?}"
    );
    Ok(())
}

fn every_syscall_success_and_failure_case() -> Result<(), String> {
    let pid = spawn("abitest", &["syscalls"])?;
    let codes = run_to_exit(&[pid])?;
    let lines = output(pid);
    let failures: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    ensure!(
        codes == [0] && failures.is_empty(),
        "abitest exit {codes:?}, failures: {failures:?}"
    );
    ensure!(
        lines.iter().any(|l| l.contains("passed, 0 failed")),
        "no summary: {lines:?}"
    );
    Ok(())
}

fn thousand_threads_created_and_joined() -> Result<(), String> {
    let pid = spawn("abitest", &["threads", "1000"])?;
    ensure_eq!(run_to_exit(&[pid])?, [0]);
    ensure!(output(pid)
        .iter()
        .any(|l| l.starts_with("threads: 1000 created and joined")));
    Ok(())
}

fn futex_mutex_protects_a_counter() -> Result<(), String> {
    let pid = spawn("threads", &["8", "20000"])?;
    ensure_eq!(run_to_exit(&[pid])?, [0]);
    ensure!(output(pid)
        .iter()
        .any(|l| l.contains("counter = 160000 (expected 160000)")));
    Ok(())
}

fn fpu_state_kept_across_switches() -> Result<(), String> {
    // Two processes of two threads each, all yielding with live SSE registers.
    let a = spawn("abitest", &["fpu", "3000"])?;
    let b = spawn("abitest", &["fpu", "3000"])?;
    ensure_eq!(run_to_exit(&[a, b])?, [0, 0]);
    Ok(())
}

fn sse_math_in_user_space() -> Result<(), String> {
    let pid = spawn("mgs", &["60"])?;
    ensure_eq!(run_to_exit(&[pid])?, [0]);
    Ok(())
}

fn faulting_process_dies_alone() -> Result<(), String> {
    let neighbour = spawn("abitest", &["spin", "1500"])?;
    let faulter = spawn("abitest", &["fault", "null"])?;
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    scheduler::run_until(
        || exit_code(faulter).is_some() || hal::timer::expired(deadline),
        || {},
    );
    let before = output(neighbour).len();
    ensure_eq!(exit_code(faulter), Some(KILLED_EXIT_CODE));
    ensure!(
        with_table(|t| t.is_alive(neighbour)),
        "the neighbour died with the faulter"
    );
    ensure_eq!(run_to_exit(&[neighbour])?, [0]);
    let after = output(neighbour).len();
    ensure!(
        after > before,
        "the neighbour printed nothing after the fault ({before} -> {after})"
    );
    let report = output(faulter);
    ensure!(
        report
            .iter()
            .any(|l| l.starts_with("killed: #PF Page Fault at 0x0 (read, page not present)")),
        "no fault report: {report:?}"
    );
    Ok(())
}

fn every_fault_kind_kills_only_the_faulter() -> Result<(), String> {
    for (kind, report) in [
        ("null", "killed: #PF"),
        ("kernel", "killed: #PF"),
        ("text", "killed: #PF"),
        ("divide", "killed: #DE Divide Error"),
        ("stack", "killed: #PF"),
    ] {
        let pid = spawn("abitest", &["fault", kind])?;
        ensure_eq!(run_to_exit(&[pid])?, [KILLED_EXIT_CODE]);
        let lines = output(pid);
        ensure!(
            lines.iter().any(|l| l.starts_with(report)),
            "fault {kind}: {lines:?}"
        );
    }
    Ok(())
}

fn processes_cannot_see_each_others_memory() -> Result<(), String> {
    let writer = spawn("abitest", &["secret", "write"])?;
    // Let the writer store its secret first.
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    scheduler::run_until(
        || output(writer).iter().any(|l| l == "secret stored") || hal::timer::expired(deadline),
        || {},
    );
    let reader = spawn("abitest", &["secret", "read"])?;
    ensure_eq!(run_to_exit(&[reader, writer])?, [0, 0]);
    ensure!(output(reader)
        .iter()
        .any(|l| l == "read 0x0 at the secret's address"));
    Ok(())
}

fn memory_is_returned_when_a_process_exits() -> Result<(), String> {
    // Warm up once (the kernel heap may grow on first use), then measure.
    let pid = spawn("memtouch", &["4", "100000", "1"])?;
    run_to_exit(&[pid])?;
    let before = hal::frames::free_count();
    let pid = spawn("memtouch", &["4", "100000", "1"])?;
    ensure_eq!(run_to_exit(&[pid])?, [0]);
    let after = hal::frames::free_count();
    ensure_eq!(after, before);
    Ok(())
}

fn unknown_program_is_refused() -> Result<(), String> {
    let result = with_table(|t| t.spawn("no-such-program", &[], None));
    ensure_eq!(result, Err(kernel::process::SpawnError::NoSuchProgram));
    Ok(())
}

fn uarea_of_a_live_process_validates_and_round_trips() -> Result<(), String> {
    // Threads blocked on a futex and in join, others ready: a busy UArea.
    let pid = spawn("threads", &["6", "100000000"])?;
    let until = hal::clock::now_ns() + 100_000_000;
    scheduler::run_until(|| hal::timer::expired(until), || {});
    let snapshot = with_table(|t| t.processes.get(&pid).map(|p| p.uarea.clone()));
    with_table(|t| t.exit_process(pid, 0));
    let uarea = snapshot.ok_or("the process ended too early")?;
    ensure!(
        uarea.threads.len() > 1,
        "only {} threads",
        uarea.threads.len()
    );
    uarea
        .validate()
        .map_err(|e| alloc::format!("live UArea does not validate: {e:?}"))?;
    let bytes = uarea.encode();
    let decoded = uarea::UArea::decode(&bytes).map_err(|e| alloc::format!("decode: {e:?}"))?;
    ensure!(decoded == uarea, "round trip changed the UArea");
    hal::println!(
        "    ({} threads: UArea of {} bytes)",
        uarea.threads.len(),
        bytes.len()
    );
    Ok(())
}
