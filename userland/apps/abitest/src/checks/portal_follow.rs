//! Portal state follows a process that migrates (issue 11): an allowance the sender holds
//! moves with the sender, and a transfer delivered to a receiver that has not read it moves
//! with the receiver. Driven by the `migration` suite (4 clusters).

use alloc::vec::Vec;
use ulib::abi::Pid;
use ulib::mailbox::{Inbox, Outbox};
use ulib::{println, ClusterId};

use super::remote::{portal_pattern, read_pattern, PORTAL_BYTES};

const READY_PORT: u16 = 3;
const GO_PORT: u16 = 4;

/// `abitest portal-follow ON SENDER_TO RECEIVER_TO`: the receiver, spawned on cluster `ON`,
/// allows this process; this process moves itself to `SENDER_TO` (its allowance follows),
/// writes 1 MiB, and tells the receiver, which moves itself to `RECEIVER_TO` before it reads
/// (the unread transfer follows) and checks every byte.
pub fn portal_follow(on: u16, sender_to: u16, receiver_to: u16) -> i32 {
    let me = ulib::process::getpid();
    let inbox = Inbox::create(READY_PORT).expect("inbox");
    let args = [
        "portal-follow-child",
        &alloc::format!("{}", me.raw()),
        &alloc::format!("{receiver_to}"),
    ];
    let Ok(child) = ulib::process::spawn("abitest", Some(ClusterId(on)), &args) else {
        println!("portal-follow: cannot spawn the receiver");
        return 1;
    };
    let _allowed = inbox.recv().expect("ready");
    let moved = ulib::process::migrate(me, ClusterId(sender_to));
    let data: Vec<u8> = (0..PORTAL_BYTES).map(portal_pattern).collect();
    let sender = ulib::portal::Sender::open(8, child, 9).expect("open");
    let sent = sender.write(&data);
    let told = Outbox::open(child, GO_PORT).and_then(|o| o.send(b"written"));
    let waited = ulib::process::wait(Some(child));
    println!(
        "portal-follow: moved to {sender_to} {moved:?} (on {}), wrote {sent:?}, told {told:?}, receiver ended {waited:?}",
        ulib::process::cluster_id().0
    );
    let ok = moved.is_ok()
        && ulib::process::cluster_id().0 == sender_to
        && sent == Ok(PORTAL_BYTES)
        && told.is_ok()
        && waited.is_ok_and(|(_, code)| code == 0);
    if ok {
        0
    } else {
        1
    }
}

/// The receiver: allows its parent, waits until the 1 MiB was written to it, moves itself
/// to `to`, and only then reads.
pub fn portal_follow_child(parent: Option<u32>, to: u16) -> i32 {
    let Some(parent) = parent.and_then(Pid::from_raw) else {
        return 2;
    };
    let receiver = ulib::portal::Receiver::create(9).expect("portal");
    let go = Inbox::create(GO_PORT).expect("inbox");
    receiver.allow(parent, 8).expect("allow");
    Outbox::open(parent, READY_PORT)
        .and_then(|o| o.send(b"allowed"))
        .expect("ready");
    let written = go.recv();
    let from = ulib::process::cluster_id().0;
    let moved = ulib::process::migrate(ulib::process::getpid(), ClusterId(to));
    let (got, intact) = read_pattern(&receiver);
    let now = ulib::process::cluster_id().0;
    println!(
        "portal-follow receiver: told {:?}, moved {from} -> {now} {moved:?}, read {got:?}, intact {intact}",
        written.map(|w| w.len())
    );
    if moved.is_ok() && now == to && got == Ok(PORTAL_BYTES) && intact {
        0
    } else {
        1
    }
}
