//! Pre-copy's two halves on the kernel's side: which pages a running process has written
//! (the source), and the frames that hold what came before the final image (the
//! destination).
//!
//! Dirty tracking uses the page tables' own dirty bits: the CPU sets a page's bit on the
//! first write through it, the kernel sets it when it writes user memory through the physical
//! map (`AddressSpace::mark_dirty`), and every page the kernel maps starts dirty. A round
//! takes (and clears) the bits before its pages are read, so a write during the transfer marks
//! the page for the next round, never lost. The final image, taken frozen, sends what is dirty
//! then and every page that never went; the rest is *carried*.

use abi::Pid;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use kernel::process::Table;
use x86_64::structures::paging::{PhysFrame, Size4KiB};

use crate::MigrationError;

/// The pages of `pid` written since the last call (all of its pages, the first time: every
/// page starts dirty), with their dirty bits cleared. Work is bounded by its page tables.
pub fn take_dirty(table: &mut Table, pid: Pid) -> Result<Vec<u64>, MigrationError> {
    let process = table
        .processes
        .get_mut(&pid)
        .ok_or(MigrationError::NoSuchProcess)?;
    let mut pages = Vec::new();
    for segment in &process.uarea.memory.segments {
        process
            .space
            .take_dirty(segment.start, segment.end(), |page| pages.push(page));
    }
    Ok(pages)
}

/// How many pages of `pid` were written since the last [`take_dirty`] (bits left as they are).
pub fn count_dirty(table: &Table, pid: Pid) -> Result<usize, MigrationError> {
    let process = table
        .processes
        .get(&pid)
        .ok_or(MigrationError::NoSuchProcess)?;
    Ok(process
        .uarea
        .memory
        .segments
        .iter()
        .map(|s| process.space.count_dirty(s.start, s.end()))
        .sum())
}

/// The destination's frames for the pages that came during pre-copy, by user address, until
/// the final image maps them (or drops the ones the process no longer has). Dropping it frees
/// every frame it still holds: the caller keeps it until the engine can no longer write them.
#[derive(Default)]
pub struct PreCopied {
    frames: BTreeMap<u64, PhysFrame<Size4KiB>>,
}

impl PreCopied {
    pub fn new() -> PreCopied {
        PreCopied::default()
    }

    /// The frames that receive `pages`, in order: the one already holding a page (it is sent
    /// again), or a fresh one. Fails when no frame is left (what was allocated stays held).
    pub fn frames_for(
        &mut self,
        pages: &[u64],
    ) -> Result<Vec<PhysFrame<Size4KiB>>, MigrationError> {
        let mut frames = Vec::new();
        frames
            .try_reserve_exact(pages.len())
            .map_err(|_| MigrationError::OutOfMemory)?;
        for &page in pages {
            let frame = match self.frames.get(&page) {
                Some(frame) => *frame,
                None => {
                    let frame = hal::frames::alloc().map_err(|_| MigrationError::OutOfMemory)?;
                    self.frames.insert(page, frame);
                    frame
                }
            };
            frames.push(frame);
        }
        Ok(frames)
    }

    /// Hands over the frame holding `page` (the final image maps it).
    pub fn take(&mut self, page: u64) -> Option<PhysFrame<Size4KiB>> {
        self.frames.remove(&page)
    }

    /// Pages held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True if no page is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl Drop for PreCopied {
    fn drop(&mut self) {
        for frame in core::mem::take(&mut self.frames).into_values() {
            let _ = hal::frames::free(frame);
        }
    }
}
