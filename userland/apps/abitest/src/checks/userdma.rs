//! Portal writes to another cluster, as the DMA engine moves them: a throughput run for
//! `cargo xtask bench noc`, and the cases the in-kernel `migration` suite drives (a write
//! that arrives intact, one the engine fails, one whose writer unmaps its buffer and exits
//! while the transfer is held).
//!
//! Every case is a parent here and a child on cluster `on` that receives; they talk over
//! mailboxes on [`CONTROL_PORT`] (child → parent) and [`CHILD_PORT`] (parent → child).

use alloc::vec::Vec;
use ulib::abi::{Errno, Pid};
use ulib::println;

/// The parent's inbox (the child's "ready" / "done").
const CONTROL_PORT: u16 = 21;
/// The child's inbox (the parent's "again").
const CHILD_PORT: u16 = 22;
/// The driver's trigger for the `hold` case.
const HOLD_TRIGGER_PORT: u16 = 23;
const SEND_PORT: u16 = 24;
const RECV_PORT: u16 = 25;
const MIB: usize = 1 << 20;

fn pattern(seed: u8, i: usize) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 9)).wrapping_add(seed as usize) as u8
}

fn filled(seed: u8) -> Vec<u8> {
    (0..MIB).map(|i| pattern(seed, i)).collect()
}

fn verdict(ok: bool) -> i32 {
    if ok {
        0
    } else {
        1
    }
}

/// Spawns the receiving child on `on` and waits for its first allowance ("ready").
fn start_child(on: u16, mode: &str, count: usize) -> Result<(Pid, ulib::mailbox::Inbox), Errno> {
    let inbox = ulib::mailbox::Inbox::create(CONTROL_PORT)?;
    let me = alloc::format!("{}", ulib::process::getpid().raw());
    let count = alloc::format!("{count}");
    let child = ulib::process::spawn(
        "abitest",
        Some(ulib::ClusterId(on)),
        &["dma-child", &me, mode, &count],
    )?;
    inbox.recv()?;
    Ok((child, inbox))
}

/// `abitest portal-bench ON COUNT`: COUNT writes of 1 MiB to a child on cluster ON, timed
/// from the first write to the child's "done" (every transfer read): one line
/// `portal-bench: COUNT x 1048576 bytes in NS ns`.
pub fn portal_bench(on: u16, count: usize) -> i32 {
    let Ok((child, inbox)) = start_child(on, "bench", count) else {
        println!("portal-bench: no child");
        return 1;
    };
    let data = filled(1);
    let sender = ulib::portal::Sender::open(SEND_PORT, child, RECV_PORT).expect("open");
    let start = ulib::time::now_ns();
    let mut ok = true;
    for _ in 0..count {
        ok &= sender.write(&data) == Ok(MIB);
    }
    ok &= inbox.recv().is_ok_and(|m| m == b"done");
    let ns = ulib::time::now_ns() - start;
    ok &= ulib::process::wait(Some(child)).is_ok_and(|(_, code)| code == 0);
    println!("portal-bench: {count} x {MIB} bytes in {ns} ns");
    verdict(ok)
}

/// `abitest dma-write ON`: one 1 MiB write; the buffer is overwritten the moment `write`
/// returns, so the child sees the original bytes only if the engine had read them all by then.
pub fn dma_write(on: u16) -> i32 {
    let Ok((child, _inbox)) = start_child(on, "intact", 1) else {
        return 1;
    };
    let mut data = filled(7);
    let sender = ulib::portal::Sender::open(SEND_PORT, child, RECV_PORT).expect("open");
    let sent = sender.write(&data);
    data.iter_mut().for_each(|b| *b = !*b);
    let waited = ulib::process::wait(Some(child));
    println!("dma-write: wrote {sent:?}; child ended {waited:?}");
    verdict(sent == Ok(MIB) && waited.is_ok_and(|(_, code)| code == 0))
}

/// `abitest dma-fault ON` (the driver armed `dma-corrupt 1`): the first write must fail with
/// `EIO`; the child allows again and the second write (other bytes) is the only one it reads.
pub fn dma_fault(on: u16) -> i32 {
    let Ok((child, _inbox)) = start_child(on, "fault", 1) else {
        return 1;
    };
    let again = ulib::mailbox::Outbox::open(child, CHILD_PORT).expect("outbox");
    let sender = ulib::portal::Sender::open(SEND_PORT, child, RECV_PORT).expect("open");
    let first = sender.write(&filled(3));
    let told = again.send(b"again");
    let second = sender.write(&filled(4));
    let waited = ulib::process::wait(Some(child));
    println!("dma-fault: first {first:?}, second {second:?}; child ended {waited:?}");
    verdict(
        first == Err(Errno::EIO)
            && told.is_ok()
            && second == Ok(MIB)
            && waited.is_ok_and(|(_, code)| code == 0),
    )
}

/// `abitest dma-hold ON` (the driver holds the transfer): a thread writes 1 MiB from an
/// `mmap`ed buffer; when the driver says so the main thread unmaps the buffer and the process
/// exits, with the write still in flight.
pub fn dma_hold(on: u16) -> i32 {
    let Ok((child, _inbox)) = start_child(on, "hold", 1) else {
        return 1;
    };
    let trigger = ulib::mailbox::Inbox::create(HOLD_TRIGGER_PORT).expect("trigger");
    let Ok(buffer) = ulib::heap::mmap(MIB) else {
        return 1;
    };
    // SAFETY: `buffer` is a fresh private mapping of MIB bytes.
    let bytes = unsafe { core::slice::from_raw_parts_mut(buffer, MIB) };
    bytes
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = pattern(5, i));
    let address = buffer as usize;
    let _writer = ulib::thread::spawn(move || {
        let sender = ulib::portal::Sender::open(SEND_PORT, child, RECV_PORT).expect("open");
        // SAFETY: the mapping stays ours until the main thread unmaps it, which only
        // happens while this call is blocked (the driver checks).
        let data = unsafe { core::slice::from_raw_parts(address as *const u8, MIB) };
        let result = sender.write(data);
        println!("dma-hold: write returned {result:?}");
    });
    println!("dma-hold: writing to child {}", child.raw());
    let _ = trigger.recv();
    // SAFETY: nothing here touches the buffer again; the writer thread is blocked in its
    // `write` (the kernel holds the pages the transfer reads until it completes).
    let unmapped = unsafe { ulib::heap::munmap(buffer, MIB) };
    println!("dma-hold: munmap {unmapped:?}, exiting");
    ulib::process::exit(if unmapped.is_ok() { 0 } else { 1 })
}

/// The receiving child of every case.
pub fn dma_child(parent: Option<u32>, mode: &str, count: usize) -> i32 {
    let Some(parent) = parent.and_then(Pid::from_raw) else {
        return 2;
    };
    let receiver = ulib::portal::Receiver::create(RECV_PORT).expect("portal");
    let inbox = ulib::mailbox::Inbox::create(CHILD_PORT).expect("inbox");
    let control = ulib::mailbox::Outbox::open(parent, CONTROL_PORT).expect("outbox");
    receiver.allow(parent, SEND_PORT).expect("allow");
    control.send(b"ready").expect("ready");
    let mut buffer = alloc::vec![0u8; MIB];
    let seed = match mode {
        "bench" => 1,
        "intact" => 7,
        "hold" => 5,
        "fault" => {
            // The first transfer failed in the engine: nothing may have arrived for it.
            let _ = inbox.recv();
            receiver.allow(parent, SEND_PORT).expect("allow");
            4
        }
        _ => return 2,
    };
    let mut ok = true;
    for round in 0..count {
        if round > 0 {
            receiver.allow(parent, SEND_PORT).expect("allow");
        }
        let got = receiver.read(&mut buffer);
        // The benchmark checks its first transfer only: checking costs more than moving.
        let check = mode != "bench" || round == 0;
        let intact = !check
            || buffer
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern(seed, i));
        if got != Ok(MIB) || !intact {
            println!("dma-child ({mode}): read {got:?}, intact {intact}");
            ok = false;
        }
    }
    if mode == "bench" {
        ok &= control.send(b"done").is_ok();
    }
    println!(
        "dma-child ({mode}) on cluster {}: {}",
        ulib::process::cluster_id().0,
        if ok { "intact" } else { "FAILED" }
    );
    verdict(ok)
}
