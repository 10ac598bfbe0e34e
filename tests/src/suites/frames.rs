//! The physical frame allocator: distinct aligned frames, frees counted, double frees
//! refused, and exhaustion reported as an error rather than a crash.

use alloc::string::String;
use alloc::vec::Vec;
use hal::frames::{self, FrameError};

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    alloc_free_roundtrip,
    double_free_is_refused,
    exhaustion_returns_error
];

fn alloc_free_roundtrip() -> Result<(), String> {
    let before = frames::free_count();
    let mut taken = Vec::new();
    for _ in 0..256 {
        let frame = frames::alloc().map_err(|e| alloc::format!("{e:?}"))?;
        ensure!(frame.start_address().is_aligned(4096u64));
        taken.push(frame.start_address().as_u64());
    }
    ensure_eq!(frames::free_count(), before - 256);
    let mut sorted = taken.clone();
    sorted.sort_unstable();
    sorted.dedup();
    ensure_eq!(sorted.len(), 256);
    for address in taken {
        let frame = x86_64::structures::paging::PhysFrame::containing_address(
            x86_64::PhysAddr::new(address),
        );
        ensure_eq!(frames::free(frame), Ok(()));
    }
    ensure_eq!(frames::free_count(), before);
    Ok(())
}

fn double_free_is_refused() -> Result<(), String> {
    let frame = frames::alloc().map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(frames::free(frame), Ok(()));
    ensure_eq!(frames::free(frame), Err(FrameError::NotAllocated));
    // Frame 0 is never usable RAM for the allocator.
    let zero = x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(0));
    ensure_eq!(frames::free(zero), Err(FrameError::NotAllocated));
    Ok(())
}

fn exhaustion_returns_error() -> Result<(), String> {
    let before = frames::free_count();
    // Pre-size the list so the heap does not need frames while they are all taken.
    let mut taken = Vec::with_capacity(before + 1);
    let error = loop {
        match frames::alloc() {
            Ok(frame) => taken.push(frame),
            Err(error) => break error,
        }
    };
    let exhausted_at = taken.len();
    let second_try = frames::alloc();
    for frame in taken {
        let _ = frames::free(frame);
    }
    ensure_eq!(error, FrameError::OutOfMemory);
    ensure_eq!(exhausted_at, before);
    ensure_eq!(second_try, Err(FrameError::OutOfMemory));
    ensure_eq!(frames::free_count(), before);
    Ok(())
}
