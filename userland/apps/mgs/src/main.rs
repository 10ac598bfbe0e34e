//! Modified Gram-Schmidt orthonormalisation of an N×N matrix (the Gobelins benchmark).
//! `mgs [N] [REPEAT]` (default 100, once; REPEAT 0 = forever, for migration benchmarks).
//! Prints the time and the orthogonality error, and exits 0 if the result is orthonormal.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use ulib::println;

ulib::main!(main);

fn sqrt(x: f64) -> f64 {
    // SSE2 square root: the user target has SSE enabled.
    let result: f64;
    // SAFETY: sqrtsd only reads its input register.
    unsafe { core::arch::asm!("sqrtsd {0}, {1}", out(xmm_reg) result, in(xmm_reg) x) };
    result
}

fn main(args: ulib::rt::Args) -> i32 {
    let n: usize = args.number(1, 100).max(2);
    let repeat: usize = args.number(2, 1);
    let forever = repeat == 0;
    let mut worst = 0.0f64;
    let mut round = 0;
    while forever || round < repeat {
        // A well-conditioned deterministic matrix: diagonally dominant.
        let mut a: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                if i == j {
                    n as f64
                } else {
                    ((i * 31 + j * 17 + round) % 13) as f64 / 13.0
                }
            })
            .collect();
        if round == 0 {
            println!("ready ({n}x{n} matrix, {} KiB)", n * n * 8 / 1024);
        }
        let started = ulib::time::now_ns();
        // Columns are stored contiguously: column j is a[j*n..(j+1)*n].
        for j in 0..n {
            let norm = sqrt(a[j * n..(j + 1) * n].iter().map(|x| x * x).sum());
            for x in &mut a[j * n..(j + 1) * n] {
                *x /= norm;
            }
            for k in j + 1..n {
                let dot: f64 = (0..n).map(|i| a[j * n + i] * a[k * n + i]).sum();
                for i in 0..n {
                    a[k * n + i] -= dot * a[j * n + i];
                }
            }
        }
        let elapsed_ms = (ulib::time::now_ns() - started) / 1_000_000;
        // Check: Q^T Q = I on a sample of column pairs.
        let mut error = 0.0f64;
        for j in (0..n).step_by((n / 16).max(1)) {
            for k in (0..n).step_by((n / 16).max(1)) {
                let dot: f64 = (0..n).map(|i| a[j * n + i] * a[k * n + i]).sum();
                let want = if j == k { 1.0 } else { 0.0 };
                let e = if dot > want { dot - want } else { want - dot };
                error = if e > error { e } else { error };
            }
        }
        worst = if error > worst { error } else { worst };
        println!(
            "mgs {n}x{n}: {elapsed_ms} ms, orthogonality error {:e}",
            error
        );
        round += 1;
    }
    if worst < 1e-9 {
        0
    } else {
        1
    }
}
