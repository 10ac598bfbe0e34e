//! Migration test cases, after CRIU's zdtm: each case builds some state, says `ready`, waits
//! until it has been migrated `N` times (default 1), then checks its own state and exits 0
//! only if everything survived. `zdtm CASE [N]` (`zdtm selfmove CLUSTER [STRATEGY]` moves
//! itself).
//!
//! Cases: memory, threads, sleep, futex, join, fpu, recursion, heap64, busy, clock, dirty.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use ulib::println;

mod selfmove;

ulib::main!(main);

static mut DATA: [u64; 512] = [0x0DA7_A000; 512];
static mut BSS: [u64; 4096] = [0; 4096];

fn main(args: ulib::rt::Args) -> i32 {
    let case = args.get(1).unwrap_or("memory");
    let moves: u32 = args.number(2, 1);
    let ok = match case {
        "memory" => memory(moves),
        "threads" => threads(moves),
        "sleep" => sleep(moves),
        "futex" => futex(moves),
        "join" => join(moves),
        "fpu" => fpu(moves),
        "recursion" => recursion(2000, moves) == 2000 * 2001 / 2,
        "heap64" => heap64(moves),
        "busy" => busy(moves),
        "clock" => clock(moves),
        "dirty" => dirty(moves),
        "selfmove" => selfmove(moves as u16, args.get(3)),
        "selfrefused" => selfmove::refused(moves as u16),
        "selfbusy" => selfmove::busy(),
        "mailbox" => mailbox(moves),
        "spawnwait" => spawn_wait(moves as u16),
        "flood" => return flood(&args),
        other => {
            println!("unknown case {other}");
            false
        }
    };
    println!("{case}: {}", if ok { "PASS" } else { "FAIL" });
    if ok {
        0
    } else {
        1
    }
}

/// Announces readiness and waits (sleeping) until migrated `moves` times.
fn wait_for_moves(moves: u32) {
    let start = ulib::process::migrations();
    println!("ready (cluster {})", ulib::process::cluster_id().0);
    while ulib::process::migrations() < start + moves {
        ulib::time::sleep_ms(5);
    }
    println!(
        "migrated {moves} time(s), now on cluster {}",
        ulib::process::cluster_id().0
    );
}

/// Reads the monotonic clock in a loop while being migrated; any step backwards (a cluster
/// whose clock lags the previous one's) fails the case.
fn clock(moves: u32) -> bool {
    let start = ulib::process::migrations();
    println!("ready (cluster {})", ulib::process::cluster_id().0);
    let (mut previous, mut reads, mut worst_back) = (ulib::time::now_ns(), 0u64, 0u64);
    while ulib::process::migrations() < start + moves {
        for _ in 0..1000 {
            let now = ulib::time::now_ns();
            worst_back = worst_back.max(previous.saturating_sub(now));
            previous = now;
        }
        reads += 1000;
        ulib::time::yield_now();
    }
    println!("clock: {reads} reads over {moves} moves, worst step back {worst_back} ns");
    worst_back == 0
}

/// Keeps writing its pages while it is migrated (what pre-copy must chase): each touch
/// stamps eight words of one page with a new generation and notes it in a table of its own;
/// at the end every page must hold the generation the table says. A lost dirty page, or one
/// sent before its last write and never again, fails the case.
fn dirty(moves: u32) -> bool {
    const PAGES: usize = 1024; // 4 MiB
    let mapped = ulib::heap::mmap(PAGES * 4096).expect("mmap") as *mut u64;
    let mut last: Vec<u64> = alloc::vec![0; PAGES];
    let stamp = |page: usize, generation: u64| {
        for k in 0..8 {
            // SAFETY: `page < PAGES` and `k * 64 < 512`: inside our own mapping.
            unsafe {
                mapped
                    .add(page * 512 + k * 64)
                    .write_volatile(generation ^ k as u64)
            };
        }
    };
    for (page, slot) in last.iter_mut().enumerate() {
        stamp(page, 1);
        *slot = 1;
    }
    let start = ulib::process::migrations();
    println!("ready (cluster {})", ulib::process::cluster_id().0);
    let (mut generation, mut touches) = (1u64, 0u64);
    while ulib::process::migrations() < start + moves {
        generation += 1;
        // A few hundred pages per pass, spread over the mapping: a working set that keeps
        // moving, dirtied faster than a round at first, then slower as it yields.
        for j in 0..256 {
            let page = (generation as usize * 7919 + j * 61) % PAGES;
            stamp(page, generation);
            last[page] = generation;
            touches += 1;
        }
        ulib::time::sleep_ms(1);
    }
    let intact = (0..PAGES).all(|page| {
        (0..8).all(|k| {
            // SAFETY: as in `stamp`.
            let word = unsafe { mapped.add(page * 512 + k * 64).read_volatile() };
            word == last[page] ^ k as u64
        })
    });
    println!("dirty: {touches} page writes over {moves} moves, intact: {intact}");
    intact
}

fn pattern(i: usize, salt: u64) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

fn memory(moves: u32) -> bool {
    let mut heap: Vec<u64> = (0..100_000).map(|i| pattern(i, 1)).collect();
    let mapped = ulib::heap::mmap(1 << 20).expect("mmap") as *mut u64;
    // SAFETY: single-threaded access to our own statics and mapping.
    unsafe {
        let data = &mut *core::ptr::addr_of_mut!(DATA);
        for (i, word) in data.iter_mut().enumerate() {
            *word = pattern(i, 2);
        }
        let bss = &mut *core::ptr::addr_of_mut!(BSS);
        for (i, word) in bss.iter_mut().enumerate() {
            *word = pattern(i, 3);
        }
        for i in 0..(1 << 17) {
            mapped.add(i).write(pattern(i, 4));
        }
    }
    wait_for_moves(moves);
    heap.push(7);
    // SAFETY: as above.
    unsafe {
        (0..512).all(|i| DATA[i] == pattern(i, 2))
            && (0..4096).all(|i| BSS[i] == pattern(i, 3))
            && (0..(1 << 17)).all(|i| mapped.add(i).read() == pattern(i, 4))
            && heap[..100_000]
                .iter()
                .enumerate()
                .all(|(i, v)| *v == pattern(i, 1))
    }
}

fn threads(moves: u32) -> bool {
    static GO: AtomicBool = AtomicBool::new(false);
    let workers: Vec<_> = (0..8u64)
        .map(|t| {
            ulib::thread::spawn(move || {
                // Each thread keeps state in registers/stack and keeps working.
                let mut sum = 0u64;
                let mut i = 0u64;
                while !GO.load(Ordering::Acquire) {
                    sum = sum.wrapping_add(i * t);
                    i += 1;
                    if i.is_multiple_of(1000) {
                        ulib::time::yield_now();
                    }
                }
                let expected = (0..i).fold(0u64, |s, k| s.wrapping_add(k * t));
                sum == expected
            })
            .expect("thread")
        })
        .collect();
    wait_for_moves(moves);
    GO.store(true, Ordering::Release);
    workers.into_iter().all(|w| w.join() == Ok(true))
}

fn sleep(moves: u32) -> bool {
    let sleeper = ulib::thread::spawn(|| {
        let start = ulib::time::now_ns();
        ulib::time::sleep_ms(300);
        ulib::time::now_ns() - start
    })
    .expect("thread");
    wait_for_moves(moves);
    let slept = sleeper.join().unwrap_or(0);
    println!("slept {} ms", slept / 1_000_000);
    slept >= 300_000_000
}

fn futex(moves: u32) -> bool {
    static WORD: AtomicU32 = AtomicU32::new(0);
    let waiter = ulib::thread::spawn(|| {
        while WORD.load(Ordering::Acquire) == 0 {
            let _ = ulib::thread::futex_wait(&WORD, 0);
        }
        WORD.load(Ordering::Acquire)
    })
    .expect("thread");
    ulib::time::sleep_ms(20); // let it block
    wait_for_moves(moves);
    WORD.store(42, Ordering::Release);
    ulib::thread::futex_wake(&WORD, 1);
    waiter.join() == Ok(42)
}

fn join(moves: u32) -> bool {
    static GO: AtomicBool = AtomicBool::new(false);
    let worker = ulib::thread::spawn(|| {
        while !GO.load(Ordering::Acquire) {
            ulib::time::sleep_ms(5);
        }
        99u32
    })
    .expect("thread");
    let mover = ulib::thread::spawn(move || {
        wait_for_moves(moves);
        GO.store(true, Ordering::Release);
    })
    .expect("thread");
    // The main thread is blocked in thread_join during the migration.
    let value = worker.join();
    let _ = mover.join();
    value == Ok(99)
}

fn fpu(moves: u32) -> bool {
    static DONE: AtomicBool = AtomicBool::new(false);
    // A thread that never enters the kernel keeps live values in xmm registers; it is
    // preempted by the timer and migrated with them.
    let spinner = ulib::thread::spawn(|| {
        let mut bad = 0u64;
        let mut rounds = 0u64;
        while !DONE.load(Ordering::Relaxed) {
            let value = 1.5f64 + rounds as f64;
            let back: u64;
            // SAFETY: only xmm3/xmm12 and one scratch register; no memory access.
            unsafe {
                core::arch::asm!(
                    "movq xmm3, {v}",
                    "movq xmm12, {v}",
                    "2:",
                    "dec {n}",
                    "jnz 2b",
                    "movq {b}, xmm3",
                    v = in(reg) value.to_bits(),
                    n = inout(reg) 200_000u64 => _,
                    b = out(reg) back,
                    out("xmm3") _, out("xmm12") _,
                );
            }
            if back != value.to_bits() {
                bad += 1;
            }
            rounds += 1;
        }
        (bad, rounds)
    })
    .expect("thread");
    wait_for_moves(moves);
    ulib::time::sleep_ms(50);
    DONE.store(true, Ordering::Relaxed);
    let (bad, rounds) = spinner.join().unwrap_or((1, 0));
    println!("fpu: {rounds} rounds, {bad} corrupted");
    bad == 0 && rounds > 0
}

fn recursion(depth: u64, moves: u32) -> u64 {
    let frame = core::hint::black_box([depth; 16]);
    if depth == 0 {
        wait_for_moves(moves);
        return 0;
    }
    recursion(depth - 1, moves) + frame[(depth % 16) as usize]
}

fn heap64(moves: u32) -> bool {
    let len = 64 << 20;
    let mut heap: Vec<u8> = Vec::with_capacity(len);
    for i in 0..len {
        heap.push((i as u64 * 7 % 251) as u8);
    }
    wait_for_moves(moves);
    heap.iter()
        .enumerate()
        .all(|(i, b)| *b == (i as u64 * 7 % 251) as u8)
}

fn busy(moves: u32) -> bool {
    // Migrated while computing (never blocked): the result must be exact.
    static STOP: AtomicBool = AtomicBool::new(false);
    let worker = ulib::thread::spawn(|| {
        let mut x = 1u64;
        let mut n = 0u64;
        while !STOP.load(Ordering::Relaxed) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            n += 1;
        }
        let mut y = 1u64;
        for _ in 0..n {
            y = y
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        x == y
    })
    .expect("thread");
    wait_for_moves(moves);
    STOP.store(true, Ordering::Relaxed);
    worker.join() == Ok(true)
}

/// The process moves itself to cluster `to` with `migrate` (or `migrate_with` and the
/// strategy named, e.g. `post`) and checks where it woke up.
fn selfmove(to: u16, strategy: Option<&str>) -> bool {
    let data: Vec<u64> = (0..10_000).map(|i| pattern(i, 9)).collect();
    let from = ulib::process::cluster_id().0;
    println!("ready (cluster {from})");
    let (me, to) = (ulib::process::getpid(), ulib::ClusterId(to));
    let result = match strategy.map(ulib::abi::Strategy::from_name) {
        None => ulib::process::migrate(me, to),
        Some(Some(strategy)) => {
            ulib::process::migrate_with(me, to, &ulib::abi::MigrateOptions::new(strategy))
        }
        Some(None) => {
            println!("unknown strategy {strategy:?}");
            return false;
        }
    };
    let now = ulib::process::cluster_id().0;
    println!("migrate returned {result:?}; now on cluster {now}");
    result.is_ok()
        && now == to.0
        && ulib::process::migrations() >= 1
        && data.iter().enumerate().all(|(i, v)| *v == pattern(i, 9))
}

const FLOOD_PORT: u16 = 5;
const FLOOD_COUNT: u32 = 600;

/// Pending and in-flight messages: a child floods this process's inbox while it migrates;
/// every message must arrive exactly once. The main thread is blocked in `mailbox_read`
/// when the migration starts.
fn mailbox(moves: u32) -> bool {
    let inbox = ulib::mailbox::Inbox::create(FLOOD_PORT).expect("inbox");
    let me = alloc::format!("{}", ulib::process::getpid().raw());
    let count = alloc::format!("{FLOOD_COUNT}");
    let _flooder = ulib::process::spawn("zdtm", None, &["flood", &me, &count]).expect("flooder");
    let mut seen = alloc::vec![0u32; FLOOD_COUNT as usize];
    let mover = ulib::thread::spawn(move || wait_for_moves(moves)).expect("thread");
    for _ in 0..FLOOD_COUNT {
        let message = inbox.recv().expect("recv");
        let n = u32::from_le_bytes([message[0], message[1], message[2], message[3]]) as usize;
        if n < seen.len() {
            seen[n] += 1;
        }
    }
    let _ = mover.join();
    let missing = seen.iter().filter(|c| **c == 0).count();
    let doubled = seen.iter().filter(|c| **c > 1).count();
    println!("mailbox: {FLOOD_COUNT} sent, {missing} missing, {doubled} duplicated");
    missing == 0 && doubled == 0
}

/// The flooder: sends `count` numbered messages to `(pid, FLOOD_PORT)`, pacing itself.
fn flood(args: &ulib::rt::Args) -> i32 {
    let target = args
        .get(2)
        .and_then(|p| p.parse::<u32>().ok())
        .and_then(ulib::Pid::from_raw);
    let Some(target) = target else { return 2 };
    let count: u32 = args.number(3, FLOOD_COUNT);
    let outbox = ulib::mailbox::Outbox::open(target, FLOOD_PORT).expect("outbox");
    for n in 0..count {
        while outbox.send(&n.to_le_bytes()).is_err() {
            ulib::time::sleep_ms(1);
        }
        if n % 50 == 0 {
            ulib::time::sleep_ms(2);
        }
    }
    0
}

/// Spawns `hello` on cluster `on` and waits for it; a missing program is refused at once.
fn spawn_wait(on: u16) -> bool {
    let missing = ulib::process::spawn("no-such-app", Some(ulib::ClusterId(on)), &[]);
    let child = match ulib::process::spawn("hello", Some(ulib::ClusterId(on)), &["remote"]) {
        Ok(child) => child,
        Err(error) => {
            println!("remote spawn failed: {error:?}");
            return false;
        }
    };
    let waited = ulib::process::wait(Some(child));
    println!("spawned {child} on cluster {on}: missing program -> {missing:?}, wait -> {waited:?}");
    // A long-running child there, killed from here.
    let counter = ulib::process::spawn("counter", Some(ulib::ClusterId(on)), &["50"]);
    let killed = counter.and_then(|pid| {
        ulib::time::sleep_ms(200);
        ulib::process::kill(pid)?;
        ulib::process::wait(Some(pid))
    });
    println!("remote counter killed: {killed:?}");
    missing == Err(ulib::Errno::ENOENT)
        && waited == Ok((child, 0))
        && killed.is_ok_and(|(_, code)| code == -9)
}
