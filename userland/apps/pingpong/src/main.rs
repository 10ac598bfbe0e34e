//! Two processes on two clusters play ping-pong over mailboxes.
//!
//! `pingpong [ROUNDS] [CLUSTER]` (default 10 rounds, partner on cluster 1): the process spawns
//! its partner here, moves it to CLUSTER with `migrate`, then sends `ping n` and waits for
//! `pong n`, ROUNDS times. Messages find the partner wherever it runs. Exits 0 if every reply
//! matched. (`pingpong pong PARENT` is the partner's role.)
#![no_std]
#![no_main]

extern crate alloc;

use ulib::mailbox::{Inbox, Outbox};
use ulib::{println, ClusterId, Pid};

ulib::main!(main);

const PING_PORT: u16 = 1;
const PONG_PORT: u16 = 2;

fn main(args: ulib::rt::Args) -> i32 {
    if args.get(1) == Some("pong") {
        let parent = args
            .get(2)
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(Pid::from_raw);
        return match parent {
            Some(parent) => pong(parent),
            None => 2,
        };
    }
    let rounds: u32 = args.number(1, 10);
    let cluster: u16 = args.number(2, 1);
    ping(rounds, ClusterId(cluster))
}

fn ping(rounds: u32, cluster: ClusterId) -> i32 {
    let me = ulib::process::getpid();
    let inbox = Inbox::create(PONG_PORT).expect("inbox");
    let me_text = alloc::format!("{}", me.raw());
    let partner = match ulib::process::spawn("pingpong", None, &["pong", &me_text]) {
        Ok(pid) => pid,
        Err(error) => {
            println!("cannot start the partner: {error:?}");
            return 1;
        }
    };
    // Wait for the partner's "ready", then move it away.
    let ready = inbox.recv().expect("ready");
    println!(
        "partner {partner} says {:?}",
        core::str::from_utf8(&ready).unwrap_or("?")
    );
    if ulib::process::cluster_count() > cluster.0 as usize {
        match ulib::process::migrate(partner, cluster) {
            Ok(()) => println!("moved partner {partner} to cluster {}", cluster.0),
            Err(error) => println!("could not move the partner ({error:?}); playing locally"),
        }
    }
    let outbox = Outbox::open(partner, PING_PORT).expect("outbox");
    let mut ok = true;
    for n in 0..rounds {
        let start = ulib::time::now_ns();
        outbox
            .send(alloc::format!("ping {n}").as_bytes())
            .expect("send");
        let reply = inbox.recv().expect("recv");
        let reply = core::str::from_utf8(&reply).unwrap_or("?");
        let us = (ulib::time::now_ns() - start) / 1000;
        println!("{reply} ({us} us round trip)");
        ok &= reply.starts_with(&alloc::format!("pong {n} "));
    }
    let _ = outbox.send(b"bye");
    let _ = ulib::process::wait(Some(partner));
    if ok {
        0
    } else {
        1
    }
}

fn pong(parent: Pid) -> i32 {
    let inbox = Inbox::create(PING_PORT).expect("inbox");
    let outbox = Outbox::open(parent, PONG_PORT).expect("outbox");
    outbox.send(b"ready").expect("ready");
    loop {
        let message = inbox.recv().expect("recv");
        if message == b"bye" {
            return 0;
        }
        let text = core::str::from_utf8(&message).unwrap_or("?");
        let n = text.strip_prefix("ping ").unwrap_or("?");
        let reply = alloc::format!("pong {n} from cluster {}", ulib::process::cluster_id().0);
        outbox.send(reply.as_bytes()).expect("send");
    }
}
