//! Writes long console lines that the host can check byte for byte: `lines [LEN] [COUNT]`
//! (default 4096 bytes, 4 lines), each with one `write` call, then `lines: wrote COUNT lines
//! of LEN bytes`. Line k is `Lk:` followed by the letters `a + (7 i + k) mod 26` (i the
//! byte's index in the line) up to LEN bytes; xtask's console test rebuilds them
//! (`xtask/src/console_test.rs`, `long_line`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use ulib::println;

ulib::main!(main);

fn main(args: ulib::rt::Args) -> i32 {
    let len: usize = args.number(1, 4096);
    let count: usize = args.number(2, 4);
    for k in 0..count {
        let mut line = Vec::new();
        if line.try_reserve_exact(len + 1).is_err() {
            println!("lines: no memory for a line of {len} bytes");
            return 1;
        }
        line.extend_from_slice(alloc::format!("L{k}:").as_bytes());
        line.truncate(len);
        for i in line.len()..len {
            line.push(b'a' + ((7 * i + k) % 26) as u8);
        }
        line.push(b'\n');
        if ulib::io::write(&line) != Ok(line.len()) {
            println!("lines: line {k} was not written whole");
            return 1;
        }
    }
    println!("lines: wrote {count} lines of {len} bytes");
    0
}
