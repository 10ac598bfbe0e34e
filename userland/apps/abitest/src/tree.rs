//! Issue 11 across clusters: the process tree and mailbox flow control when processes live
//! on other clusters, migrate, and lose their cluster. Driven by the `harden_noc` suite,
//! which moves this process and ends a cluster once it printed `tree: ready`. Each
//! failure prints a `FAIL …` line; the exit code is 0 only if nothing failed.

use ulib::abi::{ClusterId, Errno, Pid};
use ulib::mailbox::{Inbox, Outbox};
use ulib::println;
use ulib::process::{kill, spawn, wait};
use ulib::time::sleep_ms;

struct Verdict(u32);

impl Verdict {
    fn check(&mut self, name: &str, ok: bool, detail: impl core::fmt::Debug) {
        if !ok {
            self.0 += 1;
            println!("FAIL {name}: {detail:?}");
        }
    }
}

/// `abitest exit-after MS CODE`: a child that ends with CODE after MS milliseconds.
pub fn exit_after(ms: u64, code: i32) -> i32 {
    sleep_ms(ms);
    code
}

/// `abitest tree`: children here and on clusters 2 and 3; this process is moved to cluster 1
/// (by the suite, after `tree: ready`), then kills and waits for them there; the suite ends
/// cluster 3, and the child there must be reported lost, not waited for.
pub fn tree() -> i32 {
    let mut v = Verdict(0);
    let start = ulib::process::cluster_id();
    let child =
        |cluster: Option<u16>, args: &[&str]| spawn("abitest", cluster.map(ClusterId), args);
    let (Ok(local), Ok(remote), Ok(victim), Ok(doomed)) = (
        child(None, &["exit-after", "4000", "7"]),
        child(Some(2), &["exit-after", "4000", "5"]),
        child(Some(2), &["spin", "600000"]),
        child(Some(3), &["spin", "600000"]),
    ) else {
        println!("FAIL spawn");
        return 1;
    };
    println!("tree: ready");
    while ulib::process::cluster_id() == start {
        sleep_ms(10);
    }
    println!("tree: moved to cluster {}", ulib::process::cluster_id().0);
    v.check(
        "kill a child on another cluster",
        kill(victim).is_ok(),
        victim,
    );
    v.check(
        "wait: the killed child",
        wait(Some(victim)) == Ok((victim, -9)),
        victim,
    );
    v.check(
        "wait: the child left behind",
        wait(Some(local)) == Ok((local, 7)),
        local,
    );
    v.check(
        "wait: the remote child",
        wait(Some(remote)) == Ok((remote, 5)),
        remote,
    );
    let lost = wait(Some(doomed));
    v.check(
        "wait: the child on the lost cluster",
        lost == Err(Errno::EHOSTDOWN),
        lost,
    );
    v.check("no child left", wait(None) == Err(Errno::ECHILD), ());
    let to_lost = Outbox::open(doomed, 9).map(|o| o.send(b"anyone?"));
    v.check(
        "mail to a process on the lost cluster",
        to_lost == Ok(Err(Errno::EHOSTDOWN)),
        to_lost,
    );
    println!("tree: {} failed", v.0);
    i32::from(v.0 != 0)
}

const DATA: u16 = 9;
const GO: u16 = 10;

/// Sends until the receiver's kernel answers otherwise than `retry` says to try again.
fn send_until(outbox: &Outbox, data: &[u8], retry: impl Fn(Errno) -> bool) -> Result<(), Errno> {
    loop {
        match outbox.send(data) {
            Err(errno) if retry(errno) => sleep_ms(5),
            other => return other,
        }
    }
}

/// `abitest mail-remote CLUSTER`: floods a child's inbox on CLUSTER while it does not read.
/// Every write that returned `Ok` must reach it (it counts them, with their sender), and
/// the first refused one must say `EAGAIN` once the inbox holds its 1,024.
pub fn mail_remote(cluster: u16) -> i32 {
    let mut v = Verdict(0);
    let me = ulib::process::getpid();
    let Ok(sink) = spawn("abitest", Some(ClusterId(cluster)), &["mail-sink"]) else {
        println!("FAIL spawn");
        return 1;
    };
    let (Ok(data), Ok(go), Ok(nowhere)) = (
        Outbox::open(sink, DATA),
        Outbox::open(sink, GO),
        Outbox::open(sink, 11),
    ) else {
        println!("FAIL open");
        return 1;
    };
    // Until the child exists and listens, its cluster says so: no such process, no inbox.
    let first = send_until(&data, &[0], |e| {
        matches!(e, Errno::ESRCH | Errno::ECONNREFUSED)
    });
    v.check("first message", first.is_ok(), first);
    let mut accepted = 1u32;
    let refused = loop {
        match data.send(&accepted.to_le_bytes()) {
            Ok(()) => accepted += 1,
            Err(errno) => break errno,
        }
        if accepted > 4 * ulib::abi::limits::INBOX_MESSAGES as u32 {
            break Errno::EINVAL;
        }
    };
    v.check(
        "a full remote inbox refuses with EAGAIN",
        refused == Errno::EAGAIN,
        refused,
    );
    v.check(
        "the inbox's worth accepted",
        accepted == ulib::abi::limits::INBOX_MESSAGES as u32,
        accepted,
    );
    let no_inbox = nowhere.send(b"x");
    v.check(
        "no inbox there",
        no_inbox == Err(Errno::ECONNREFUSED),
        no_inbox,
    );
    let told = send_until(&go, &accepted.to_le_bytes(), |e| e == Errno::EAGAIN);
    v.check("go", told.is_ok(), told);
    let reaped = wait(Some(sink));
    v.check(
        "the child counted every accepted message",
        reaped == Ok((sink, 0)),
        reaped,
    );
    let gone = data.send(b"late");
    v.check("a receiver that ended", gone == Err(Errno::ESRCH), gone);
    println!("mail-remote from {}: {} failed", me.raw(), v.0);
    i32::from(v.0 != 0)
}

/// `abitest mail-sink`: the receiving child of `mail-remote`. Reads nothing until told how
/// many to expect, then checks it got exactly those, in order, all from its parent.
pub fn mail_sink() -> i32 {
    let (Ok(data), Ok(go)) = (Inbox::create(DATA), Inbox::create(GO)) else {
        return 2;
    };
    let Ok((count, parent)) = go.recv_from() else {
        return 3;
    };
    let Ok(expected) = <[u8; 4]>::try_from(count.as_slice()).map(u32::from_le_bytes) else {
        return 4;
    };
    let parent: Option<Pid> = parent;
    for n in 0..expected {
        match data.recv_from() {
            Ok((message, from)) if from == parent && (n == 0 || message == n.to_le_bytes()) => {}
            other => {
                println!("FAIL message {n}: {other:?}");
                return 5;
            }
        }
    }
    0
}
