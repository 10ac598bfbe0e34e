//! Interrupt and exception entry.
//!
//! Every vector enters through one assembly path that saves the complete register state as a
//! [`TrapFrame`] on the current kernel stack and calls [`trap_dispatch`]. One uniform frame is
//! what later lets the scheduler switch threads from the timer interrupt and lets migration
//! capture a user thread's full context. CPU exceptions are decoded here: a kernel fault with
//! a registered fixup (see [`crate::fault`]) resumes at the fixup, a breakpoint is reported and
//! resumed, a user-mode fault goes to the kernel's handler, and anything else is fatal: a
//! readable report, then a failure exit (never a silent hang or triple fault).

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;
use x86_64::instructions::tables::lidt;
use x86_64::registers::control::Cr2;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

pub use crate::frame::{ExceptionInfo, TrapFrame};
use crate::gdt;
use crate::vectors::before_return_to_user;
pub use crate::vectors::{
    set_handler, set_return_to_user_hook, Handler, ReturnToUserHook, FIRST_IRQ_VECTOR,
    SPURIOUS_VECTOR,
};

global_asm!(include_str!(concat!(env!("OUT_DIR"), "/trap_stubs.s")));

// The common entry path. On entry: [rsp] = vector, [rsp+8] = error code, [rsp+16] = the
// CPU-pushed frame (rip, cs, rflags, rsp, ss). The CPU aligned the stack to 16 bytes before
// pushing its 5 words; with the 2 stub words and 15 registers, rsp is 16-byte aligned at the
// call, as the System V ABI requires. `swapgs` runs only when we came from ring 3, so GS
// always holds the kernel's per-CPU base inside the kernel.
//
// The dispatcher returns the frame to resume; `hal_trap_exit` restores it. The `syscall`
// entry (see `usermode.rs`) builds the same frame and joins at `hal_trap_save`; the first
// entry into a thread uses `hal_trap_exit` alone.
global_asm!(
    r#"
.global hal_trap_common
hal_trap_common:
    test qword ptr [rsp + 24], 3
    jz 1f
    swapgs
1:
.global hal_trap_save
hal_trap_save:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {dispatch}
    mov rsp, rax

.global hal_trap_exit
hal_trap_exit:
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    test qword ptr [rsp + 8], 3
    jz 2f
    swapgs
2:
    iretq
"#,
    dispatch = sym trap_dispatch,
);

extern "C" {
    static hal_trap_stubs: u8;
    static hal_trap_stubs_end: u8;
}

/// The kernel's handler for faults raised by user-mode code.
pub type UserFaultHandler = fn(&mut TrapFrame, &ExceptionInfo);

static USER_FAULT_HANDLER: Mutex<Option<UserFaultHandler>> = Mutex::new(None);
/// Number of breakpoint (#BP) exceptions taken so far.
static BREAKPOINTS: AtomicUsize = AtomicUsize::new(0);
static LAST_BREAKPOINT_RIP: AtomicUsize = AtomicUsize::new(0);

/// One 16-byte IDT gate (Intel SDM Vol. 3A, 6.14.1).
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const GATE_ABSENT: Gate = Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
};
/// Present, DPL 0, 64-bit interrupt gate (interrupts stay disabled in handlers).
const INTERRUPT_GATE: u8 = 0x8E;

static mut IDT: [Gate; 256] = [GATE_ABSENT; 256];

/// Fills the IDT with the entry stubs and loads it.
pub fn init() {
    // SAFETY: taking the address of linker-placed symbols defined in the stub assembly.
    let (start, end) = unsafe {
        (
            &hal_trap_stubs as *const u8 as u64,
            &hal_trap_stubs_end as *const u8 as u64,
        )
    };
    assert_eq!(end - start, 256 * 16, "trap stubs must be 16 bytes apart");
    let code_selector = gdt::selectors().kernel_code.0;
    // SAFETY: runs once on the boot CPU before interrupts are enabled; nothing else touches
    // the IDT, and it is a static that outlives its use by the CPU.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for (vector, gate) in idt.iter_mut().enumerate() {
            let handler = start + 16 * vector as u64;
            let ist = match vector {
                8 => gdt::DOUBLE_FAULT_IST + 1,
                2 | 18 => gdt::NMI_IST + 1,
                _ => 0,
            };
            *gate = Gate {
                offset_low: handler as u16,
                selector: code_selector,
                ist: ist as u8,
                type_attr: INTERRUPT_GATE,
                offset_mid: (handler >> 16) as u16,
                offset_high: (handler >> 32) as u32,
                reserved: 0,
            };
        }
        let pointer = DescriptorTablePointer {
            limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
            base: VirtAddr::from_ptr(idt.as_ptr()),
        };
        lidt(&pointer);
    }
}

/// Installs the kernel's handler for user-mode faults.
pub fn set_user_fault_handler(handler: UserFaultHandler) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        *USER_FAULT_HANDLER.lock() = Some(handler);
    });
}

/// Number of breakpoints taken and the address after the last one.
pub fn breakpoint_stats() -> (usize, u64) {
    (
        BREAKPOINTS.load(Ordering::SeqCst),
        LAST_BREAKPOINT_RIP.load(Ordering::SeqCst) as u64,
    )
}

/// Mnemonic and name of an exception vector (Intel SDM Vol. 3A, Table 6-1).
pub fn exception_name(vector: u8) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "Divide Error"),
        1 => ("#DB", "Debug"),
        2 => ("NMI", "Non-Maskable Interrupt"),
        3 => ("#BP", "Breakpoint"),
        4 => ("#OF", "Overflow"),
        5 => ("#BR", "BOUND Range Exceeded"),
        6 => ("#UD", "Invalid Opcode"),
        7 => ("#NM", "Device Not Available"),
        8 => ("#DF", "Double Fault"),
        9 => ("--", "Coprocessor Segment Overrun"),
        10 => ("#TS", "Invalid TSS"),
        11 => ("#NP", "Segment Not Present"),
        12 => ("#SS", "Stack-Segment Fault"),
        13 => ("#GP", "General Protection"),
        14 => ("#PF", "Page Fault"),
        16 => ("#MF", "x87 Floating-Point Error"),
        17 => ("#AC", "Alignment Check"),
        18 => ("#MC", "Machine Check"),
        19 => ("#XM", "SIMD Floating-Point"),
        20 => ("#VE", "Virtualization"),
        21 => ("#CP", "Control Protection"),
        _ => ("--", "Reserved"),
    }
}

const PAGE_FAULT: u8 = 14;
const BREAKPOINT: u8 = 3;
const DOUBLE_FAULT: u8 = 8;

extern "C" fn trap_dispatch(frame: &mut TrapFrame) -> *mut TrapFrame {
    if frame.vector == crate::usermode::SYSCALL_VECTOR {
        return crate::usermode::syscall_dispatch(frame);
    }
    let vector = frame.vector as u8;
    if vector < FIRST_IRQ_VECTOR {
        exception(frame, vector);
    } else if vector != SPURIOUS_VECTOR {
        let handler = crate::vectors::handler(vector);
        match handler {
            Some(handler) => handler(frame),
            None => log::warn!("unexpected interrupt on vector {vector}"),
        }
        crate::apic::end_of_interrupt();
    }
    if frame.from_user() {
        before_return_to_user(frame);
    }
    frame
}

fn exception(frame: &mut TrapFrame, vector: u8) {
    let (mnemonic, name) = exception_name(vector);
    let address = (vector == PAGE_FAULT).then(Cr2::read_raw);
    let info = ExceptionInfo {
        vector,
        mnemonic,
        name,
        error_code: frame.error_code,
        address,
    };

    if vector == BREAKPOINT {
        BREAKPOINTS.fetch_add(1, Ordering::SeqCst);
        LAST_BREAKPOINT_RIP.store(frame.rip as usize, Ordering::SeqCst);
        log::warn!("breakpoint ({mnemonic}) at rip {:#x}, resuming", frame.rip);
        return;
    }
    if frame.from_user() {
        let handler = *USER_FAULT_HANDLER.lock();
        if let Some(handler) = handler {
            handler(frame, &info);
            return;
        }
    } else if vector != DOUBLE_FAULT && crate::fault::try_fixup(frame, &info) {
        return;
    }
    fatal_exception(frame, &info);
}

/// Decodes a page-fault error code (Intel SDM Vol. 3A, 4.7).
pub fn page_fault_cause(error_code: u64) -> (&'static str, &'static str, &'static str) {
    let present = if error_code & 1 != 0 {
        "protection violation"
    } else {
        "page not present"
    };
    let access = if error_code & 0x10 != 0 {
        "instruction fetch"
    } else if error_code & 2 != 0 {
        "write"
    } else {
        "read"
    };
    let mode = if error_code & 4 != 0 {
        "user"
    } else {
        "kernel"
    };
    (present, access, mode)
}

fn fatal_exception(frame: &TrapFrame, info: &ExceptionInfo) -> ! {
    // SAFETY: we never return to the interrupted code, so a lock it held is dead anyway.
    unsafe { crate::serial::force_unlock() };
    let cluster = crate::logger::cluster();
    crate::println!();
    crate::println!(
        "!!! FATAL CPU EXCEPTION on cluster {cluster}: {} {} (vector {})",
        info.mnemonic,
        info.name,
        info.vector
    );
    if info.vector == DOUBLE_FAULT {
        crate::println!(
            "    a fault occurred while delivering another fault: most likely a kernel stack \
             overflow (stack pointer was {:#018x})",
            frame.rsp
        );
    }
    crate::println!("    error code {:#x}", info.error_code);
    if let Some(address) = info.address {
        let (present, access, mode) = page_fault_cause(info.error_code);
        crate::println!("    address {address:#018x}: {present}, {access}, {mode} mode");
    }
    print_registers(frame);
    crate::power::exit_failure()
}

/// Prints the saved register state.
pub fn print_registers(frame: &TrapFrame) {
    crate::println!(
        "    rip {:#018x}  cs {:#x}  rflags {:#x}  rsp {:#018x}  ss {:#x}",
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss
    );
    crate::println!(
        "    rax {:#018x}  rbx {:#018x}  rcx {:#018x}  rdx {:#018x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx
    );
    crate::println!(
        "    rsi {:#018x}  rdi {:#018x}  rbp {:#018x}  r8  {:#018x}",
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8
    );
    crate::println!(
        "    r9  {:#018x}  r10 {:#018x}  r11 {:#018x}  r12 {:#018x}",
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12
    );
    crate::println!(
        "    r13 {:#018x}  r14 {:#018x}  r15 {:#018x}",
        frame.r13,
        frame.r14,
        frame.r15
    );
}
