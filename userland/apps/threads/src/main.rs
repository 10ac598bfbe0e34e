//! Threads and a futex mutex: N threads add to one shared counter.
//!
//! `threads [N] [ROUNDS]` (default 8 threads × 10000 rounds). Exits 0 if the total is right.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use ulib::println;
use ulib::sync::Mutex;

ulib::main!(main);

fn main(args: ulib::rt::Args) -> i32 {
    let threads: usize = args.number(1, 8);
    let rounds: u64 = args.number(2, 10_000);
    let counter = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let counter = counter.clone();
            ulib::thread::spawn(move || {
                for round in 0..rounds {
                    let mut value = counter.lock();
                    *value += 1;
                    // Now and then give the CPU away while holding the lock, so the others
                    // really contend and sleep in the kernel.
                    if round % 1000 == 0 {
                        ulib::time::yield_now();
                    }
                }
                i
            })
            .expect("thread_create")
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let tid = handle.tid();
        let value = handle.join().expect("thread_join");
        assert_eq!(value, i);
        println!("joined thread {} (tid {})", i, tid.0);
    }
    let total = *counter.lock();
    let expected = threads as u64 * rounds;
    println!("{threads} threads x {rounds} rounds: counter = {total} (expected {expected})");
    if total == expected {
        0
    } else {
        1
    }
}
