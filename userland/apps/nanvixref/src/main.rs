//! The Nanvix reference process (seed 001): 352.8 KB to migrate — 342.8 KB of code and data,
//! a small kernel state block and an 8 KB stack. Used by `cargo xtask bench migration` to
//! compare with Nanvix's 226 ms on MPPA-256.
//!
//! `nanvixref`: fills its data, touches 8 KB of stack, says `ready`, then keeps checking its
//! data until it is killed.
#![no_std]
#![no_main]

use ulib::println;

ulib::main!(main);

/// Initialised data: lands in the executable's data segment (330.2 KB), so the code+data
/// footprint is Nanvix's 342.8 KB once the code is added.
static mut DATA: [u8; 330_200] = [0x5A; 330_200];

fn main(_args: ulib::rt::Args) -> i32 {
    // SAFETY: single-threaded access to our own static.
    let data = unsafe { &mut *core::ptr::addr_of_mut!(DATA) };
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    let stack = core::hint::black_box([7u8; 8 * 1024]);
    println!("ready");
    loop {
        let ok = data.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8) && stack[100] == 7;
        if !ok {
            println!("data corrupted");
            return 1;
        }
        ulib::time::sleep_ms(10);
    }
}
