//! The Tessera userland SDK.
//!
//! Write an app as a `#![no_std]`, `#![no_main]` binary that calls [`main!`]; ulib supplies
//! the entry point, argument parsing, `println!`, a heap (so `alloc` works), a panic handler
//! that reports and exits, threads that take closures, futex-based locks, and wrappers for
//! every kernel call. See `docs/apps.md`.

#![no_std]

extern crate alloc;

pub mod barrier;
pub mod heap;
pub mod io;
pub mod mailbox;
pub mod portal;
pub mod process;
pub mod raw;
pub mod rt;
pub mod sync;
pub mod thread;
pub mod time;

pub use abi;
pub use abi::{ClusterId, Errno, Pid, Tid};

/// Declares the app's entry point: `ulib::main!(main);` with `fn main(args: ulib::rt::Args) -> i32`.
///
/// The returned value is the process's exit code.
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[no_mangle]
        /// # Safety
        /// Only the kernel calls this, once, with the process's argument block.
        pub unsafe extern "C" fn _start(args: *const u8, args_len: usize) -> ! {
            // SAFETY: the kernel starts every process with its argument block here.
            unsafe { $crate::rt::start($main, args, args_len) }
        }
    };
}
