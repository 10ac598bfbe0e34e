//! Issue 11: an unprivileged program must not take down its kernel, lose another process's
//! data or hang its cluster. Each test drives one finding through `abitest harden CASE` (or
//! the kernel's own functions) and checks the kernel held.

use alloc::string::String;
use alloc::vec::Vec;
use kernel::process::{console_history, memory, scheduler, with_table};

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    mmap_hint_at_the_top_never_maps_page_zero,
    output_buffers_are_checked_whole,
    munmap_of_a_huge_mapping_is_quick,
    munmap_frees_page_tables,
    snapshot_of_a_huge_mapping_walks_only_its_pages,
    names_per_process_are_limited,
    inbox_flood_is_held_to_the_quota,
    children_per_process_are_limited,
    zombie_of_an_exited_parent_is_reaped,
    pids_are_reused_after_wrapping,
];

const TIMEOUT_NS: u64 = 120_000_000_000;

fn spawn(args: &[&str]) -> Result<abi::Pid, String> {
    with_table(|t| t.spawn("abitest", args, None)).map_err(|e| alloc::format!("spawn: {e:?}"))
}

fn exit_code(pid: abi::Pid) -> Option<i32> {
    with_table(|t| t.orphan_exit_code(pid))
}

fn run_until(done: impl Fn() -> bool) {
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    scheduler::run_until(|| done() || hal::timer::expired(deadline), || {});
}

/// Runs `abitest harden CASE` to its end; its output must have no `FAIL` and exit 0.
fn harden_case(case: &str) -> Result<Vec<String>, String> {
    let pid = spawn(&["harden", case])?;
    run_until(|| exit_code(pid).is_some());
    let lines = console_history(Some(pid));
    let code = exit_code(pid);
    let failures: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    ensure!(
        code == Some(0) && failures.is_empty(),
        "{case}: exit {code:?}, failures {failures:?}"
    );
    Ok(lines)
}

fn printed(pid: abi::Pid, prefix: &str) -> Option<String> {
    console_history(Some(pid))
        .into_iter()
        .find(|l| l.starts_with(prefix))
}

fn mmap_hint_at_the_top_never_maps_page_zero() -> Result<(), String> {
    harden_case("mmap-top").map(|_| ())
}

fn output_buffers_are_checked_whole() -> Result<(), String> {
    harden_case("buffers").map(|_| ())
}

fn munmap_of_a_huge_mapping_is_quick() -> Result<(), String> {
    let lines = harden_case("munmap-huge")?;
    if let Some(line) = lines.iter().find(|l| l.contains("took")) {
        hal::println!("    ({line})");
    }
    Ok(())
}

fn munmap_frees_page_tables() -> Result<(), String> {
    let mut space = hal::paging::AddressSpace::new().map_err(|e| alloc::format!("{e:?}"))?;
    let base = memory::MMAP_BASE;
    let len = 4u64 << 30;
    let mut map = uarea::MemoryMap::default();
    map.insert(uarea::Segment {
        start: base,
        len,
        perms: uarea::Perms::RW,
        kind: uarea::SegmentKind::Mmap,
        backing: uarea::Backing::Anonymous,
    });
    let before = hal::frames::free_count();
    // Pages under three different level-2 tables and two level-1 tables each.
    for offset in [0, 4096, 1 << 30, (1 << 30) + (2 << 20), len - 4096] {
        memory::ensure_page(&mut space, &map, base + offset, uarea::Perms::W)
            .map_err(|e| alloc::format!("ensure_page: {e:?}"))?;
    }
    ensure!(hal::frames::free_count() < before, "nothing was mapped");
    memory::unmap_range(&mut space, &mut map, base, len).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(space.user_frames(), 0);
    ensure_eq!(hal::frames::free_count(), before);
    Ok(())
}

fn snapshot_of_a_huge_mapping_walks_only_its_pages() -> Result<(), String> {
    let pid = spawn(&["spin", "60000"])?;
    // Give it a 1 TiB mapping with three pages touched, as `mmap` and faults would.
    let base = memory::MMAP_BASE;
    let len = 1u64 << 40;
    with_table(|t| {
        let process = t.processes.get_mut(&pid).ok_or("gone")?;
        process.uarea.memory.insert(uarea::Segment {
            start: base,
            len,
            perms: uarea::Perms::RW,
            kind: uarea::SegmentKind::Mmap,
            backing: uarea::Backing::Anonymous,
        });
        for offset in [0, len / 2, len - 4096] {
            memory::ensure_page(
                &mut process.space,
                &process.uarea.memory,
                base + offset,
                uarea::Perms::W,
            )
            .map_err(|_| "ensure_page")?;
        }
        Ok::<(), &str>(())
    })?;
    let started = hal::clock::now_ns();
    let snapshot = with_table(|t| {
        migration::snapshot::Snapshot::take(
            t,
            pid,
            abi::ClusterId(1),
            1,
            uarea::image::PageTransport::Direct,
        )
    });
    let took_ms = (hal::clock::now_ns() - started) / 1_000_000;
    with_table(|t| t.exit_process(pid, 0));
    let snapshot = snapshot.map_err(|e| alloc::format!("snapshot: {e:?}"))?;
    hal::println!(
        "    (snapshot of a 1 TiB mapping: {took_ms} ms, {} pages)",
        snapshot.manifest.page_count
    );
    ensure!(took_ms < 1000, "snapshot took {took_ms} ms");
    ensure!(
        snapshot.manifest.page_count >= 3,
        "{} pages",
        snapshot.manifest.page_count
    );
    Ok(())
}

fn names_per_process_are_limited() -> Result<(), String> {
    harden_case("names").map(|_| ())
}

fn inbox_flood_is_held_to_the_quota() -> Result<(), String> {
    let (_, heap_before) = hal::heap::stats();
    let pid = spawn(&["harden", "inbox-flood"])?;
    run_until(|| printed(pid, "harden: flooded").is_some() || exit_code(pid).is_some());
    let (_, heap_after) = hal::heap::stats();
    let queued = kernel::ipc::queued(pid);
    let accepted = printed(pid, "harden: flooded ")
        .and_then(|l| l["harden: flooded ".len()..].parse::<usize>().ok());
    with_table(|t| t.exit_process(pid, 0));
    let failures: Vec<String> = console_history(Some(pid))
        .into_iter()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    ensure!(failures.is_empty(), "{failures:?}");
    ensure!(
        queued <= abi::limits::QUEUED_MESSAGES_PER_PROCESS,
        "{queued} messages queued for one process"
    );
    // Nothing accepted was dropped: every `Ok` is a queued message.
    ensure_eq!(accepted, Some(queued));
    let grown = heap_after.saturating_sub(heap_before);
    ensure!(
        grown < 2 * abi::limits::QUEUED_BYTES_PER_PROCESS,
        "the kernel heap grew by {grown} bytes for one process's inboxes"
    );
    ensure_eq!(kernel::ipc::queued(pid), 0);
    Ok(())
}

fn children_per_process_are_limited() -> Result<(), String> {
    harden_case("children").map(|_| ())
}

fn zombie_of_an_exited_parent_is_reaped() -> Result<(), String> {
    let lines = harden_case("orphan")?;
    let child = lines
        .iter()
        .find_map(|l| l.strip_prefix("harden: orphaned zombie "))
        .and_then(|raw| raw.parse::<u32>().ok())
        .and_then(abi::Pid::from_raw)
        .ok_or("no child pid printed")?;
    ensure!(
        !with_table(|t| t.processes.contains_key(&child)),
        "the zombie {child} of an exited parent is still in the process table"
    );
    Ok(())
}

fn pids_are_reused_after_wrapping() -> Result<(), String> {
    let hello = || {
        with_table(|t| t.spawn("hello", &["pids"], None))
            .map_err(|e| alloc::format!("spawn: {e:?}"))
    };
    with_table(|t| t.set_next_local(abi::Pid::MAX_LOCAL));
    let last = hello()?;
    ensure_eq!(last.local(), abi::Pid::MAX_LOCAL);
    let wrapped = hello()?;
    ensure!(
        wrapped.local() < 1000 && wrapped != last,
        "after the last pid came {wrapped}"
    );
    // Numbers still in use are skipped: the new pid is none of the live ones.
    let live = with_table(|t| t.processes.keys().filter(|p| **p == wrapped).count());
    ensure_eq!(live, 1);
    run_until(|| exit_code(last).is_some() && exit_code(wrapped).is_some());
    ensure_eq!(exit_code(last), Some(0));
    ensure_eq!(exit_code(wrapped), Some(0));
    Ok(())
}
