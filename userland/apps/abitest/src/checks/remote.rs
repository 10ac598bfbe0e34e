//! The scenarios with other processes and clusters: FPU state across switches, many
//! threads, barriers, portals and names between processes.

use alloc::vec::Vec;
use ulib::abi::Syscall;
use ulib::println;

/// Two threads keep distinct values in SSE registers across many context switches.
pub fn fpu(rounds: u64) -> i32 {
    let workers: Vec<_> = (1..=2u64)
        .map(|seed| {
            ulib::thread::spawn(move || {
                let mut errors = 0u64;
                for round in 0..rounds {
                    let value = (seed * 1_000_003 + round) as f64 * 0.5;
                    let bits: u64;
                    // SAFETY: only xmm7, rax, rcx and r11 are touched; `yield` (number 7) is a
                    // syscall that switches threads, and must preserve xmm7 for us.
                    unsafe {
                        core::arch::asm!(
                            "movq xmm7, {v}",
                            "syscall",
                            "movq {b}, xmm7",
                            v = in(reg) value.to_bits(),
                            b = out(reg) bits,
                            inout("rax") Syscall::Yield.number() => _,
                            out("rcx") _, out("r11") _, out("xmm7") _,
                        );
                    }
                    let back = f64::from_bits(bits);
                    if back != value {
                        errors += 1;
                    }
                }
                errors
            })
            .expect("thread")
        })
        .collect();
    let errors: u64 = workers.into_iter().map(|w| w.join().unwrap_or(1)).sum();
    println!("fpu: {rounds} rounds x 2 threads, {errors} corrupted");
    if errors == 0 {
        0
    } else {
        1
    }
}

/// Creates and joins `n` threads one after another (each checks its argument).
pub fn many_threads(n: usize) -> i32 {
    let start = ulib::time::now_ns();
    for i in 0..n {
        let handle = match ulib::thread::spawn(move || i * 2) {
            Ok(handle) => handle,
            Err(error) => {
                println!("thread {i}: create failed: {error:?}");
                return 1;
            }
        };
        match handle.join() {
            Ok(v) if v == i * 2 => {}
            other => {
                println!("thread {i}: join gave {other:?}");
                return 1;
            }
        }
    }
    let ms = (ulib::time::now_ns() - start) / 1_000_000;
    println!("threads: {n} created and joined in {ms} ms");
    0
}

/// Barrier rounds with children on other clusters: each child signals its parent
/// (ALL_TO_ONE), then waits for the parent's release (ONE_TO_ALL).
pub fn barrier() -> i32 {
    let me = ulib::process::getpid();
    let clusters = ulib::process::cluster_count() as u16;
    if clusters < 2 {
        println!("barrier: needs 2 clusters or more");
        return 2;
    }
    let me_text = alloc::format!("{}", me.raw());
    let children: Vec<ulib::abi::Pid> = (1..clusters)
        .filter_map(|c| {
            ulib::process::spawn(
                "abitest",
                Some(ulib::ClusterId(c)),
                &["barrier-child", &me_text],
            )
            .ok()
        })
        .collect();
    let mut ok = children.len() == clusters as usize - 1;
    for &child in &children {
        let gather = ulib::barrier::Waiter::create(&[me, child], ulib::abi::SyncMode::AllToOne)
            .expect("gather");
        ok &= gather.wait().is_ok();
        let release = ulib::barrier::Signaller::open(&[me, child], ulib::abi::SyncMode::OneToAll)
            .expect("release");
        ok &= release.signal().is_ok();
    }
    for &child in &children {
        ok &= ulib::process::wait(Some(child)).is_ok_and(|(_, code)| code == 0);
    }
    println!(
        "barrier: {} children on other clusters, {}",
        children.len(),
        if ok { "all rounds done" } else { "FAILED" }
    );
    if ok {
        0
    } else {
        1
    }
}

pub fn barrier_child(parent: Option<u32>) -> i32 {
    let Some(parent) = parent.and_then(ulib::abi::Pid::from_raw) else {
        return 2;
    };
    let me = ulib::process::getpid();
    let signaller =
        ulib::barrier::Signaller::open(&[parent, me], ulib::abi::SyncMode::AllToOne).expect("open");
    let waiter = ulib::barrier::Waiter::create(&[parent, me], ulib::abi::SyncMode::OneToAll)
        .expect("create");
    if signaller.signal().is_err() || waiter.wait().is_err() {
        return 1;
    }
    println!(
        "barrier child on cluster {}: released",
        ulib::process::cluster_id().0
    );
    0
}

pub(super) const PORTAL_BYTES: usize = 1 << 20;

pub(super) fn portal_pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

/// A 1 MiB portal transfer to a child spawned on cluster `on`, which checks every byte.
pub fn portal_remote(on: u16) -> i32 {
    let me = ulib::process::getpid();
    let inbox = ulib::mailbox::Inbox::create(3).expect("inbox");
    let me_text = alloc::format!("{}", me.raw());
    let Ok(child) = ulib::process::spawn(
        "abitest",
        Some(ulib::ClusterId(on)),
        &["portal-child", &me_text],
    ) else {
        println!("portal: cannot spawn the child");
        return 1;
    };
    let _ready = inbox.recv().expect("ready");
    let data: Vec<u8> = (0..PORTAL_BYTES).map(portal_pattern).collect();
    let sender = ulib::portal::Sender::open(8, child, 9).expect("open");
    let start = ulib::time::now_ns();
    let sent = sender.write(&data);
    let waited = ulib::process::wait(Some(child));
    let ms = (ulib::time::now_ns() - start) / 1_000_000;
    println!("portal: wrote {sent:?} to {child} on cluster {on}; child ended {waited:?} ({ms} ms)");
    if sent == Ok(PORTAL_BYTES) && waited.is_ok_and(|(_, code)| code == 0) {
        0
    } else {
        1
    }
}

/// Reads one transfer of [`PORTAL_BYTES`] from `receiver`: what `read` said, and whether every
/// byte is [`portal_pattern`]'s.
pub(super) fn read_pattern(
    receiver: &ulib::portal::Receiver,
) -> (Result<usize, ulib::Errno>, bool) {
    let mut buffer = alloc::vec![0u8; PORTAL_BYTES];
    let got = receiver.read(&mut buffer);
    let intact = buffer
        .iter()
        .enumerate()
        .all(|(i, b)| *b == portal_pattern(i));
    (got, intact)
}

pub fn portal_child(parent: Option<u32>) -> i32 {
    let Some(parent) = parent.and_then(ulib::abi::Pid::from_raw) else {
        return 2;
    };
    let receiver = ulib::portal::Receiver::create(9).expect("portal");
    receiver.allow(parent, 8).expect("allow");
    ulib::mailbox::Outbox::open(parent, 3)
        .expect("outbox")
        .send(b"ready")
        .expect("ready");
    let (got, intact) = read_pattern(&receiver);
    println!(
        "portal child on cluster {}: read {got:?}, intact {intact}",
        ulib::process::cluster_id().0
    );
    if got == Ok(PORTAL_BYTES) && intact {
        0
    } else {
        1
    }
}

const SERVICE: &str = "abitest.service";

/// Publishes a name, and a child on cluster `on` finds it, sends a message to the pid it
/// stands for, and sees it vanish after the unlink.
pub fn names_remote(on: u16) -> i32 {
    let me = ulib::process::getpid();
    let inbox = ulib::mailbox::Inbox::create(4).expect("inbox");
    if ulib::process::name_link(SERVICE, me).is_err() {
        println!("names: link failed");
        return 1;
    }
    let Ok(child) = ulib::process::spawn("abitest", Some(ulib::ClusterId(on)), &["names-child"])
    else {
        return 1;
    };
    let hello = inbox.recv();
    let _ = ulib::process::name_unlink(SERVICE);
    let waited = ulib::process::wait(Some(child));
    println!(
        "names: child said {:?}, ended {waited:?}",
        hello
            .as_deref()
            .map(|h| core::str::from_utf8(h).unwrap_or("?"))
    );
    if hello.is_ok() && waited.is_ok_and(|(_, code)| code == 0) {
        0
    } else {
        1
    }
}

pub fn names_child() -> i32 {
    // The link reaches this cluster's replica within a few NoC messages.
    let mut service = ulib::process::name_lookup(SERVICE);
    for _ in 0..5000 {
        if service.is_ok() {
            break;
        }
        ulib::time::sleep_ms(2);
        service = ulib::process::name_lookup(SERVICE);
    }
    let Ok(service) = service else {
        println!("names child: {SERVICE} never appeared");
        return 1;
    };
    let message = alloc::format!(
        "found you as {SERVICE} from cluster {}",
        ulib::process::cluster_id().0
    );
    ulib::mailbox::Outbox::open(service, 4)
        .expect("outbox")
        .send(message.as_bytes())
        .expect("send");
    for _ in 0..5000 {
        if ulib::process::name_lookup(SERVICE) == Err(ulib::Errno::ENOENT) {
            return 0;
        }
        ulib::time::sleep_ms(2);
    }
    println!("names child: {SERVICE} never went away");
    1
}
