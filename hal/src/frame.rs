//! The register state every trap saves: the one layout shared by the entry assembly, the
//! scheduler, fault handling and the UArea's saved contexts.
//!
//! The assembly in `trap.rs` and `usermode.rs` pushes and pops these fields in this order, so
//! the layout is checked at compile time below: a field moved by mistake fails the build
//! instead of scrambling registers at run time.

use core::mem::{offset_of, size_of};

/// Register state saved on every interrupt, exception and (later) system call.
///
/// The layout is the push order of `hal_trap_common` and is relied on by the assembly.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number pushed by the entry stub.
    pub vector: u64,
    /// CPU error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// True if the trap interrupted ring 3.
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

// The push order of `hal_trap_save` (15 registers, r15 lowest), then the stub's vector and
// error code, then the CPU's interrupt frame.
const _: () = {
    assert!(size_of::<TrapFrame>() == 22 * 8);
    assert!(offset_of!(TrapFrame, r15) == 0);
    assert!(offset_of!(TrapFrame, rbp) == 8 * 8);
    assert!(offset_of!(TrapFrame, rax) == 14 * 8);
    assert!(offset_of!(TrapFrame, vector) == 15 * 8);
    assert!(offset_of!(TrapFrame, error_code) == 16 * 8);
    assert!(offset_of!(TrapFrame, rip) == 17 * 8);
    assert!(offset_of!(TrapFrame, cs) == 18 * 8);
    assert!(offset_of!(TrapFrame, rflags) == 19 * 8);
    assert!(offset_of!(TrapFrame, rsp) == 20 * 8);
    assert!(offset_of!(TrapFrame, ss) == 21 * 8);
};

/// A decoded CPU exception.
#[derive(Debug, Clone, Copy)]
pub struct ExceptionInfo {
    pub vector: u8,
    pub mnemonic: &'static str,
    pub name: &'static str,
    pub error_code: u64,
    /// Faulting linear address (CR2) for page faults.
    pub address: Option<u64>,
}
