//! Process start-up and the panic path.
//!
//! The kernel enters `_start(args, args_len)` with the spawn arguments on the top of the main
//! stack, NUL-separated, the program name first.

use core::panic::PanicInfo;

/// The program's arguments (the first is the program name).
#[derive(Clone, Copy)]
pub struct Args {
    bytes: &'static [u8],
}

impl Args {
    /// Every argument, program name first.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> {
        self.bytes
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| core::str::from_utf8(a).unwrap_or(""))
    }

    /// Argument `index` (0 is the program name).
    pub fn get(&self, index: usize) -> Option<&'static str> {
        self.iter().nth(index)
    }

    /// Argument `index` parsed as a number, or `default` if absent or malformed.
    pub fn number<T: core::str::FromStr>(&self, index: usize, default: T) -> T {
        self.get(index)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    }
}

/// Runs `main` and exits with its result. Called by [`crate::main!`].
///
/// # Safety
/// `args` must be null or point to `args_len` bytes that live as long as the process: what
/// the kernel passes to `_start`.
pub unsafe fn start(main: fn(Args) -> i32, args: *const u8, args_len: usize) -> ! {
    let bytes = if args.is_null() || args_len == 0 {
        &[][..]
    } else {
        // SAFETY: the kernel placed `args_len` bytes at `args` on our stack and never frees
        // them while the process lives.
        unsafe { core::slice::from_raw_parts(args, args_len) }
    };
    let code = main(Args { bytes });
    crate::process::exit(code)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    match info.location() {
        Some(l) => crate::println!("panicked at {}:{}: {}", l.file(), l.line(), info.message()),
        None => crate::println!("panicked: {}", info.message()),
    }
    crate::process::exit(101)
}
