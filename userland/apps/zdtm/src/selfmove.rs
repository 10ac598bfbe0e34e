//! `migrate` on oneself must answer truthfully (issue 11): the error at the source when the
//! destination refuses, `EBUSY` when another migration of the process is under way — and 0
//! only on the cluster asked for.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use ulib::abi::Errno;
use ulib::println;
use ulib::ClusterId;

fn pattern(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5E1F
}

/// `zdtm selfrefused TO` (the driver makes cluster 2 refuse): moving to 2 fails with `EAGAIN`
/// and leaves it here, intact; moving to `TO` then works.
pub fn refused(to: u16) -> bool {
    let data: Vec<u64> = (0..10_000).map(pattern).collect();
    let from = ulib::process::cluster_id().0;
    let me = ulib::process::getpid();
    let refused = ulib::process::migrate(me, ClusterId(2));
    let still = ulib::process::cluster_id().0;
    let moved = ulib::process::migrate(me, ClusterId(to));
    let now = ulib::process::cluster_id().0;
    let intact = data.iter().enumerate().all(|(i, v)| *v == pattern(i));
    println!(
        "selfrefused: to 2 {refused:?} (on {still}, from {from}), to {to} {moved:?} (on {now})"
    );
    refused == Err(Errno::EAGAIN) && still == from && moved.is_ok() && now == to && intact
}

/// `zdtm selfbusy`: two threads move the process at about the same time, to clusters 2 and
/// 3. Every `Ok` is a move that happened: if the calls overlapped, one says `EBUSY` and the
/// process moved once, to the other's cluster; if the second came after the first move, both
/// say `Ok` and it moved twice. Never an `Ok` without its move.
pub fn busy() -> bool {
    static ASKING: AtomicBool = AtomicBool::new(false);
    let me = ulib::process::getpid();
    let before = ulib::process::migrations();
    let Ok(other) = ulib::thread::spawn(move || {
        ASKING.store(true, Ordering::Release);
        ulib::process::migrate(me, ClusterId(3))
    }) else {
        return false;
    };
    while !ASKING.load(Ordering::Acquire) {
        ulib::time::yield_now();
    }
    let mine = ulib::process::migrate(me, ClusterId(2));
    let theirs = other.join();
    let now = ulib::process::cluster_id().0;
    let moves = ulib::process::migrations() - before;
    println!("selfbusy: to 2 {mine:?}, to 3 {theirs:?}; moved {moves} time(s), now on {now}");
    match (mine, theirs) {
        (Ok(()), Ok(Err(Errno::EBUSY))) => moves == 1 && now == 2,
        (Err(Errno::EBUSY), Ok(Ok(()))) => moves == 1 && now == 3,
        (Ok(()), Ok(Ok(()))) => moves == 2 && (now == 2 || now == 3),
        _ => false,
    }
}
