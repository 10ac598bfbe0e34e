//! Console output. Each `println!` is formatted in full and written with one system call, so
//! lines from different threads and processes never interleave mid-line.

use alloc::string::String;
use core::fmt::Write;

use abi::{Errno, Syscall};

/// Writes bytes to the console; returns how many were written.
pub fn write(bytes: &[u8]) -> Result<usize, Errno> {
    crate::raw::call(Syscall::Write, &[bytes.as_ptr() as u64, bytes.len() as u64])
}

#[doc(hidden)]
pub fn print_fmt(args: core::fmt::Arguments) {
    let mut text = String::new();
    let _ = text.write_fmt(args);
    let _ = write(text.as_bytes());
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::print_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::io::write(b"\n").ok() };
    ($($arg:tt)*) => { $crate::io::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
