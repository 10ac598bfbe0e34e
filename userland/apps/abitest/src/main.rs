//! User-side half of the kernel's ABI tests: `cargo xtask test` spawns this program from the
//! in-kernel `process` suite and checks its exit code and output.
//!
//! `abitest syscalls` checks every implemented call's success and failure cases (null,
//! kernel-half, unmapped and overlong pointers, bad arguments); `abitest fault KIND` dies on
//! purpose (null, text, divide, kernel, stack); `abitest secret MODE` shows isolation;
//! `abitest fpu` checks SSE state across context switches; `abitest threads N` creates and
//! joins N threads; `abitest spin MS` prints while burning CPU.
#![no_std]
#![no_main]

extern crate alloc;

mod checks;
mod harden;
mod tree;

use ulib::println;

ulib::main!(main);

fn main(args: ulib::rt::Args) -> i32 {
    match args.get(1) {
        Some("syscalls") => checks::syscalls(),
        Some("harden") => harden::run(args.get(2).unwrap_or("")),
        Some("fault") => fault(args.get(2).unwrap_or("null")),
        Some("secret") => secret(args.get(2).unwrap_or("read")),
        Some("fpu") => checks::fpu(args.number(2, 2000)),
        Some("threads") => checks::many_threads(args.number(2, 1000)),
        Some("spin") => spin(args.number(2, 1000)),
        Some("exit-after") => tree::exit_after(args.number(2, 0), args.number(3, 0)),
        Some("tree") => tree::tree(),
        Some("mail-remote") => tree::mail_remote(args.number(2, 1)),
        Some("mail-sink") => tree::mail_sink(),
        Some("barrier") => checks::barrier(),
        Some("portal") => checks::portal_remote(args.number(2, 1)),
        Some("names") => checks::names_remote(args.number(2, 1)),
        Some("names-child") => checks::names_child(),
        Some("portal-child") => checks::portal_child(args.get(2).and_then(|p| p.parse().ok())),
        Some("portal-bench") => checks::portal_bench(args.number(2, 1), args.number(3, 8)),
        Some("dma-write") => checks::dma_write(args.number(2, 1)),
        Some("dma-fault") => checks::dma_fault(args.number(2, 1)),
        Some("dma-hold") => checks::dma_hold(args.number(2, 1)),
        Some("dma-child") => checks::dma_child(
            args.get(2).and_then(|p| p.parse().ok()),
            args.get(3).unwrap_or(""),
            args.number(4, 1),
        ),
        Some("portal-follow") => {
            checks::portal_follow(args.number(2, 1), args.number(3, 2), args.number(4, 3))
        }
        Some("portal-follow-child") => {
            checks::portal_follow_child(args.get(2).and_then(|p| p.parse().ok()), args.number(3, 3))
        }
        Some("barrier-child") => checks::barrier_child(args.get(2).and_then(|p| p.parse().ok())),
        _ => {
            println!(
                "usage: abitest syscalls|fault KIND|secret MODE|fpu [ROUNDS]|threads N|spin MS"
            );
            2
        }
    }
}

/// Dies with a CPU exception chosen by `kind`.
fn fault(kind: &str) -> i32 {
    println!("about to fault: {kind}");
    // SAFETY: none of this is safe; each arm deliberately faults so the kernel kills us.
    unsafe {
        match kind {
            "null" => core::ptr::read_volatile(core::ptr::null::<u64>()) as i32,
            "kernel" => core::ptr::read_volatile(0xFFFF_8000_0000_0000 as *const u64) as i32,
            "text" => {
                let code = main as *const () as *mut u8;
                code.write_volatile(0xCC);
                0
            }
            "divide" => {
                let zero = core::hint::black_box(0u32);
                let result: u32;
                core::arch::asm!("div {0:e}", in(reg) zero, inout("eax") 1u32 => result, inout("edx") 0u32 => _);
                result as i32
            }
            "stack" => recurse(0) as i32,
            _ => {
                println!("unknown fault kind");
                2
            }
        }
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 128]);
    recurse(depth + 1) + frame[(depth % 128) as usize]
}

const SECRET_AT: usize = 0x0000_2000_0000_0000;
const SECRET: u64 = 0x5EC2_E75E_C2E7;

/// `write`: keep a secret at a fixed address and wait; `read`: look at the same address.
fn secret(mode: &str) -> i32 {
    use ulib::abi::{MapFlags, Prot, Syscall};
    let prot = (Prot::READ | Prot::WRITE).bits();
    match mode {
        "write" => {
            let at = ulib::raw::call(
                Syscall::Mmap,
                &[SECRET_AT as u64, 4096, prot, MapFlags::FIXED.bits()],
            );
            if at != Ok(SECRET_AT) {
                println!("mmap FIXED failed: {at:?}");
                return 1;
            }
            // SAFETY: just mapped, writable, ours.
            unsafe { (SECRET_AT as *mut u64).write_volatile(SECRET) };
            println!("secret stored");
            ulib::time::sleep_ms(2000);
            0
        }
        _ => {
            // Map the same address in our own space: we must see zeros, not the other
            // process's secret.
            let at = ulib::raw::call(
                Syscall::Mmap,
                &[SECRET_AT as u64, 4096, prot, MapFlags::FIXED.bits()],
            );
            if at != Ok(SECRET_AT) {
                println!("mmap FIXED failed: {at:?}");
                return 1;
            }
            // SAFETY: just mapped, readable, ours.
            let seen = unsafe { (SECRET_AT as *const u64).read_volatile() };
            println!("read {seen:#x} at the secret's address");
            if seen == SECRET {
                1
            } else {
                0
            }
        }
    }
}

fn spin(ms: u64) -> i32 {
    let start = ulib::time::now_ns();
    let mut ticks = 0u64;
    let mut next_print = start;
    while ulib::time::now_ns() - start < ms * 1_000_000 {
        if ulib::time::now_ns() >= next_print {
            println!("still alive ({ticks})");
            ticks += 1;
            next_print += 100_000_000;
        }
    }
    0
}
