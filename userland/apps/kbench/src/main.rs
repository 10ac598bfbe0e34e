//! Kernel micro-benchmarks, run by `cargo xtask bench kernel`.
//!
//! Each operation is timed one at a time with the TSC (calibrated against the kernel's
//! monotonic clock), so the result has a real distribution: the program prints one line
//! `KBENCH name median_ns p99_ns samples` per benchmark.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use ulib::abi::Syscall;
use ulib::println;

ulib::main!(main);

fn rdtsc() -> u64 {
    // SAFETY: RDTSC is allowed in ring 3 (CR4.TSD is clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Nanoseconds per TSC cycle, measured over a short sleep.
fn calibrate() -> f64 {
    let (t0, c0) = (ulib::time::now_ns(), rdtsc());
    ulib::time::sleep_ms(50);
    let (t1, c1) = (ulib::time::now_ns(), rdtsc());
    (t1 - t0) as f64 / (c1 - c0) as f64
}

fn report(name: &str, mut cycles: Vec<u64>, ns_per_cycle: f64, divisor: u64) {
    cycles.sort_unstable();
    let at = |q: f64| {
        let i = ((cycles.len() as f64 - 1.0) * q) as usize;
        (cycles[i] as f64 * ns_per_cycle / divisor as f64) as u64
    };
    println!("KBENCH {name} {} {} {}", at(0.5), at(0.99), cycles.len());
}

fn time(mut op: impl FnMut()) -> u64 {
    let start = rdtsc();
    op();
    rdtsc() - start
}

fn main(args: ulib::rt::Args) -> i32 {
    let scale: usize = args.number(1, 1);
    let ns_per_cycle = calibrate();

    let samples = (0..10_000 * scale)
        .map(|_| {
            time(|| {
                let _ = ulib::raw::call(Syscall::GetPid, &[]);
            })
        })
        .collect();
    report("null_syscall", samples, ns_per_cycle, 1);

    let samples = (0..500 * scale)
        .map(|_| {
            time(|| {
                let _ = ulib::thread::spawn(|| ()).and_then(|h| h.join());
            })
        })
        .collect();
    report("thread_create_join", samples, ns_per_cycle, 1);

    // Context switch: two threads yield to each other; one yield = two switches.
    static STOP: AtomicBool = AtomicBool::new(false);
    let partner = ulib::thread::spawn(|| {
        while !STOP.load(Ordering::Relaxed) {
            ulib::time::yield_now();
        }
    })
    .expect("thread");
    ulib::time::yield_now();
    let samples = (0..5_000 * scale)
        .map(|_| time(ulib::time::yield_now))
        .collect();
    STOP.store(true, Ordering::Relaxed);
    let _ = partner.join();
    report("context_switch", samples, ns_per_cycle, 2);

    let pages = 2_000 * scale;
    let region = ulib::heap::mmap(pages * 4096).expect("mmap");
    let samples = (0..pages)
        // SAFETY: every page is inside the fresh mapping.
        .map(|i| time(|| unsafe { region.add(i * 4096).write_volatile(1) }))
        .collect();
    report("page_fault_4k", samples, ns_per_cycle, 1);

    let mut spawn_samples = Vec::new();
    let mut spawn_wait_samples = Vec::new();
    for _ in 0..100 * scale {
        let start = rdtsc();
        let child = ulib::process::spawn("hello", None, &["kbench"]).expect("spawn");
        spawn_samples.push(rdtsc() - start);
        let _ = ulib::process::wait(Some(child));
        spawn_wait_samples.push(rdtsc() - start);
    }
    report("spawn", spawn_samples, ns_per_cycle, 1);
    report("spawn_exit_wait", spawn_wait_samples, ns_per_cycle, 1);
    0
}
