//! Raw system calls: the `syscall` instruction with the ABI's registers
//! (number in `rax`, arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`, result in `rax`;
//! `rcx` and `r11` are clobbered). Everything else in ulib is built on [`syscall6`].

use abi::{Errno, Syscall, SyscallResult};

/// Issues a system call with up to six arguments.
///
/// # Safety
/// The arguments must be what the call expects: pointers the kernel will write through must
/// point at memory the caller owns.
#[inline(always)]
pub unsafe fn syscall6(call: Syscall, args: [u64; 6]) -> Result<usize, Errno> {
    // SAFETY: the caller vouches for the arguments.
    let result = unsafe { syscall_number(call.number(), args) };
    SyscallResult::from_raw(result).decode()
}

/// A system call whose arguments carry no pointers the kernel writes through.
pub fn call(call: Syscall, args: &[u64]) -> Result<usize, Errno> {
    let mut all = [0u64; 6];
    all[..args.len()].copy_from_slice(args);
    // SAFETY: used only for calls whose arguments are plain values or read-only buffers.
    unsafe { syscall6(call, all) }
}

/// Issues a raw system call number and returns `rax` as it came back (also how tests reach
/// the kernel's checks with unknown numbers).
///
/// # Safety
/// As [`syscall6`]; unknown numbers are harmless (`ENOSYS`).
#[inline(always)]
pub unsafe fn syscall_number(number: u64, args: [u64; 6]) -> isize {
    let result: i64;
    // SAFETY: as in `syscall6`.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number as i64 => result,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result as isize
}
