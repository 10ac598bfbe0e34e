//! Segmentation the long-mode way: flat code/data segments for ring 0 and ring 3, and a TSS
//! whose interrupt stack table gives fatal exceptions a known-good stack.
//!
//! The descriptor order is fixed by `syscall`/`sysret` (Intel SDM Vol. 2B, SYSRET): user data
//! must sit 8 bytes below user code, and kernel data right after kernel code.

use core::ptr::addr_of;
use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slot used by the double-fault handler (a kernel stack overflow lands there).
pub const DOUBLE_FAULT_IST: u16 = 0;
/// IST slot used by NMI and machine-check handlers.
pub const NMI_IST: u16 = 1;

const IST_STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

// `static mut`, not `static`: an immutable static may be placed in read-only memory, and the
// CPU pushes onto these stacks.
static mut DOUBLE_FAULT_STACK: Stack = Stack([0; IST_STACK_SIZE]);
static mut NMI_STACK: Stack = Stack([0; IST_STACK_SIZE]);

/// The TSS lives in a `static mut` because the CPU reads it on every ring change and the
/// scheduler rewrites its ring-0 stack pointer on every switch to a user thread.
static mut TSS: TaskStateSegment = TaskStateSegment::new();

/// Segment selectors of the loaded GDT.
#[derive(Debug, Clone, Copy)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
    pub tss: SegmentSelector,
}

static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

fn stack_top(stack: *mut Stack) -> VirtAddr {
    VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64
}

/// Loads the GDT and TSS and reloads every segment register.
pub fn init() {
    // SAFETY: runs once on the boot CPU before interrupts are enabled, so nothing else
    // reads or writes the TSS concurrently.
    unsafe {
        let tss = &mut *core::ptr::addr_of_mut!(TSS);
        tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] =
            stack_top(core::ptr::addr_of_mut!(DOUBLE_FAULT_STACK));
        tss.interrupt_stack_table[NMI_IST as usize] = stack_top(core::ptr::addr_of_mut!(NMI_STACK));
    }
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        // SAFETY: TSS is a static that lives forever and is only mutated through
        // `set_kernel_stack`, which writes a single aligned field.
        let tss = gdt.append(unsafe { Descriptor::tss_segment_unchecked(addr_of!(TSS)) });
        let selectors = Selectors {
            kernel_code,
            kernel_data,
            user_data,
            user_code,
            tss,
        };
        (gdt, selectors)
    });
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which is 'static.
    unsafe {
        CS::set_reg(selectors.kernel_code);
        SS::set_reg(selectors.kernel_data);
        DS::set_reg(selectors.kernel_data);
        ES::set_reg(selectors.kernel_data);
        load_tss(selectors.tss);
    }
}

/// The selectors of the loaded GDT.
pub fn selectors() -> Selectors {
    GDT.get().expect("gdt::init not called").1
}

/// Sets the stack the CPU switches to when an interrupt or exception arrives in ring 3.
pub fn set_kernel_stack(top: VirtAddr) {
    // SAFETY: a single aligned 8-byte store into the static TSS; the CPU only reads this
    // field on a privilege change, which cannot happen while we run in ring 0.
    unsafe {
        let tss = core::ptr::addr_of_mut!(TSS);
        (*tss).privilege_stack_table[0] = top;
    }
}
