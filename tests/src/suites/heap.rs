//! The kernel heap under load: many sizes and alignments, contents kept, memory returned,
//! and growth past the initial mapping.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    box_and_vec_keep_contents,
    stress_many_sizes_returns_memory,
    heap_grows_on_demand
];

fn box_and_vec_keep_contents() -> Result<(), String> {
    let boxed = Box::new(0x1234_5678_u64);
    let vec: Vec<u64> = (0..10_000).collect();
    ensure_eq!(*boxed, 0x1234_5678);
    ensure_eq!(vec.iter().sum::<u64>(), 10_000 * 9_999 / 2);
    Ok(())
}

/// A small deterministic generator (xorshift) so the stress pattern is reproducible.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn stress_many_sizes_returns_memory() -> Result<(), String> {
    let (_, used_before) = hal::heap::stats();
    let mut seed = 0x9E37_79B9_7F4A_7C15;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for round in 0..8_000u32 {
        let size = (next(&mut seed) % 2048) as usize + 1;
        let fill = round as u8;
        blocks.push(alloc::vec![fill; size]);
        if next(&mut seed).is_multiple_of(3) {
            let victim = (next(&mut seed) as usize) % blocks.len();
            let block = blocks.swap_remove(victim);
            ensure!(block.iter().all(|&b| b == block[0]), "heap block corrupted");
        }
    }
    for block in &blocks {
        ensure!(block.iter().all(|&b| b == block[0]), "heap block corrupted");
    }
    drop(blocks);
    let (_, used_after) = hal::heap::stats();
    ensure_eq!(used_after, used_before);
    Ok(())
}

fn heap_grows_on_demand() -> Result<(), String> {
    let (size_before, _) = hal::heap::stats();
    let big: Vec<u8> = alloc::vec![7; size_before + (1 << 20)];
    let (size_after, _) = hal::heap::stats();
    ensure!(
        size_after > size_before,
        "heap did not grow: {size_before} -> {size_after}"
    );
    ensure!(big.iter().step_by(4096).all(|&b| b == 7));
    Ok(())
}
