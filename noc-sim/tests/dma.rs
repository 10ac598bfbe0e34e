//! The DMA engine end to end: the real noc-sim binary, fake clusters whose "RAM" is a file
//! the router maps (as it maps QEMU's memory-backend-file), grants and descriptors built in
//! that RAM exactly as the guest kernel builds them.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use common::Sim;
use noc_proto::dma::{Completion, Descriptor, Grant, ListRef, Range, Role, Status};
use noc_proto::wire::{ClusterId, Header, Kind, PortId};
use noc_sim::client::FakeCluster;

const T: Duration = Duration::from_secs(10);
const RAM: u64 = 4 << 20;
const PORT: PortId = PortId(9);
/// Where each fake guest keeps its range list.
const LIST_AT: u64 = 0x1000;

/// A fake cluster's RAM file, removed on drop.
struct Ram {
    path: PathBuf,
    file: File,
}

impl Ram {
    fn new(tag: &str) -> Ram {
        let path = std::env::temp_dir().join(format!("noc-dma-{}-{tag}.ram", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(RAM).unwrap();
        Ram { path, file }
    }
    fn write(&self, at: u64, data: &[u8]) {
        self.file.write_all_at(data, at).unwrap();
    }
    fn read(&self, at: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.file.read_exact_at(&mut out, at).unwrap();
        out
    }
    fn put_list(&self, ranges: &[Range]) -> ListRef {
        let bytes: Vec<u8> = ranges.iter().flat_map(|r| r.encode()).collect();
        self.write(LIST_AT, &bytes);
        ListRef {
            addr: LIST_AT,
            count: ranges.len() as u32,
        }
    }
}

impl Drop for Ram {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Rig {
    sim: Sim,
    c0: FakeCluster,
    c1: FakeCluster,
    ram0: Ram,
    ram1: Ram,
}

fn rig(tag: &str) -> Rig {
    let (ram0, ram1) = (Ram::new(&format!("{tag}0")), Ram::new(&format!("{tag}1")));
    let r0 = format!("0={}", ram0.path.display());
    let r1 = format!("1={}", ram1.path.display());
    let sim = Sim::start(2, &["--guest-faults", "--ram", &r0, "--ram", &r1]);
    let c0 = sim.connect(0);
    let c1 = sim.connect(1);
    Rig {
        sim,
        c0,
        c1,
        ram0,
        ram1,
    }
}

fn to_router(kind: Kind, src: u16, payload: &[u8; 32]) -> Header {
    Header::new(
        kind,
        ClusterId(src),
        ClusterId::ROUTER,
        PORT,
        payload.len() as u32,
    )
}

impl Rig {
    /// Cluster 1 grants `ranges` (limit bytes) to cluster 0 as transfer `id`.
    fn grant(&self, id: u32, ranges: &[Range], limit: u32) {
        let list = self.ram1.put_list(ranges);
        let g = Grant {
            sender: 0,
            transfer: id,
            list,
            limit,
        }
        .encode();
        self.c1
            .send_blocking(&to_router(Kind::DmaGrant, 1, &g), &g, T)
            .unwrap();
        // A real sender learns of the grant only after the router took it (the PortalAllow
        // follows it through the receiver's TX ring); here, wait for the router to take it.
        let deadline = std::time::Instant::now() + T;
        while !self.c1.slice().tx().is_empty() {
            assert!(std::time::Instant::now() < deadline, "grant never taken");
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.sim.control("stats"); // the router has finished that pump
    }
    /// Cluster 0 posts `ranges` of its RAM to (1, PORT, id).
    fn post(&self, id: u32, ranges: &[Range], total: u32) {
        let list = self.ram0.put_list(ranges);
        let d = Descriptor {
            destination: 1,
            transfer: id,
            list,
            total,
        }
        .encode();
        self.c0
            .send_blocking(&to_router(Kind::DmaDescriptor, 0, &d), &d, T)
            .unwrap();
    }
}

fn completion(c: &mut FakeCluster, timeout: Duration) -> Option<Completion> {
    let (h, p) = c.recv(timeout).unwrap()?;
    assert_eq!(h.kind, Kind::DmaComplete);
    assert_eq!(h.src, ClusterId::ROUTER);
    assert_eq!(h.port, PORT);
    Some(Completion::decode(&p).unwrap())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn granted_transfer_is_copied_and_completed_on_both_sides() {
    let mut r = rig("ok");
    r.ram1.write(0x10000, &[0xAA; 0x6000]);
    let data = pattern(0x3000, 7);
    r.ram0.write(0x20000, &data[..0x1800]);
    r.ram0.write(0x30000, &data[0x1800..]);
    // Scattered on both sides: 2 source ranges into 3 granted ranges.
    let grant = [
        Range {
            addr: 0x11000,
            len: 0x1000,
        },
        Range {
            addr: 0x13000,
            len: 0x1000,
        },
        Range {
            addr: 0x14000,
            len: 0x1000,
        },
    ];
    r.grant(5, &grant, 1 << 20);
    r.post(
        5,
        &[
            Range {
                addr: 0x20000,
                len: 0x1800,
            },
            Range {
                addr: 0x30000,
                len: 0x1800,
            },
        ],
        0x3000,
    );
    let sent = completion(&mut r.c0, T).expect("no sender completion");
    let got = completion(&mut r.c1, T).expect("no receiver completion");
    assert_eq!(
        (sent.role, sent.status, sent.bytes, sent.peer),
        (Role::Sender, Status::Ok, 0x3000, 1)
    );
    assert_eq!(
        (got.role, got.status, got.bytes, got.peer),
        (Role::Receiver, Status::Ok, 0x3000, 0)
    );
    assert_eq!(got.transfer, 5);
    assert_eq!(got.crc, crc32fast::hash(&data));
    assert_eq!(r.ram1.read(0x11000, 0x1000), data[..0x1000]);
    assert_eq!(r.ram1.read(0x13000, 0x2000), data[0x1000..]);
    // Bytes around and between the granted ranges are untouched.
    assert_eq!(r.ram1.read(0x10000, 0x1000), vec![0xAA; 0x1000]);
    assert_eq!(r.ram1.read(0x12000, 0x1000), vec![0xAA; 0x1000]);
    assert_eq!(r.ram1.read(0x15000, 0x1000), vec![0xAA; 0x1000]);
    // One grant, one transfer: the same id again is refused.
    r.post(
        5,
        &[Range {
            addr: 0x20000,
            len: 0x100,
        }],
        0x100,
    );
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::NoGrant);
    let stats = r.sim.control("stats");
    assert!(
        stats.contains("\"dma\":{\"transfers\":1,\"bytes\":12288,"),
        "{stats}"
    );
}

#[test]
fn invalid_descriptors_are_rejected_without_touching_memory() {
    let mut r = rig("rej");
    r.ram1.write(0x10000, &[0xAA; 0x3000]);
    r.ram0.write(0x20000, &pattern(0x4000, 3));
    r.grant(
        8,
        &[Range {
            addr: 0x11000,
            len: 0x1000,
        }],
        0x800,
    );
    let src = |len| [Range { addr: 0x20000, len }];
    // No grant for this transfer id.
    r.post(9, &src(0x100), 0x100);
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::NoGrant);
    // Above the grant's limit.
    r.post(8, &src(0x900), 0x900);
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::TooLarge);
    // Above the 1 MiB transfer limit.
    r.post(
        8,
        &[Range {
            addr: 0,
            len: (1 << 20) + 1,
        }],
        (1 << 20) + 1,
    );
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::TooLarge);
    // Outside the sender's RAM, and wrapping around the address space.
    r.post(
        8,
        &[Range {
            addr: RAM - 0x10,
            len: 0x20,
        }],
        0x20,
    );
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::BadSource);
    r.post(
        8,
        &[Range {
            addr: u64::MAX - 0x10,
            len: 0x20,
        }],
        0x20,
    );
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::BadSource);
    // A total that lies about the list.
    r.post(8, &src(0x100), 0x200);
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::BadList);
    // A list outside the sender's RAM.
    let d = Descriptor {
        destination: 1,
        transfer: 8,
        list: ListRef {
            addr: RAM - 8,
            count: 1,
        },
        total: 16,
    }
    .encode();
    r.c0.send_blocking(&to_router(Kind::DmaDescriptor, 0, &d), &d, T)
        .unwrap();
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::BadList);
    // Receiver heard nothing and its memory is as it was.
    assert!(completion(&mut r.c1, Duration::from_millis(200)).is_none());
    assert_eq!(r.ram1.read(0x10000, 0x3000), vec![0xAA; 0x3000]);
    // Out of grant: a grant whose limit allows more than its ranges hold.
    r.grant(
        10,
        &[Range {
            addr: 0x11000,
            len: 0x1000,
        }],
        1 << 20,
    );
    r.post(10, &src(0x1001), 0x1001);
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::OutOfGrant);
    assert_eq!(r.ram1.read(0x10000, 0x3000), vec![0xAA; 0x3000]);
    // The grant survived the rejections: a valid transfer still goes through.
    r.post(8, &src(0x800), 0x800);
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::Ok);
    assert_eq!(completion(&mut r.c1, T).unwrap().status, Status::Ok);
    assert_eq!(r.ram1.read(0x11000, 0x800), pattern(0x4000, 3)[..0x800]);
    assert_eq!(r.ram1.read(0x11800, 0x800), vec![0xAA; 0x800]);
    // A grant of memory outside the receiver's RAM is refused to the receiver.
    r.grant(
        11,
        &[Range {
            addr: RAM - 0x100,
            len: 0x1000,
        }],
        0x1000,
    );
    let refused = completion(&mut r.c1, T).unwrap();
    assert_eq!((refused.status, refused.transfer), (Status::BadList, 11));
    let stats = r.sim.control("stats");
    assert!(stats.contains("\"rejected\":9,"), "{stats}");
}

#[test]
fn faults_reach_both_sides() {
    let mut r = rig("fault");
    r.ram0.write(0x20000, &pattern(0x2000, 1));
    let grant = [Range {
        addr: 0x40000,
        len: 0x2000,
    }];
    let src = [Range {
        addr: 0x20000,
        len: 0x2000,
    }];
    for (id, fault, status) in [
        (1, "dma-corrupt 1", Status::Corrupt),
        (2, "dma-peer-gone 1", Status::PeerGone),
    ] {
        assert!(r.sim.control(fault).starts_with("ok"));
        r.grant(id, &grant, 0x2000);
        r.post(id, &src, 0x2000);
        assert_eq!(completion(&mut r.c0, T).unwrap().status, status, "{fault}");
        assert_eq!(completion(&mut r.c1, T).unwrap().status, status, "{fault}");
    }
    assert!(r.sim.control("dma-drop 1").starts_with("ok"));
    r.grant(3, &grant, 0x2000);
    r.post(3, &src, 0x2000);
    assert!(completion(&mut r.c0, Duration::from_millis(300)).is_none());
    assert!(completion(&mut r.c1, Duration::from_millis(10)).is_none());
    // Faults used up: the next transfer is clean. A guest may arm faults too.
    let request = Header::new(
        Kind::Control,
        ClusterId(0),
        ClusterId::ROUTER,
        PortId(0),
        13,
    );
    r.c0.send_blocking(&request, b"dma-corrupt 0", T).unwrap();
    r.grant(4, &grant, 0x2000);
    r.post(4, &src, 0x2000);
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::Ok);
    assert_eq!(completion(&mut r.c1, T).unwrap().status, Status::Ok);
    assert_eq!(r.ram1.read(0x40000, 0x2000), pattern(0x2000, 1));
    // A receiver that leaves takes its grants with it: the sender hears PeerGone.
    r.grant(5, &grant, 0x2000);
    std::thread::sleep(Duration::from_millis(100));
    let Rig {
        sim: _sim,
        mut c0,
        c1,
        ram0,
        ram1: _ram1,
    } = r;
    c1.disconnect();
    std::thread::sleep(Duration::from_millis(200));
    let list = ram0.put_list(&src);
    let d = Descriptor {
        destination: 1,
        transfer: 5,
        list,
        total: 0x2000,
    }
    .encode();
    c0.send_blocking(&to_router(Kind::DmaDescriptor, 0, &d), &d, T)
        .unwrap();
    let c = loop {
        let (h, p) = c0.recv(T).unwrap().expect("no completion");
        if h.kind == Kind::DmaComplete {
            break Completion::decode(&p).unwrap();
        }
    };
    assert_eq!(c.status, Status::PeerGone);
}

#[test]
fn a_cut_link_fails_the_transfer_on_both_sides_and_heals() {
    let mut r = rig("cut");
    r.ram0.write(0x20000, &pattern(0x2000, 9));
    r.ram1.write(0x40000, &[0x55; 0x2000]);
    let grant = [Range {
        addr: 0x40000,
        len: 0x2000,
    }];
    let src = [Range {
        addr: 0x20000,
        len: 0x2000,
    }];
    assert!(r.sim.control("cut 1 0 600000").starts_with("ok"));
    r.grant(1, &grant, 0x2000);
    r.post(1, &src, 0x2000);
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::LinkDown);
    assert_eq!(completion(&mut r.c1, T).unwrap().status, Status::LinkDown);
    assert_eq!(
        r.ram1.read(0x40000, 0x2000),
        vec![0x55; 0x2000],
        "copied across a cut"
    );
    let stats = r.sim.control("stats");
    assert!(stats.contains("\"cut_dma_failed\":1"), "{stats}");
    // The grant was used up; once healed, a fresh one goes through.
    assert!(r.sim.control("cut 0 1 0").starts_with("ok"));
    r.grant(2, &grant, 0x2000);
    r.post(2, &src, 0x2000);
    assert_eq!(completion(&mut r.c0, T).unwrap().status, Status::Ok);
    assert_eq!(completion(&mut r.c1, T).unwrap().status, Status::Ok);
    assert_eq!(r.ram1.read(0x40000, 0x2000), pattern(0x2000, 9));
}
