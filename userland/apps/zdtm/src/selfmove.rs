//! `migrate` on oneself must answer truthfully (issue 11): the error at the source when the
//! destination refuses, `EBUSY` when another migration of the process is under way — and 0
//! only on the cluster asked for.

use alloc::vec::Vec;
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

/// `zdtm selfbusy`: two threads move the process at once, to clusters 2 and 3; one call must
/// say `EBUSY`, the other return 0 on the cluster it asked for.
pub fn busy() -> bool {
    let me = ulib::process::getpid();
    let Ok(other) = ulib::thread::spawn(move || {
        let result = ulib::process::migrate(me, ClusterId(3));
        (result, ulib::process::cluster_id().0)
    }) else {
        return false;
    };
    let mine = ulib::process::migrate(me, ClusterId(2));
    let here = ulib::process::cluster_id().0;
    let theirs = other.join();
    let now = ulib::process::cluster_id().0;
    println!("selfbusy: to 2 {mine:?} (on {here}), to 3 {theirs:?}; now on {now}");
    match (mine, theirs) {
        (Ok(()), Ok((Err(Errno::EBUSY), _))) => here == 2 && now == 2,
        (Err(Errno::EBUSY), Ok((Ok(()), there))) => there == 3 && now == 3,
        _ => false,
    }
}
