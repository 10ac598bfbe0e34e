//! Ring 3: the `syscall` entry, entering a user thread, and the FPU state that goes with it.
//!
//! Tessera's kernel is not preemptible and keeps no per-thread kernel stack. Every entry from
//! user mode (system call, interrupt, fault) lands on one per-CPU *trap stack* and saves the
//! complete user register state as a [`TrapFrame`]. The kernel then either resumes that frame
//! right away (the fast path), or copies it into the thread's context and calls
//! [`return_to_scheduler`], which unwinds to the scheduler loop running on the boot stack.
//! The scheduler enters the next thread with [`enter_user`]. A thread's whole CPU state is
//! therefore always a `TrapFrame` plus an [`FpuState`] — exactly what a UArea records and what
//! migration moves.

use core::arch::global_asm;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{
    Efer, EferFlags, GsBase, KernelGsBase, LStar, SFMask, Star,
};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

use crate::frame::TrapFrame;
use crate::gdt;
use crate::vectors::before_return_to_user;

/// Pseudo vector stored in a frame built by the `syscall` entry.
pub const SYSCALL_VECTOR: u64 = 0x100;
/// User code selector (GDT index 4, RPL 3).
pub const USER_CS: u64 = 0x23;
/// User data/stack selector (GDT index 3, RPL 3).
pub const USER_SS: u64 = 0x1B;
/// RFLAGS of a fresh user thread: interrupts on, reserved bit 1 set.
pub const USER_RFLAGS: u64 = 0x202;

const TRAP_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct TrapStack([u8; TRAP_STACK_SIZE]);

static mut TRAP_STACK: TrapStack = TrapStack([0; TRAP_STACK_SIZE]);

/// Per-CPU words the `syscall` entry reaches through GS (offsets used by the assembly).
#[repr(C)]
struct PerCpu {
    /// Offset 0: top of the trap stack.
    trap_stack_top: u64,
    /// Offset 8: scratch slot for the user stack pointer during entry.
    user_rsp: u64,
    /// Offset 16: the scheduler's saved stack pointer while a thread runs.
    scheduler_rsp: u64,
}

static mut PER_CPU: PerCpu = PerCpu {
    trap_stack_top: 0,
    user_rsp: 0,
    scheduler_rsp: 0,
};

/// The kernel's system call handler: reads the number and arguments from the frame and
/// writes the result into `frame.rax`.
pub type SyscallHandler = fn(&mut TrapFrame);
static SYSCALL_HANDLER: spin::Mutex<Option<SyscallHandler>> = spin::Mutex::new(None);

global_asm!(
    r#"
.global hal_syscall_entry
hal_syscall_entry:
    swapgs
    mov gs:[8], rsp
    mov rsp, gs:[0]
    push {user_ss}
    push qword ptr gs:[8]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {syscall_vector}
    jmp hal_trap_save

.global hal_enter_user
hal_enter_user:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov gs:[16], rsp
    mov rsp, rdi
    jmp hal_trap_exit

.global hal_return_to_scheduler
hal_return_to_scheduler:
    mov rsp, gs:[16]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
"#,
    user_ss = const USER_SS,
    user_cs = const USER_CS,
    syscall_vector = const SYSCALL_VECTOR,
);

extern "C" {
    fn hal_syscall_entry();
    fn hal_enter_user(frame: *const TrapFrame);
    fn hal_return_to_scheduler() -> !;
}

/// Called by the trap dispatcher for frames built by the `syscall` entry.
pub(crate) fn syscall_dispatch(frame: &mut TrapFrame) -> *mut TrapFrame {
    let handler = *SYSCALL_HANDLER.lock();
    match handler {
        Some(handler) => handler(frame),
        None => frame.rax = u64::MAX,
    }
    before_return_to_user(frame);
    frame
}

/// Sets up the per-CPU area, the `syscall` MSRs and SSE.
pub fn init() {
    let selectors = gdt::selectors();
    assert_eq!(selectors.user_code.0 as u64, USER_CS, "GDT layout changed");
    assert_eq!(selectors.user_data.0 as u64, USER_SS, "GDT layout changed");
    // SAFETY: runs once at boot with interrupts off. The per-CPU block and trap stack are
    // statics that live forever; GS then points at the per-CPU block in kernel mode, as the
    // entry code expects. The MSR values follow Intel SDM Vol. 3A, 5.8.8 (SYSCALL/SYSRET).
    unsafe {
        let top = core::ptr::addr_of_mut!(TRAP_STACK) as u64 + TRAP_STACK_SIZE as u64;
        let per_cpu = &mut *core::ptr::addr_of_mut!(PER_CPU);
        per_cpu.trap_stack_top = top;
        gdt::set_kernel_stack(VirtAddr::new(top));
        GsBase::write(VirtAddr::new(per_cpu as *mut PerCpu as u64));
        KernelGsBase::write(VirtAddr::zero());

        Efer::update(|flags| flags.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
        Star::write(
            selectors.user_code,
            selectors.user_data,
            selectors.kernel_code,
            selectors.kernel_data,
        )
        .expect("GDT order fits SYSRET");
        LStar::write(VirtAddr::new(hal_syscall_entry as *const () as u64));
        // Interrupts stay off in the kernel; direction and trap flags are cleared on entry.
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::ALIGNMENT_CHECK,
        );

        // SSE for user code (the kernel itself is built soft-float and never touches it).
        Cr0::update(|cr0| {
            cr0.remove(Cr0Flags::EMULATE_COPROCESSOR);
            cr0.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|cr4| cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}

/// Installs the kernel's system call handler.
pub fn set_syscall_handler(handler: SyscallHandler) {
    crate::cpu::without_interrupts(|| *SYSCALL_HANDLER.lock() = Some(handler));
}

/// Runs a user thread from `frame` until the kernel calls [`return_to_scheduler`].
///
/// # Safety
/// `frame` must describe a ring-3 context (user selectors, canonical user rip/rsp, IF set)
/// in the active address space, and stay valid until the thread traps back into the kernel.
/// Interrupts must be disabled.
pub unsafe fn enter_user(frame: *const TrapFrame) {
    debug_assert!(!crate::cpu::interrupts_enabled());
    // SAFETY: the caller guarantees a valid ring-3 frame; the assembly saves our callee-saved
    // registers and stack pointer so `return_to_scheduler` can come back here.
    unsafe { hal_enter_user(frame) }
}

/// Abandons the current trap (whose user state the caller has saved) and resumes the
/// scheduler where it called [`enter_user`].
///
/// # Safety
/// Must be called from a trap taken in ring 3 (on the trap stack), after an `enter_user`.
pub unsafe fn return_to_scheduler() -> ! {
    // SAFETY: the scheduler's stack pointer was saved by `hal_enter_user`, and the scheduler
    // stack is untouched while a thread runs (traps from ring 3 use the trap stack).
    unsafe { hal_return_to_scheduler() }
}

/// A fresh user frame: start at `rip` with stack `rsp` and first argument `arg`.
pub fn new_user_frame(rip: u64, rsp: u64, arg: u64) -> TrapFrame {
    TrapFrame {
        rip,
        rsp,
        rdi: arg,
        cs: USER_CS,
        ss: USER_SS,
        rflags: USER_RFLAGS,
        ..TrapFrame::default()
    }
}

/// The x87/SSE register state of one thread, in FXSAVE format (Intel SDM Vol. 1, 10.5.1).
#[derive(Clone)]
#[repr(C, align(16))]
pub struct FpuState(pub [u8; 512]);

impl Default for FpuState {
    /// The state after FNINIT plus the default MXCSR: all exceptions masked.
    fn default() -> Self {
        let mut area = [0u8; 512];
        area[0..2].copy_from_slice(&0x037Fu16.to_le_bytes()); // FCW
        area[24..28].copy_from_slice(&0x1F80u32.to_le_bytes()); // MXCSR
        area[28..32].copy_from_slice(&0xFFFFu32.to_le_bytes()); // MXCSR_MASK (ignored on load)
        FpuState(area)
    }
}

impl FpuState {
    /// Saves the CPU's current x87/SSE state here.
    pub fn save(&mut self) {
        // SAFETY: the area is 512 bytes and 16-byte aligned, as FXSAVE requires; SSE is
        // enabled by `init`.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// Loads this state into the CPU.
    pub fn restore(&self) {
        // SAFETY: as in `save`; reserved MXCSR bits are zero in every state we create, and
        // foreign images are validated before they get here (a bad MXCSR would #GP in the
        // kernel, which is fatal).
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack)) };
    }

    /// MXCSR, the SSE control/status register.
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes([self.0[24], self.0[25], self.0[26], self.0[27]])
    }
}
