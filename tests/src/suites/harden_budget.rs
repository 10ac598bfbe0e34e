//! Issue 11, items 2 and 3 on one cluster: a mailbox write says what became of its message
//! (and the receiver who sent it), and the kernel heap has a budget for what users make it
//! keep — queued requests for the daemons, name replicas arriving from other clusters, and
//! every user-driven object together.

use alloc::string::String;
use alloc::vec::Vec;
use kernel::process::{console_history, scheduler, with_table};
use kernel::requests::{self, Request};

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    mailbox_read_from_names_the_sender_and_refusals_are_reported,
    requests_for_the_daemons_are_bounded,
    name_links_from_other_clusters_are_bounded,
    heap_budget_refuses_user_objects_before_the_heap_fills,
];

const TIMEOUT_NS: u64 = 120_000_000_000;

fn mailbox_read_from_names_the_sender_and_refusals_are_reported() -> Result<(), String> {
    let pid = with_table(|t| t.spawn("abitest", &["harden", "mailbox-from"], None))
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    let exited = || with_table(|t| t.orphan_exit_code(pid)).is_some();
    scheduler::run_until(|| exited() || hal::timer::expired(deadline), || {});
    let failures: Vec<String> = console_history(Some(pid))
        .into_iter()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    ensure!(failures.is_empty(), "{failures:?}");
    ensure_eq!(with_table(|t| t.orphan_exit_code(pid)), Some(0));
    Ok(())
}

fn requests_for_the_daemons_are_bounded() -> Result<(), String> {
    // This suite runs no daemons: nothing takes the queue while we fill it.
    let before = requests::queued();
    let victim = abi::Pid::new(abi::ClusterId(0), 77).ok_or("pid")?;
    let mut refused = 0;
    for _ in 0..abi::limits::REQUESTS_QUEUED_PER_CLUSTER + 100 {
        if requests::try_post(Request::Kill(victim)) == Err(abi::Errno::EAGAIN) {
            refused += 1;
        }
    }
    let queued = requests::queued();
    let taken = requests::take_all();
    ensure_eq!(queued, abi::limits::REQUESTS_QUEUED_PER_CLUSTER);
    // Of LIMIT + 100 attempts, LIMIT - before found room.
    ensure_eq!(refused, 100 + before);
    ensure_eq!(taken.len(), queued);
    Ok(())
}

fn name_links_from_other_clusters_are_bounded() -> Result<(), String> {
    let before = kernel::names::count();
    let refused_before = kernel::names::refused();
    let announced = abi::limits::NAMES_PER_REPLICA + 500;
    // Another cluster announces more names than a replica keeps (one pid each, so only the
    // replica's bound holds them), then 40 for one pid (only the per-pid bound holds those).
    for n in 0..announced {
        let pid = abi::Pid::new(abi::ClusterId(5), 1 + n as u32).ok_or("pid")?;
        kernel::names::apply(kernel::names::Change::Link {
            name: alloc::format!("flood-{n}"),
            pid,
        });
    }
    let after_flood = kernel::names::count();
    for n in 0..announced {
        let pid = abi::Pid::new(abi::ClusterId(5), 1 + n as u32).ok_or("pid")?;
        kernel::names::apply(kernel::names::Change::Unlink {
            name: alloc::format!("flood-{n}"),
            pid,
        });
    }
    let greedy = abi::Pid::new(abi::ClusterId(6), 9).ok_or("pid")?;
    for n in 0..40 {
        kernel::names::apply(kernel::names::Change::Link {
            name: alloc::format!("greedy-{n}"),
            pid: greedy,
        });
    }
    let of_greedy = kernel::names::all()
        .iter()
        .filter(|(_, p)| *p == greedy)
        .count();
    kernel::names::forget(greedy);
    requests::take_all(); // the unlinks it announced
    ensure_eq!(after_flood, abi::limits::NAMES_PER_REPLICA);
    ensure_eq!(of_greedy, abi::limits::NAMES_PER_PROCESS);
    ensure!(kernel::names::refused() > refused_before, "nothing counted");
    ensure_eq!(kernel::names::count(), before);
    Ok(())
}

fn heap_budget_refuses_user_objects_before_the_heap_fills() -> Result<(), String> {
    // Bring the heap to its budget with a kernel allocation of our own...
    let (_, used) = hal::heap::stats();
    let fill = abi::limits::KERNEL_HEAP_BUDGET.saturating_sub(used) + 4096;
    let mut ballast: Vec<u8> = Vec::new();
    ballast
        .try_reserve_exact(fill)
        .map_err(|_| "no room for the ballast")?;
    ballast.resize(fill, 1);
    // ...then every user-driven object is refused, and the kernel still has its reserve.
    let me = abi::Pid::new(abi::ClusterId(0), 4242).ok_or("pid")?;
    let link = kernel::names::link("over-budget", me);
    let post = requests::try_post(Request::Kill(me));
    let (size, used) = hal::heap::stats();
    drop(ballast);
    let after = kernel::names::link("under-budget", me);
    kernel::names::forget(me);
    requests::take_all();
    ensure_eq!(link, Err(kernel::names::LinkError::Busy));
    ensure_eq!(post, Err(abi::Errno::EAGAIN));
    ensure!(
        used < hal::heap::HEAP_MAX && size <= hal::heap::HEAP_MAX,
        "the heap is full"
    );
    ensure_eq!(after, Ok(()));
    Ok(())
}
