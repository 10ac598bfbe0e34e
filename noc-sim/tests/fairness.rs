//! Router fairness: a destination that stops reading holds back only the traffic for it.
//! Fake clusters: c0 sends to c1 (which never reads, so its RX ring and router queue fill)
//! and then to c2, which must still receive everything at once; when c1 reads at last, its
//! messages all arrive, in order.

mod common;

use std::time::{Duration, Instant};

use common::{cluster_stat, Sim};
use noc_proto::wire::{ClusterId, Header, PortId, MAILBOX_PAYLOAD};

const T: Duration = Duration::from_secs(10);
const QUEUE_LIMIT: u64 = 64;

fn mailbox(src: u16, dst: u16, seq: u32) -> (Header, Vec<u8>) {
    let hdr = Header::mailbox(ClusterId(src), ClusterId(dst), PortId(3), seq);
    (hdr, vec![seq as u8; MAILBOX_PAYLOAD])
}

#[test]
fn a_stuck_destination_does_not_stall_traffic_to_others() {
    let sim = Sim::start(3, &["--queue-limit", &QUEUE_LIMIT.to_string()]);
    let c0 = sim.connect(0);
    let mut c1 = sim.connect(1);
    let mut c2 = sim.connect(2);
    // Fill c1: its RX ring, then its router queue, until the router holds back.
    let mut to_c1 = 0u32;
    let deadline = Instant::now() + T;
    while cluster_stat(&sim.control("stats"), 1, "queued") < QUEUE_LIMIT {
        assert!(Instant::now() < deadline, "c1's queue never filled");
        let (h, p) = mailbox(0, 1, to_c1);
        if c0.send(&h, &p).is_ok() {
            to_c1 += 1;
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // A few more for c1: they cannot go anywhere yet.
    for _ in 0..10 {
        let (h, p) = mailbox(0, 1, to_c1);
        c0.send_blocking(&h, &p, T).unwrap();
        to_c1 += 1;
    }
    // Traffic for c2 behind them in the same TX ring must flow now.
    for seq in 0..20 {
        let (h, p) = mailbox(0, 2, seq);
        c0.send_blocking(&h, &p, T).unwrap();
    }
    for seq in 0..20 {
        let (h, p) = c2
            .recv(T)
            .unwrap()
            .unwrap_or_else(|| panic!("c2 starved behind stuck c1 (message {seq})"));
        assert_eq!((h.src, h.seq, p[0]), (ClusterId(0), seq, seq as u8));
    }
    // c1 reads at last: everything, in order, nothing lost.
    for seq in 0..to_c1 {
        let (h, _) = c1
            .recv(T)
            .unwrap()
            .unwrap_or_else(|| panic!("c1 lost message {seq} of {to_c1}"));
        assert_eq!(h.seq, seq);
    }
    let stats = sim.control("stats");
    assert_eq!(cluster_stat(&stats, 0, "dropped_unreachable"), 0, "{stats}");
}

#[test]
fn one_flooding_sender_does_not_starve_another() {
    // c0 floods c2 while c1 sends a little to c2: c1's messages arrive while c0 still has
    // thousands in flight (each pass reads a bounded number of records per TX ring).
    let sim = Sim::start(3, &[]);
    let c0 = sim.connect(0);
    let c1 = sim.connect(1);
    let mut c2 = sim.connect(2);
    let flood = std::thread::spawn(move || {
        for seq in 0..5000 {
            let (h, p) = mailbox(0, 2, seq);
            c0.send_blocking(&h, &p, T).unwrap();
        }
        c0
    });
    for seq in 0..20 {
        let (h, p) = mailbox(1, 2, seq);
        c1.send_blocking(&h, &p, T).unwrap();
    }
    let (mut from0, mut from1) = (0u32, 0u32);
    while from1 < 20 {
        let (h, _) = c2.recv(T).unwrap().expect("c2 timed out");
        match h.src.0 {
            0 => {
                assert_eq!(h.seq, from0);
                from0 += 1;
            }
            _ => {
                assert_eq!(h.seq, from1);
                from1 += 1;
            }
        }
    }
    while from0 < 5000 {
        let (h, _) = c2.recv(T).unwrap().expect("c2 timed out");
        assert_eq!((h.src.0, h.seq), (0, from0));
        from0 += 1;
    }
    flood.join().unwrap();
}
