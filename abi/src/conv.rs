//! The x86_64 `syscall` calling convention.
//!
//! Same registers as Linux so that compilers, debuggers and readers need no
//! new habits (Intel SDM Vol. 2B, `SYSCALL`: the CPU itself overwrites `rcx`
//! with the return `rip` and `r11` with `rflags`, which is why the fourth
//! argument travels in `r10`, not `rcx`).
//!
//! | what            | register |
//! |-----------------|----------|
//! | syscall number  | `rax`    |
//! | arguments 0..=5 | `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9` |
//! | return value    | `rax` (see [`crate::SyscallResult`]) |
//! | clobbered       | `rcx`, `r11` (and `rax`) |
//!
//! Every other register, including the FPU/SSE state, is preserved.

/// Register that carries the syscall number on entry.
pub const NUMBER_REGISTER: &str = "rax";

/// Registers that carry arguments 0 to 5, in order.
pub const ARG_REGISTERS: [&str; MAX_ARGS] = ["rdi", "rsi", "rdx", "r10", "r8", "r9"];

/// Register that carries the return value.
pub const RETURN_REGISTER: &str = "rax";

/// Registers the `syscall`/`sysretq` pair destroys (besides `rax`).
pub const CLOBBERED_REGISTERS: [&str; 2] = ["rcx", "r11"];

/// Maximum number of register arguments of any syscall.
pub const MAX_ARGS: usize = 6;

/// Length in bytes of the `syscall` instruction (`0f 05`).
///
/// Restarting a syscall after migration (see [`crate::Errno::ERESTART`])
/// rewinds the saved user `rip` by this much, so the thread executes the same
/// `syscall` again with the same `rax` and argument registers.
pub const SYSCALL_INSN_LEN: u64 = 2;

/// The bytes of the `syscall` instruction, for checking a rewind target.
pub const SYSCALL_INSN: [u8; 2] = [0x0f, 0x05];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_length_matches_encoding() {
        assert_eq!(SYSCALL_INSN.len() as u64, SYSCALL_INSN_LEN);
    }

    #[test]
    fn rcx_never_carries_an_argument() {
        for clobbered in CLOBBERED_REGISTERS {
            assert!(!ARG_REGISTERS.contains(&clobbered));
        }
    }
}
