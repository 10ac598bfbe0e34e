//! Walking a user address space by what is mapped, not by the address range.
//!
//! A user range can be 2^47 bytes with a handful of pages behind it; a loop over its pages
//! runs for tens of seconds with interrupts off. These walks visit only present entries, so
//! their work is bounded by the page tables that exist (at most 512 entries per table), never
//! by the length of the range.

use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTable, PageTableFlags, PhysFrame};

use super::{phys_to_virt, AddressSpace, USER_END};
use crate::frames;

/// Bytes one entry of a table at `level` spans (level 1 = 4 KiB pages).
const fn entry_span(level: u8) -> u64 {
    1 << (12 + 9 * (level as u64 - 1))
}

/// The indices of `table`'s entries (a table at `level` covering `[base, …)`) that overlap
/// `[start, end)`; `start < end` and the range overlaps the table.
fn indices(level: u8, base: u64, start: u64, end: u64) -> core::ops::RangeInclusive<usize> {
    let span = entry_span(level);
    let table_last = base + (512 * span - 1);
    let first = (start.max(base) - base) / span;
    let last = ((end - 1).min(table_last) - base) / span;
    first as usize..=last as usize
}

fn child(entry_addr: x86_64::PhysAddr) -> *mut PageTable {
    phys_to_virt(entry_addr).as_mut_ptr::<PageTable>()
}

/// Calls `f` with the address and the entry of every mapped 4 KiB page under `table` in
/// `[start, end)`.
///
/// # Safety
/// `table` must be a user page table of this address space at `level`, covering `base..`,
/// that nothing else refers to during the walk.
unsafe fn visit(
    table: &mut PageTable,
    level: u8,
    base: u64,
    start: u64,
    end: u64,
    f: &mut dyn FnMut(u64, &mut PageTableEntry),
) {
    for index in indices(level, base, start, end) {
        let entry = &mut table[index];
        let flags = entry.flags();
        if !flags.contains(PageTableFlags::PRESENT) {
            continue;
        }
        let entry_base = base + index as u64 * entry_span(level);
        if level == 1 {
            f(entry_base, entry);
        } else if !flags.contains(PageTableFlags::HUGE_PAGE) {
            // SAFETY: a present non-huge entry above level 1 points at a table we own.
            unsafe {
                visit(
                    &mut *child(entry.addr()),
                    level - 1,
                    entry_base,
                    start,
                    end,
                    f,
                )
            };
        }
    }
}

/// Unmaps and frees every page under `table` in `[start, end)`, and every table below it
/// left empty. Returns true if `table` itself is now empty.
///
/// # Safety
/// As [`visit`], and the caller owns every frame below `table`.
unsafe fn release(table: &mut PageTable, level: u8, base: u64, start: u64, end: u64) -> bool {
    for index in indices(level, base, start, end) {
        let entry = &mut table[index];
        let flags = entry.flags();
        if !flags.contains(PageTableFlags::PRESENT) {
            continue;
        }
        let frame = PhysFrame::containing_address(entry.addr());
        let entry_base = base + index as u64 * entry_span(level);
        if level > 1 && !flags.contains(PageTableFlags::HUGE_PAGE) {
            // SAFETY: a present non-huge entry above level 1 points at a table we own.
            let empty =
                unsafe { release(&mut *child(entry.addr()), level - 1, entry_base, start, end) };
            if !empty {
                continue;
            }
        }
        let _ = frames::free(frame);
        entry.set_unused();
    }
    table.iter().all(|entry| entry.is_unused())
}

impl AddressSpace {
    /// Calls `f` with the address of every page in `[start, end)` that has a frame, in
    /// ascending order. Work is bounded by the page tables that exist, not by the range.
    pub fn for_each_mapped(&self, start: u64, end: u64, mut f: impl FnMut(u64)) {
        self.walk(start, end, &mut |address, _| f(address));
    }

    /// Calls `f` with the address of every page in `[start, end)` written since the last
    /// call (its dirty bit set: by the process, or by the kernel through [`Self::mark_dirty`])
    /// and clears the bit, so the next call sees only later writes: pre-copy's dirty
    /// tracking. Work is bounded by the page tables that exist.
    pub fn take_dirty(&mut self, start: u64, end: u64, mut f: impl FnMut(u64)) {
        self.walk(start, end, &mut |address, entry| {
            let flags = entry.flags();
            if flags.contains(PageTableFlags::DIRTY) {
                entry.set_flags(flags - PageTableFlags::DIRTY);
                f(address);
            }
        });
        // A cached translation would let later writes skip setting the bit again. Without
        // PCIDs an inactive space has no cached translations.
        if self.is_active() {
            x86_64::instructions::tlb::flush_all();
        }
    }

    /// Counts the pages in `[start, end)` written since the last [`Self::take_dirty`],
    /// leaving the bits as they are.
    pub fn count_dirty(&self, start: u64, end: u64) -> usize {
        let mut count = 0;
        self.walk(start, end, &mut |_, entry| {
            if entry.flags().contains(PageTableFlags::DIRTY) {
                count += 1;
            }
        });
        count
    }

    /// Records a write the kernel made to the page at `address` through the physical map
    /// (which leaves the process's own entry untouched), so dirty tracking sees it.
    pub fn mark_dirty(&mut self, address: u64) {
        let page = address & !0xFFF;
        self.walk(page, page.saturating_add(1), &mut |_, entry| {
            entry.set_flags(entry.flags() | PageTableFlags::DIRTY);
        });
    }

    fn walk(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, &mut PageTableEntry)) {
        let end = end.min(USER_END);
        if start >= end {
            return;
        }
        let level4 = phys_to_virt(self.level4.start_address()).as_mut_ptr::<PageTable>();
        // SAFETY: the level-4 table is ours and reached through the physical map, not through
        // a Rust reference; the kernel is not preemptible, so nothing else walks it
        // meanwhile; `end <= USER_END` keeps the walk in the user half.
        unsafe { visit(&mut *level4, 4, 0, start, end, f) };
    }

    /// Unmaps `[start, end)`: frees every frame mapped there and every page table left empty
    /// (the level-4 table stays). Work is bounded by the page tables that exist.
    pub fn release_range(&mut self, start: u64, end: u64) {
        let end = end.min(USER_END);
        if start >= end {
            return;
        }
        let level4 = phys_to_virt(self.level4.start_address()).as_mut_ptr::<PageTable>();
        // SAFETY: we own the user half of this tree; `end <= USER_END` keeps the walk there,
        // so the shared kernel half is never touched. Each frame is freed once.
        unsafe { release(&mut *level4, 4, 0, start, end) };
        if self.is_active() {
            x86_64::instructions::tlb::flush_all();
        }
    }

    /// Number of frames this address space holds in its user half: pages and the page tables
    /// below the level-4 table (what `release_range` and dropping give back).
    pub fn user_frames(&self) -> usize {
        /// # Safety
        /// `table` is a user page table of this space at `level`.
        unsafe fn count(table: &PageTable, level: u8, entries: usize) -> usize {
            let mut total = 0;
            for entry in table.iter().take(entries) {
                let flags = entry.flags();
                if !flags.contains(PageTableFlags::PRESENT) {
                    continue;
                }
                total += 1;
                if level > 1 && !flags.contains(PageTableFlags::HUGE_PAGE) {
                    // SAFETY: a present non-huge entry above level 1 points at our table.
                    total += unsafe { count(&*child(entry.addr()), level - 1, 512) };
                }
            }
            total
        }
        let level4 = phys_to_virt(self.level4.start_address()).as_ptr::<PageTable>();
        // SAFETY: the level-4 table is ours; entries 0..256 are the user half.
        unsafe { count(&*level4, 4, 256) }
    }
}
