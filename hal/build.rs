//! Generates the 256 interrupt entry stubs (see `src/trap.rs`).
//!
//! Every stub is 16-byte aligned and at most 16 bytes long, so stub `n` sits at
//! `hal_trap_stubs + 16 * n` and the IDT needs no address table (which a PIE kernel would have
//! to relocate).

use std::fmt::Write as _;
use std::path::PathBuf;

/// Exceptions for which the CPU pushes an error code (Intel SDM Vol. 3A, Table 6-1).
const HAS_ERROR_CODE: [u8; 9] = [8, 10, 11, 12, 13, 14, 17, 21, 30];

fn main() {
    let mut asm = String::new();
    asm.push_str(".section .text\n.balign 16\n.global hal_trap_stubs\nhal_trap_stubs:\n");
    for vector in 0u32..256 {
        asm.push_str(".balign 16\n");
        if !HAS_ERROR_CODE.contains(&(vector as u8)) || vector > 31 {
            asm.push_str("    push 0\n");
        }
        writeln!(asm, "    push {vector}\n    jmp hal_trap_common").unwrap();
    }
    asm.push_str(".balign 16\n.global hal_trap_stubs_end\nhal_trap_stubs_end:\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("trap_stubs.s");
    std::fs::write(out, asm).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
