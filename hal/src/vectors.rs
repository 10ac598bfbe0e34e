//! Who handles each interrupt vector, and what runs before every return to ring 3.
//!
//! A registry that the interrupt sources (the APIC timer, the NoC, the serial port) and the
//! kernel fill at boot, and that the trap path reads. It depends only on the frame layout, so
//! the sources never depend on the trap path, nor the trap path on them.

use spin::Mutex;

use crate::frame::TrapFrame;

/// First vector available for device interrupts (after the 32 CPU exceptions).
pub const FIRST_IRQ_VECTOR: u8 = 32;
/// Spurious-interrupt vector programmed into the local APIC.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// An interrupt handler: runs with interrupts disabled, on the interrupted context's stack.
pub type Handler = fn(&mut TrapFrame);

static HANDLERS: Mutex<[Option<Handler>; 256]> = Mutex::new([None; 256]);
/// Called after every trap taken in ring 3 (interrupt, fault or system call), last thing
/// before the thread resumes: the kernel's preemption point.
pub type ReturnToUserHook = fn(&mut TrapFrame);
static RETURN_TO_USER_HOOK: Mutex<Option<ReturnToUserHook>> = Mutex::new(None);

/// The handler installed for `vector`, if any.
pub(crate) fn handler(vector: u8) -> Option<Handler> {
    HANDLERS.lock()[vector as usize]
}

/// Installs `handler` for an interrupt vector (≥ 32). Returns the previous handler.
pub fn set_handler(vector: u8, handler: Handler) -> Option<Handler> {
    assert!(
        vector >= FIRST_IRQ_VECTOR,
        "vectors below 32 are CPU exceptions"
    );
    x86_64::instructions::interrupts::without_interrupts(|| {
        HANDLERS.lock()[vector as usize].replace(handler)
    })
}

/// Installs the hook run before every return to ring 3.
pub fn set_return_to_user_hook(hook: ReturnToUserHook) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        *RETURN_TO_USER_HOOK.lock() = Some(hook);
    });
}

/// Runs the return-to-user hook on a frame that came from ring 3.
pub(crate) fn before_return_to_user(frame: &mut TrapFrame) {
    let hook = *RETURN_TO_USER_HOOK.lock();
    if let Some(hook) = hook {
        hook(frame);
    }
}
