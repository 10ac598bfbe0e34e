//! Tests that must end the run: `cargo xtask test` expects the failure exit status and the
//! matching report. They show that a fatal error is reported, never a hang or triple fault.

use alloc::string::String;

use crate::tests;

pub const DOUBLE_FAULT: &[crate::framework::Test] = tests![kernel_stack_overflow];
pub const PANIC: &[crate::framework::Test] = tests![panic_fails_the_test];

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[depth as usize % 64]
}

fn kernel_stack_overflow() -> Result<(), String> {
    // Overflowing into the guard page faults; delivering that fault needs the same exhausted
    // stack, so the CPU raises a double fault, which runs on its own IST stack.
    core::hint::black_box(recurse(0));
    Err("the recursion returned".into())
}

fn panic_fails_the_test() -> Result<(), String> {
    let value = core::hint::black_box(41);
    if value != 42 {
        panic!("deliberate panic: {value} is not 42");
    }
    Ok(())
}
