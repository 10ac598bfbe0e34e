//! Frames the NoC's DMA engine filled, made fit to run as code.
//!
//! The engine (noc-sim) writes this cluster's RAM through the shared memory file, behind the
//! emulated CPU's back. Real x86 DMA is coherent with instruction fetch, but QEMU's TCG keeps
//! the code it translated per physical page and learns that a page changed only when the
//! *emulated CPU* stores to it: while translations of a page exist, stores to it take a slow
//! path that drops the translations overlapping the bytes stored (QEMU 7.2,
//! `accel/tcg/cputlb.c` `notdirty_write` → `tb_invalidate_phys_page_fast`). A store by
//! another host process never takes that path. So a frame that held code run here (a process
//! that then left or ended) and is refilled by DMA with other code at the same address keeps
//! running the *old* translation: the new process executes the previous one's instructions
//! and ends up in the middle of its own (the `pingpong` partner of the migration suite died
//! that way, "#GP at rip 0x406858", in `Formatter::pad` while it was in the allocator).
//!
//! [`prepare_to_execute`] stores every word of the frame back through the CPU, which drops
//! every translation overlapping the frame (the invalidation covers only the bytes stored,
//! hence all of them); on hardware it changes nothing. It costs one pass over the page, so
//! callers use it only for frames that will be mapped executable, once the DMA completed
//! and before anything runs there.

use core::sync::atomic::{compiler_fence, Ordering};
use x86_64::structures::paging::{PhysFrame, Size4KiB};

/// Words in a frame.
const WORDS: usize = 4096 / core::mem::size_of::<u64>();

/// Makes the CPU see the bytes the DMA engine wrote into `frame` when it runs them (see the
/// module doc). The caller owns the frame, and no transfer into it is still in flight.
pub fn prepare_to_execute(frame: PhysFrame<Size4KiB>) {
    let words = crate::physmap::phys_to_virt(frame.start_address()).as_mut_ptr::<u64>();
    for i in 0..WORDS {
        // SAFETY: the frame is the caller's and reached whole through the physical-memory
        // map; nothing else writes it now (its transfer completed), and each word is stored
        // back unchanged. Volatile, so the compiler keeps the store it would otherwise drop.
        unsafe {
            let word = words.add(i);
            word.write_volatile(word.read_volatile());
        }
    }
    compiler_fence(Ordering::SeqCst);
}
