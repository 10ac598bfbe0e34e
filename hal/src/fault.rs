//! Memory accesses that may fault, and recover instead of killing the kernel.
//!
//! The kernel must touch memory it cannot trust — user buffers named by a system call, or an
//! address a test deliberately leaves unmapped. Like Linux's exception tables, each probe
//! below marks the one instruction that may fault and a fixup address; when the trap handler
//! sees a kernel fault at a marked instruction it records the fault and resumes at the fixup,
//! which makes the probe return an error.

use core::arch::global_asm;
use spin::Mutex;

use crate::frame::{ExceptionInfo, TrapFrame};

global_asm!(
    r#"
.global hal_probe_read_u64
hal_probe_read_u64:
hal_probe_read_insn:
    mov rax, qword ptr [rdi]
    mov qword ptr [rsi], rax
    xor eax, eax
    ret
hal_probe_read_fixup:
    mov eax, 1
    ret

.global hal_probe_write_u64
hal_probe_write_u64:
hal_probe_write_insn:
    mov qword ptr [rdi], rsi
    xor eax, eax
    ret
hal_probe_write_fixup:
    mov eax, 1
    ret

.global hal_probe_copy
hal_probe_copy:
    mov rcx, rdx
hal_probe_copy_insn:
    rep movsb
    xor eax, eax
    ret
hal_probe_copy_fixup:
    mov rax, rcx
    ret

hal_fixup_table_fn:
    lea rax, [rip + hal_probe_read_insn]
    mov qword ptr [rdi], rax
    lea rax, [rip + hal_probe_read_fixup]
    mov qword ptr [rdi + 8], rax
    lea rax, [rip + hal_probe_write_insn]
    mov qword ptr [rdi + 16], rax
    lea rax, [rip + hal_probe_write_fixup]
    mov qword ptr [rdi + 24], rax
    lea rax, [rip + hal_probe_copy_insn]
    mov qword ptr [rdi + 32], rax
    lea rax, [rip + hal_probe_copy_fixup]
    mov qword ptr [rdi + 40], rax
    ret
"#
);

extern "C" {
    fn hal_probe_read_u64(address: u64, out: *mut u64) -> u64;
    fn hal_probe_write_u64(address: u64, value: u64) -> u64;
    fn hal_probe_copy(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn hal_fixup_table_fn(table: *mut [[u64; 2]; FIXUPS]);
}

const FIXUPS: usize = 3;

/// A fault taken by a probe and recovered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub error_code: u64,
    /// Faulting address for page faults.
    pub address: Option<u64>,
    /// Instruction that faulted.
    pub rip: u64,
}

static LAST_FAULT: Mutex<Option<Fault>> = Mutex::new(None);

fn fixup_table() -> [[u64; 2]; FIXUPS] {
    let mut table = [[0; 2]; FIXUPS];
    // SAFETY: the assembly writes exactly FIXUPS pairs of u64 into the table we pass.
    unsafe { hal_fixup_table_fn(&mut table) };
    table
}

/// Called by the trap handler for kernel-mode faults: resumes at the fixup of a marked
/// instruction and returns true, or returns false if the fault was not expected.
pub(crate) fn try_fixup(frame: &mut TrapFrame, info: &ExceptionInfo) -> bool {
    let Some([_, fixup]) = fixup_table()
        .into_iter()
        .find(|[insn, _]| *insn == frame.rip)
    else {
        return false;
    };
    let fault = Fault {
        vector: info.vector,
        error_code: info.error_code,
        address: info.address,
        rip: frame.rip,
    };
    log::debug!(
        "recovered {} at {:#x} (address {:?})",
        info.mnemonic,
        frame.rip,
        info.address
    );
    *LAST_FAULT.lock() = Some(fault);
    frame.rip = fixup;
    true
}

/// Reads a u64 at `address`, returning the fault instead of dying if it is not readable.
pub fn read_u64(address: u64) -> Result<u64, Fault> {
    let mut value = 0;
    // SAFETY: the probe touches only `address` (any fault there is recovered) and `value`.
    let failed = unsafe { hal_probe_read_u64(address, &mut value) };
    if failed == 0 {
        Ok(value)
    } else {
        Err(take_last_fault())
    }
}

/// Writes a u64 at `address`, returning the fault instead of dying if it is not writable.
///
/// # Safety
/// If `address` is writable, the write happens: the caller must own that memory.
pub unsafe fn write_u64(address: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: the caller owns the memory at `address`; a fault there is recovered.
    let failed = unsafe { hal_probe_write_u64(address, value) };
    if failed == 0 {
        Ok(())
    } else {
        Err(take_last_fault())
    }
}

/// Copies `len` bytes, stopping at the first fault on either side.
///
/// Returns the fault and the number of bytes copied before it.
///
/// # Safety
/// The caller must own the destination range; the source and destination must not overlap.
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), (Fault, usize)> {
    // SAFETY: the caller owns `dst..dst+len`; faults on either range are recovered.
    let remaining = unsafe { hal_probe_copy(dst, src, len) };
    if remaining == 0 {
        Ok(())
    } else {
        Err((take_last_fault(), len - remaining))
    }
}

fn take_last_fault() -> Fault {
    LAST_FAULT.lock().take().unwrap_or(Fault {
        vector: 0xFF,
        error_code: 0,
        address: None,
        rip: 0,
    })
}
