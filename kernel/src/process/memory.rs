//! A process's memory: loading its program, demand-zero paging of anonymous segments, and
//! every kernel access to user memory.
//!
//! The segment list in the UArea is the truth about what a process may touch; the page tables
//! only cache which of those pages have frames yet. Kernel accesses go through the process's
//! page tables and the physical-memory map — never through whatever CR3 happens to be loaded
//! — and are checked against the segments first, so a bad pointer from user space is an
//! `EFAULT`, never a kernel fault.

use abi::Errno;
use alloc::vec::Vec;
use hal::paging::AddressSpace;
use uarea::{Backing, MemoryMap, Perms, Segment, SegmentKind};
use x86_64::structures::paging::{Page, PageTableFlags, PhysFrame, Size4KiB};
use x86_64::VirtAddr;

use crate::elf::{self, ElfError, Executable};

pub const PAGE: u64 = 4096;
/// Lowest address a program may be linked at (the first 4 MiB stay unmapped, so small
/// pointers — null included — always fault).
pub const USER_START: u64 = 0x40_0000;
/// Anonymous `mmap` regions are placed upward from here.
pub const MMAP_BASE: u64 = 0x0000_1000_0000_0000;
/// Thread stacks are placed downward from here.
pub const STACK_TOP: u64 = 0x0000_7FFF_FFF0_0000;
/// Size of the main thread's stack (demand-paged: only touched pages cost a frame).
pub const MAIN_STACK_SIZE: u64 = 1 << 20;
/// End of the room for anonymous mappings without `FIXED`: 64 GiB below the stacks.
pub const MMAP_END: u64 = STACK_TOP - (64 << 30);
/// Largest single mapping (`mmap` `len`): the whole room for mappings.
pub const MMAP_MAX_LEN: u64 = MMAP_END - MMAP_BASE;
/// Unmapped guard below every stack.
pub const STACK_GUARD: u64 = PAGE;

/// Page-table flags for a segment's permissions (W^X is enforced at mapping time).
pub fn page_flags(perms: Perms) -> PageTableFlags {
    // Dirty from the start: a page the process gains during pre-copy is sent even if it is
    // never written (`migration::precopy`).
    let mut flags =
        PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE | PageTableFlags::DIRTY;
    if perms.contains(Perms::W) {
        flags |= PageTableFlags::WRITABLE;
    }
    if !perms.contains(Perms::X) {
        flags |= PageTableFlags::NO_EXECUTE;
    }
    flags
}

fn page_of(address: u64) -> Page<Size4KiB> {
    Page::containing_address(VirtAddr::new(address))
}

/// Loads a validated executable into a fresh address space: text and data copied from the
/// file, bss zeroed. Returns the memory map describing it.
pub fn load_program(
    space: &mut AddressSpace,
    image: &[u8],
) -> Result<(Executable, MemoryMap), LoadError> {
    let executable = elf::parse(image, USER_START..MMAP_BASE).map_err(LoadError::Elf)?;
    let mut map = MemoryMap {
        segments: Vec::new(),
        heap_break: 0,
        mmap_cursor: MMAP_BASE,
    };
    for segment in &executable.segments {
        let start = segment.vaddr & !(PAGE - 1);
        let end = (segment.vaddr + segment.mem_size).next_multiple_of(PAGE);
        let mut perms = Perms::NONE;
        if segment.flags.read {
            perms = perms.union(Perms::R);
        }
        if segment.flags.write {
            perms = perms.union(Perms::W);
        }
        if segment.flags.execute {
            perms = perms.union(Perms::X);
        }
        if perms.contains(Perms::W) && perms.contains(Perms::X) {
            return Err(LoadError::Elf(ElfError::BadProgramHeaders));
        }
        let kind = if perms.contains(Perms::X) {
            SegmentKind::Text
        } else if segment.file_size == 0 {
            SegmentKind::Bss
        } else {
            SegmentKind::Data
        };
        // Map writable first so the kernel can fill it, then apply the real permissions.
        for page_start in (start..end).step_by(PAGE as usize) {
            space
                .map_zeroed(page_of(page_start), page_flags(Perms::RW))
                .map_err(|_| LoadError::OutOfMemory)?;
        }
        let file = &image[segment.file_offset as usize..][..segment.file_size as usize];
        write_bytes(space, segment.vaddr, file).map_err(|_| LoadError::OutOfMemory)?;
        for page_start in (start..end).step_by(PAGE as usize) {
            space
                .set_flags(page_of(page_start), page_flags(perms))
                .map_err(|_| LoadError::OutOfMemory)?;
        }
        map.insert(Segment {
            start,
            len: end - start,
            perms,
            kind,
            backing: if kind == SegmentKind::Bss {
                Backing::Anonymous
            } else {
                Backing::Image {
                    offset: segment.file_offset,
                    len: segment.file_size,
                }
            },
        });
    }
    Ok((executable, map))
}

/// Why a program could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    Elf(ElfError),
    OutOfMemory,
}

/// Makes sure the page holding `address` has a frame, if the segments allow `access`.
///
/// Returns the segment's page flags, or `EFAULT` if no segment allows the access.
pub fn ensure_page(
    space: &mut AddressSpace,
    map: &MemoryMap,
    address: u64,
    access: Perms,
) -> Result<(), Errno> {
    let segment = map.segment_at(address).ok_or(Errno::EFAULT)?;
    if !segment.perms.contains(access) {
        return Err(Errno::EFAULT);
    }
    if space.translate(VirtAddr::new(address)).is_some() {
        return Ok(());
    }
    if space.is_remote(address) {
        // Post-copy: the page is on its way; never zero-fill it (`remote`).
        super::remote::note_refused(address & !0xFFF);
        return Err(Errno::EFAULT);
    }
    match segment.backing {
        // Image-backed segments are loaded whole; a hole there is a kernel bug or a munmap.
        Backing::Image { .. } => Err(Errno::EFAULT),
        Backing::Anonymous => {
            space
                .map_zeroed(page_of(address), page_flags(segment.perms))
                .map_err(|_| Errno::ENOMEM)?;
            Ok(())
        }
    }
}

/// Applies `f` to each piece of the user range `[address, address + len)`, page by page,
/// as a kernel slice into the frame (through the physical-memory map).
fn for_each_chunk(
    space: &mut AddressSpace,
    map: Option<&MemoryMap>,
    address: u64,
    len: usize,
    access: Perms,
    mut f: impl FnMut(&mut [u8], usize),
) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    let end = address.checked_add(len as u64).ok_or(Errno::EFAULT)?;
    if address < USER_START || end > hal::paging::USER_END {
        return Err(Errno::EFAULT);
    }
    let mut cursor = address;
    while cursor < end {
        if let Some(map) = map {
            ensure_page(space, map, cursor, access)?;
        }
        let (phys, _) = space
            .translate(VirtAddr::new(cursor))
            .ok_or(Errno::EFAULT)?;
        let chunk = ((PAGE - cursor % PAGE).min(end - cursor)) as usize;
        if access.contains(Perms::W) {
            // Written through the physical map: tell dirty tracking (pre-copy).
            space.mark_dirty(cursor);
        }
        let kernel = hal::paging::phys_to_virt(phys).as_mut_ptr::<u8>();
        // SAFETY: `phys..phys+chunk` lies in one frame owned by this address space, reached
        // through the physical map; the kernel is not preemptible, so nothing else touches it.
        let slice = unsafe { core::slice::from_raw_parts_mut(kernel, chunk) };
        f(slice, (cursor - address) as usize);
        cursor += chunk as u64;
    }
    Ok(())
}

/// Checks that the whole user range `[address, address + len)` lies inside segments that
/// allow `access`, without wrapping and below the user half (`EFAULT` otherwise). Work is
/// bounded by the number of segments. Output buffers are checked whole with this before the
/// first byte is written.
pub fn check_range(map: &MemoryMap, address: u64, len: u64, access: Perms) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    let end = address.checked_add(len).ok_or(Errno::EFAULT)?;
    if address < USER_START || end > hal::paging::USER_END {
        return Err(Errno::EFAULT);
    }
    let mut cursor = address;
    while cursor < end {
        let segment = map.segment_at(cursor).ok_or(Errno::EFAULT)?;
        if !segment.perms.contains(access) {
            return Err(Errno::EFAULT);
        }
        cursor = segment.end();
    }
    Ok(())
}

/// Copies user memory into `out`, checking the segments (read access).
pub fn copy_from_user(
    space: &mut AddressSpace,
    map: &MemoryMap,
    address: u64,
    out: &mut [u8],
) -> Result<(), Errno> {
    let len = out.len();
    for_each_chunk(space, Some(map), address, len, Perms::R, |chunk, offset| {
        out[offset..offset + chunk.len()].copy_from_slice(chunk);
    })
}

/// A user buffer as a DMA engine sees it: its frames, and the physical `(address, length)`
/// piece of each that the buffer covers.
pub type UserFrames = (Vec<PhysFrame>, Vec<(u64, u32)>);

/// The frames behind the user range `[address, address + len)` (readable; demand-zero pages
/// get their frame now), in order, with the piece of each the range covers as physical
/// `(address, length)`: what a DMA engine reads for a portal write.
pub fn user_frames(
    space: &mut AddressSpace,
    map: &MemoryMap,
    address: u64,
    len: usize,
) -> Result<UserFrames, Errno> {
    check_range(map, address, len as u64, Perms::R)?;
    let pages = (address % PAGE + len as u64).div_ceil(PAGE) as usize;
    let (mut frames, mut pieces) = (Vec::new(), Vec::new());
    frames.try_reserve_exact(pages).map_err(|_| Errno::ENOMEM)?;
    pieces.try_reserve_exact(pages).map_err(|_| Errno::ENOMEM)?;
    let end = address + len as u64; // checked by check_range
    let mut cursor = address;
    while cursor < end {
        ensure_page(space, map, cursor, Perms::R)?;
        let (phys, _) = space
            .translate(VirtAddr::new(cursor))
            .ok_or(Errno::EFAULT)?;
        let chunk = (PAGE - cursor % PAGE).min(end - cursor);
        frames.push(PhysFrame::containing_address(phys));
        pieces.push((phys.as_u64(), chunk as u32));
        cursor += chunk;
    }
    Ok((frames, pieces))
}

/// Copies `data` into user memory, checking the segments (write access).
pub fn copy_to_user(
    space: &mut AddressSpace,
    map: &MemoryMap,
    address: u64,
    data: &[u8],
) -> Result<(), Errno> {
    for_each_chunk(
        space,
        Some(map),
        address,
        data.len(),
        Perms::W,
        |chunk, offset| {
            chunk.copy_from_slice(&data[offset..offset + chunk.len()]);
        },
    )
}

/// Writes into already-mapped pages regardless of their permissions (program loading).
fn write_bytes(space: &mut AddressSpace, address: u64, data: &[u8]) -> Result<(), Errno> {
    for_each_chunk(
        space,
        None,
        address,
        data.len(),
        Perms::NONE,
        |chunk, offset| {
            chunk.copy_from_slice(&data[offset..offset + chunk.len()]);
        },
    )
}

/// Reads a user value of `N` bytes.
pub fn read_user<const N: usize>(
    space: &mut AddressSpace,
    map: &MemoryMap,
    address: u64,
) -> Result<[u8; N], Errno> {
    let mut bytes = [0u8; N];
    copy_from_user(space, map, address, &mut bytes)?;
    Ok(bytes)
}

/// Finds room for `len` bytes of stack plus its guard page below the existing stacks;
/// returns the stack base.
pub fn place_stack(map: &MemoryMap, len: u64) -> Option<u64> {
    let mut top = STACK_TOP;
    loop {
        let base = top.checked_sub(len)?;
        let guard_base = base.checked_sub(STACK_GUARD)?;
        if guard_base < MMAP_BASE {
            return None;
        }
        // The highest segment that overlaps [guard_base, top), if any.
        let clash = map
            .segments
            .iter()
            .filter(|s| s.start < top && guard_base < s.end() + STACK_GUARD)
            .map(|s| s.start)
            .min();
        match clash {
            None => return Some(base),
            Some(start) => top = start.checked_sub(STACK_GUARD)?,
        }
    }
}

/// Finds room for an anonymous mapping of `len` bytes at or above `hint`.
///
/// Every step is checked: a hint or length near `u64::MAX` finds no room (`None`), it never
/// wraps around to low addresses.
pub fn place_mapping(map: &MemoryMap, hint: u64, len: u64) -> Option<u64> {
    let mut start = hint.max(MMAP_BASE).checked_next_multiple_of(PAGE)?;
    loop {
        let end = start.checked_add(len)?;
        if end > MMAP_END {
            return None;
        }
        match map
            .segments
            .iter()
            .find(|s| s.start < end && start < s.end())
        {
            None => return Some(start),
            Some(clash) => start = clash.end().checked_next_multiple_of(PAGE)?,
        }
    }
}

/// True if `[start, start + len)` overlaps no segment.
pub fn is_free(map: &MemoryMap, start: u64, len: u64) -> bool {
    let end = start.saturating_add(len);
    !map.segments
        .iter()
        .any(|s| s.start < end && start < s.end())
}

/// Unmaps and frees every page with a frame in `[start, start + len)`, and the page tables
/// left empty. Work is bounded by what is mapped (a page-table walk), not by `len`.
pub fn release_pages(space: &mut AddressSpace, start: u64, len: u64) {
    space.release_range(start, start.saturating_add(len));
}

/// Removes `[start, start + len)` from the map (splitting segments that straddle it) and
/// frees its pages. Returns `EINVAL` if part of the range is not mapped.
pub fn unmap_range(
    space: &mut AddressSpace,
    map: &mut MemoryMap,
    start: u64,
    len: u64,
) -> Result<(), Errno> {
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    // Every byte of the range must be covered by an anonymous mapping.
    let mut cursor = start;
    while cursor < end {
        let segment = map.segment_at(cursor).ok_or(Errno::EINVAL)?;
        if segment.kind != SegmentKind::Mmap {
            return Err(Errno::EINVAL);
        }
        cursor = segment.end();
    }
    // Splitting one segment in two adds one: stay within the UArea's table.
    let splits = map
        .segments
        .iter()
        .any(|s| s.start < start && s.end() > end);
    if splits && map.segments.len() >= uarea::MAX_SEGMENTS {
        return Err(Errno::ENOMEM);
    }
    let mut kept = Vec::new();
    kept.try_reserve(map.segments.len() + 1)
        .map_err(|_| Errno::ENOMEM)?;
    for segment in map.segments.drain(..) {
        if segment.end() <= start || segment.start >= end {
            kept.push(segment);
            continue;
        }
        if segment.start < start {
            kept.push(Segment {
                len: start - segment.start,
                ..segment
            });
        }
        if segment.end() > end {
            kept.push(Segment {
                start: end,
                len: segment.end() - end,
                ..segment
            });
        }
    }
    map.segments = kept;
    release_pages(space, start, len);
    Ok(())
}
