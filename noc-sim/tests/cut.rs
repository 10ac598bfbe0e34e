//! `cut` and `isolate` end to end: the real noc-sim binary and fake clusters. A cut loses
//! the traffic of its pair both ways (counted, in stats and in both slices), other pairs
//! flow, and the link heals — at once with `MS = 0`, or by itself when its window ends.

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use noc_proto::layout::RouterCounter;
use noc_proto::wire::{ClusterId, Header, Kind, PortId, MAILBOX_PAYLOAD};
use noc_sim::client::FakeCluster;

const T: Duration = Duration::from_secs(10);
/// Long enough to say "nothing came" for a message the router forwards in microseconds.
const QUIET: Duration = Duration::from_millis(300);

fn send(from: &FakeCluster, to: u16, seq: u32) {
    let hdr = Header::mailbox(from.id, ClusterId(to), PortId(3), seq);
    from.send_blocking(&hdr, &[seq as u8; MAILBOX_PAYLOAD], T)
        .unwrap();
}

/// A top-level `"key":number` of a stats reply.
fn stat(stats: &str, key: &str) -> u64 {
    let at = stats
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {stats}"))
        + key.len()
        + 3;
    stats[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

fn cut_count(c: &FakeCluster) -> u64 {
    c.slice()
        .control()
        .router_counter(RouterCounter::CutDropped)
}

#[test]
fn a_cut_loses_its_pair_both_ways_and_heals_on_zero() {
    let sim = Sim::start(3, &["--guest-faults"]);
    let mut c0 = sim.connect(0);
    let mut c1 = sim.connect(1);
    let mut c2 = sim.connect(2);
    assert!(sim.control("cut 0 1 600000").starts_with("ok"));
    assert!(sim.control("cut 0 5 10").starts_with("error"));
    assert!(sim.control("cut 1 1 10").starts_with("error"));
    for seq in 0..5 {
        send(&c0, 1, seq);
        send(&c1, 0, seq);
        send(&c0, 2, seq);
        send(&c2, 1, seq);
    }
    // Other pairs flow, in order.
    for seq in 0..5 {
        let (h, _) = c2.recv(T).unwrap().expect("0 -> 2 is not cut");
        assert_eq!((h.src, h.seq), (ClusterId(0), seq));
        let (h, _) = c1.recv(T).unwrap().expect("2 -> 1 is not cut");
        assert_eq!((h.src, h.seq), (ClusterId(2), seq));
    }
    assert!(c1.recv(QUIET).unwrap().is_none(), "0 -> 1 went through");
    assert!(c0.recv(QUIET).unwrap().is_none(), "1 -> 0 went through");
    let stats = sim.control("stats");
    assert_eq!(stat(&stats, "cut_dropped"), 10, "{stats}");
    assert_eq!(stat(&stats, "cuts_active"), 1, "{stats}");
    assert_eq!(
        (cut_count(&c0), cut_count(&c1), cut_count(&c2)),
        (10, 10, 0)
    );
    // A guest heals it (cut is a fault, so --guest-faults lets it ask).
    let heal = Header::new(Kind::Control, ClusterId(0), ClusterId::ROUTER, PortId(0), 9);
    c0.send_blocking(&heal, b"cut 1 0 0", T).unwrap();
    send(&c0, 1, 100);
    let (h, _) = c1.recv(T).unwrap().expect("healed link still loses");
    assert_eq!((h.src, h.seq), (ClusterId(0), 100));
    send(&c1, 0, 101);
    assert_eq!(c0.recv(T).unwrap().expect("1 -> 0 healed").0.seq, 101);
    assert_eq!(stat(&sim.control("stats"), "cut_dropped"), 10);
}

#[test]
fn an_isolated_cluster_comes_back_by_itself() {
    let sim = Sim::start(3, &[]);
    let mut c0 = sim.connect(0);
    let mut c1 = sim.connect(1);
    let c2 = sim.connect(2);
    assert!(sim.control("isolate 2 400").starts_with("ok"));
    send(&c2, 0, 0);
    send(&c2, 1, 0);
    send(&c0, 1, 7);
    assert_eq!(
        c1.recv(T).unwrap().expect("0 -> 1 flows").0.src,
        ClusterId(0)
    );
    // Re-send until one gets through: the window ends without any command.
    let deadline = Instant::now() + T;
    let mut seq = 1;
    let arrived = loop {
        assert!(Instant::now() < deadline, "the isolation never healed");
        send(&c2, 0, seq);
        if let Some((h, _)) = c0.recv(Duration::from_millis(50)).unwrap() {
            break h;
        }
        seq += 1;
    };
    assert_eq!(arrived.src, ClusterId(2));
    let stats = sim.control("stats");
    assert!(stat(&stats, "cut_dropped") >= 2, "{stats}");
    assert_eq!(stat(&stats, "cuts_active"), 0, "{stats}");
}
