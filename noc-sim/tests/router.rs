//! End-to-end tests: the real noc-sim binary and fake clusters that speak
//! the ivshmem protocol like QEMU and drive the rings like the guest driver.

mod common;

use std::time::{Duration, Instant};

use common::{cluster_stat, Sim};
use noc_proto::ring::RecvError;
use noc_proto::wire::{
    self, flags, ClusterId, Header, Kind, PortId, WireError, MAILBOX_PAYLOAD, MAX_PORTAL_TRANSFER,
};

const T: Duration = Duration::from_secs(10);

fn mailbox(src: u16, dst: u16, seq: u32) -> (Header, Vec<u8>) {
    let hdr = Header::mailbox(ClusterId(src), ClusterId(dst), PortId(3), seq);
    let payload: Vec<u8> = (0..MAILBOX_PAYLOAD)
        .map(|i| (i as u32 + seq * 7 + src as u32) as u8)
        .collect();
    (hdr, payload)
}

#[test]
fn peer_ids_follow_sockets_and_mailboxes_flow() {
    let sim = Sim::start(3, &[]);
    // Connect out of order: ids come from the socket, not the order.
    let mut c2 = sim.connect(2);
    let mut c0 = sim.connect(0);
    let mut c1 = sim.connect(1);
    assert_eq!(
        (c0.id, c1.id, c2.id),
        (ClusterId(0), ClusterId(1), ClusterId(2))
    );
    assert_eq!(c0.info.cluster_count, 3);
    assert_eq!(c0.slice().control().router_peer_id(), 32);
    let deadline = Instant::now() + T;
    while c0.slice().control().live_clusters() != 0b111 {
        assert!(Instant::now() < deadline, "live bitmap never complete");
        std::thread::sleep(Duration::from_millis(5));
    }

    for seq in 0..50 {
        let (h, p) = mailbox(0, 1, seq);
        c0.send_blocking(&h, &p, T).unwrap();
        let (h, p) = mailbox(2, 1, seq);
        c2.send_blocking(&h, &p, T).unwrap();
        let (h, p) = mailbox(1, 0, seq);
        c1.send_blocking(&h, &p, T).unwrap();
    }
    // Per-sender FIFO at each receiver.
    let mut next = [0u32; 3];
    for _ in 0..100 {
        let (h, p) = c1.recv(T).unwrap().expect("c1 timed out");
        assert_eq!(h.kind, Kind::Mailbox);
        assert_eq!(h.seq, next[h.src.index()], "out of order from {:?}", h.src);
        assert_eq!(p, mailbox(h.src.0, 1, h.seq).1);
        next[h.src.index()] += 1;
    }
    for seq in 0..50 {
        let (h, p) = c0.recv(T).unwrap().expect("c0 timed out");
        assert_eq!((h.src, h.seq), (ClusterId(1), seq));
        assert_eq!(p, mailbox(1, 0, seq).1);
    }
    // Loopback to self goes through the router too.
    let (h, p) = mailbox(2, 2, 99);
    c2.send(&h, &p).unwrap();
    assert_eq!(c2.recv(T).unwrap().unwrap().0.seq, 99);

    let stats = sim.control("stats");
    assert_eq!(cluster_stat(&stats, 0, "sent"), 50);
    assert_eq!(cluster_stat(&stats, 1, "received"), 100);
    assert_eq!(cluster_stat(&stats, 2, "sent"), 51);
    assert!(stats.contains("\"link\":\"(0,0)->(1,0)\""), "{stats}");
}

#[test]
fn one_mib_portal_transfer_in_chunks() {
    let sim = Sim::start(4, &[]);
    let c0 = sim.connect(0);
    let mut c3 = sim.connect(3);
    let data: Vec<u8> = (0..MAX_PORTAL_TRANSFER)
        .map(|i| (i * 131 % 251) as u8)
        .collect();
    let sender = {
        let data = data.clone();
        std::thread::spawn(move || {
            for (i, ch) in wire::portal_chunks(data.len()).enumerate() {
                let mut h = Header::new(
                    Kind::PortalData,
                    ClusterId(0),
                    ClusterId(3),
                    PortId(1),
                    ch.len,
                );
                h.flags = ch.flags;
                h.arg = ch.offset;
                h.seq = i as u32;
                let payload = &data[ch.offset as usize..(ch.offset + ch.len) as usize];
                c0.send_blocking(&h, payload, T).unwrap();
            }
            c0
        })
    };
    let mut got = vec![0u8; MAX_PORTAL_TRANSFER];
    let mut received = 0usize;
    loop {
        let (h, p) = c3.recv(T).unwrap().expect("portal receiver timed out");
        assert_eq!(h.kind, Kind::PortalData);
        assert_eq!(h.arg as usize, received, "chunks out of order");
        got[received..received + p.len()].copy_from_slice(&p);
        received += p.len();
        if h.flags & flags::LAST != 0 {
            break;
        }
    }
    assert_eq!(received, MAX_PORTAL_TRANSFER);
    assert!(got == data, "portal data differs");
    // Keep the sender connected: dropping it would (rightly) send c3 a ClusterDown.
    let _c0 = sender.join().unwrap();
    let stats = sim.control("stats");
    assert_eq!(cluster_stat(&stats, 3, "received"), 32);
}

#[test]
fn corrupt_messages_are_caught_and_counted() {
    let sim = Sim::start(2, &[]);
    let c0 = sim.connect(0);
    let mut c1 = sim.connect(1);

    // Invalid at the source: the router drops it and never forwards it.
    c0.send_raw(b"this is not a NoC message").unwrap();
    let (mut h, p) = mailbox(0, 1, 0);
    h.src = ClusterId(1); // spoofed source
    c0.send(&h, &p).unwrap();
    let deadline = Instant::now() + T;
    while cluster_stat(&sim.control("stats"), 0, "dropped_corrupt") < 2 {
        assert!(
            Instant::now() < deadline,
            "router did not count the bad messages"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c1.recv(Duration::from_millis(200)).unwrap(), None);

    // Damaged in flight (after the checksum): the receiver must catch it.
    assert!(sim.control("corrupt 2 1").starts_with("ok"));
    for seq in 1..=3 {
        let (h, p) = mailbox(0, 1, seq);
        c0.send(&h, &p).unwrap();
    }
    let mut bad = 0;
    let mut good = Vec::new();
    while bad + good.len() < 3 {
        match c1.recv(T) {
            Err(RecvError::Wire(WireError::Checksum { .. })) => bad += 1,
            Ok(Some((h, _))) => good.push(h.seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((bad, good), (2, vec![3]));
    let stats = sim.control("stats");
    assert!(stats.contains("\"corrupted\":2"), "{stats}");
}

#[test]
fn backpressure_loses_nothing() {
    const N: u32 = 20_000;
    let sim = Sim::start(2, &["--queue-limit", "64"]);
    let c0 = sim.connect(0);
    let mut c1 = sim.connect(1);
    let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let stalled = stalled.clone();
        std::thread::spawn(move || {
            for seq in 0..N {
                let (h, p) = mailbox(0, 1, seq);
                let mut sent = c0.send(&h, &p).is_ok();
                while !sent {
                    stalled.store(true, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                    sent = c0.send(&h, &p).is_ok();
                }
            }
            c0
        })
    };
    // Do not read until the sender's TX ring is full: RX ring, router queue
    // and TX ring are all full now.
    let deadline = Instant::now() + T;
    while !stalled.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "sender never hit backpressure");
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = sim.control("stats");
    assert!(cluster_stat(&stats, 1, "rx_full_stalls") > 0, "{stats}");
    assert!(cluster_stat(&stats, 0, "queue_full_stalls") > 0, "{stats}");
    assert!(cluster_stat(&stats, 1, "queued") <= 64);
    for seq in 0..N {
        let (h, p) = c1
            .recv(T)
            .unwrap()
            .unwrap_or_else(|| panic!("message {seq} lost"));
        assert_eq!(h.seq, seq);
        assert_eq!(p, mailbox(0, 1, seq).1);
    }
    sender.join().unwrap();
    assert_eq!(
        cluster_stat(&sim.control("stats"), 0, "dropped_unreachable"),
        0
    );
}

#[test]
fn disconnect_is_announced_and_router_exits_when_all_left() {
    let mut sim = Sim::start(3, &[]);
    let mut c0 = sim.connect(0);
    let mut c1 = sim.connect(1);
    let c2 = sim.connect(2);
    c2.disconnect();
    for c in [&mut c0, &mut c1] {
        let (h, p) = c.recv(T).unwrap().expect("no ClusterDown");
        assert_eq!(
            (h.kind, h.src, h.arg, p.len()),
            (Kind::ClusterDown, ClusterId::ROUTER, 2, 0)
        );
        assert_eq!(c.slice().control().live_clusters(), 0b011);
    }
    // Messages to a dead cluster are dropped and counted, not queued forever.
    let (h, p) = mailbox(0, 2, 0);
    c0.send(&h, &p).unwrap();
    let deadline = Instant::now() + T;
    while cluster_stat(&sim.control("stats"), 0, "dropped_unreachable") != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    // `kill` acts like a disconnect.
    assert!(sim.control("kill 1").starts_with("ok"));
    let (h, _) = c0.recv(T).unwrap().expect("no ClusterDown for 1");
    assert_eq!((h.kind, h.arg), (Kind::ClusterDown, 1));
    c0.disconnect();
    assert_eq!(
        sim.wait_exit(T),
        Some(true),
        "router did not exit cleanly:\n{}",
        sim.log()
    );
    let log = sim.log();
    assert!(log.contains("all 3 clusters joined in"), "{log}");
    assert!(log.contains("cluster 2 left"), "{log}");
    assert!(log.contains("summary: {"), "{log}");
}
