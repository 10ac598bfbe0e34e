//! Moving a thread's CPU state between the trap frame (what the CPU saved on entry) and the
//! UArea context (what the process keeps, and what migration carries).

use hal::trap::TrapFrame;
use hal::usermode::{FpuState, USER_CS, USER_SS};
use uarea::{Context, FxSave};

/// Saves a ring-3 trap frame and the live FPU state into `context`.
pub fn save(context: &mut Context, frame: &TrapFrame) {
    context.rax = frame.rax;
    context.rbx = frame.rbx;
    context.rcx = frame.rcx;
    context.rdx = frame.rdx;
    context.rsi = frame.rsi;
    context.rdi = frame.rdi;
    context.rbp = frame.rbp;
    context.rsp = frame.rsp;
    context.r8 = frame.r8;
    context.r9 = frame.r9;
    context.r10 = frame.r10;
    context.r11 = frame.r11;
    context.r12 = frame.r12;
    context.r13 = frame.r13;
    context.r14 = frame.r14;
    context.r15 = frame.r15;
    context.rip = frame.rip;
    context.rflags = frame.rflags;
    let mut fpu = FpuState::default();
    fpu.save();
    context.fxsave = FxSave(fpu.0);
}

/// Builds the trap frame that resumes `context` in ring 3, and loads its FPU state.
pub fn load(context: &Context) -> TrapFrame {
    FpuState(context.fxsave.0).restore();
    TrapFrame {
        rax: context.rax,
        rbx: context.rbx,
        rcx: context.rcx,
        rdx: context.rdx,
        rsi: context.rsi,
        rdi: context.rdi,
        rbp: context.rbp,
        rsp: context.rsp,
        r8: context.r8,
        r9: context.r9,
        r10: context.r10,
        r11: context.r11,
        r12: context.r12,
        r13: context.r13,
        r14: context.r14,
        r15: context.r15,
        rip: context.rip,
        // Only user-settable flags survive; IF is always on in ring 3.
        rflags: (context.rflags & uarea::thread::RFLAGS_USER_MASK)
            | uarea::thread::RFLAGS_IF
            | uarea::thread::RFLAGS_RESERVED_ONE,
        cs: USER_CS,
        ss: USER_SS,
        vector: 0,
        error_code: 0,
    }
}
