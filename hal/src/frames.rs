//! Physical frame allocator.
//!
//! A bitmap over the usable RAM from the boot memory map: one bit per 4 KiB frame, so frames
//! can be freed in any order (processes come and go, migration releases whole address spaces)
//! and a double free is caught. Running out is an ordinary error, never a panic.
//!
//! A frame can be **pinned** while a DMA engine may read it (a user buffer a portal write
//! names to noc-sim's engine): freeing a pinned frame — `munmap`, exit, a migrated process's
//! release — only marks it, and the last [`unpin`] returns it to the pool. So whatever the
//! process does meanwhile, the frame is never handed out again while the engine can read it.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use spin::Mutex;
use x86_64::structures::paging::{PhysFrame, Size4KiB};
use x86_64::PhysAddr;

pub const FRAME_SIZE: u64 = 4096;
/// Highest physical address the bitmap covers (the QEMU clusters have far less RAM).
const MAX_PHYS: u64 = 4 << 30;
const FRAMES: usize = (MAX_PHYS / FRAME_SIZE) as usize;
/// Frames below 1 MiB stay reserved (BIOS data, future AP trampolines).
const FIRST_ALLOCATABLE: u64 = 0x10_0000;

/// Why an allocation or free failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Every usable frame is allocated.
    OutOfMemory,
    /// The frame was not allocated (double free) or is not usable RAM.
    NotAllocated,
    /// [`PIN_LIMIT`] frames are pinned already.
    TooManyPins,
}

/// Frames pinned at once, at most (a 1 MiB portal write pins up to 257).
pub const PIN_LIMIT: usize = 4096;

#[derive(Clone, Copy)]
struct Pin {
    index: u64,
    count: u32,
    /// Freed while pinned: the last unpin frees it.
    freed: bool,
}

/// The pinned frames, packed at the front of `entries` (searched only when `used > 0`, so
/// frees cost nothing extra while no DMA is in flight).
struct Pins {
    entries: [Pin; PIN_LIMIT],
    used: usize,
}

static PINS: Mutex<Pins> = Mutex::new(Pins {
    entries: [Pin {
        index: 0,
        count: 0,
        freed: false,
    }; PIN_LIMIT],
    used: 0,
});

impl Pins {
    fn find(&mut self, index: u64) -> Option<usize> {
        self.entries[..self.used]
            .iter()
            .position(|p| p.index == index)
    }
}

struct Bitmap {
    /// Bit set = frame free.
    free: [u64; FRAMES / 64],
    free_count: usize,
    total: usize,
    /// Word index to start searching from (next fit).
    cursor: usize,
    /// Bit set = frame is usable RAM (allocated or free).
    usable: [u64; FRAMES / 64],
}

static BITMAP: Mutex<Bitmap> = Mutex::new(Bitmap {
    free: [0; FRAMES / 64],
    free_count: 0,
    total: 0,
    cursor: 0,
    usable: [0; FRAMES / 64],
});

/// Marks every usable frame of the boot memory map free. Returns usable bytes.
pub fn init(regions: &MemoryRegions) -> u64 {
    let mut bitmap = BITMAP.lock();
    for region in regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
    {
        let start = region.start.max(FIRST_ALLOCATABLE).div_ceil(FRAME_SIZE);
        let end = region.end.min(MAX_PHYS) / FRAME_SIZE;
        for frame in start..end {
            let (word, bit) = ((frame / 64) as usize, frame % 64);
            bitmap.free[word] |= 1 << bit;
            bitmap.usable[word] |= 1 << bit;
            bitmap.free_count += 1;
            bitmap.total += 1;
        }
    }
    bitmap.total as u64 * FRAME_SIZE
}

/// Allocates one frame (contents undefined).
pub fn alloc() -> Result<PhysFrame, FrameError> {
    let mut bitmap = BITMAP.lock();
    let words = bitmap.free.len();
    for i in 0..words {
        let word = (bitmap.cursor + i) % words;
        let bits = bitmap.free[word];
        if bits != 0 {
            let bit = bits.trailing_zeros() as u64;
            bitmap.free[word] &= !(1 << bit);
            bitmap.free_count -= 1;
            bitmap.cursor = word;
            let address = (word as u64 * 64 + bit) * FRAME_SIZE;
            return Ok(PhysFrame::containing_address(PhysAddr::new(address)));
        }
    }
    Err(FrameError::OutOfMemory)
}

/// Allocates one frame filled with zeros.
pub fn alloc_zeroed() -> Result<PhysFrame, FrameError> {
    let frame = alloc()?;
    let virt = crate::physmap::phys_to_virt(frame.start_address());
    // SAFETY: the frame was just allocated, so nothing else refers to it, and the physical
    // memory mapping makes all of it writable at `virt`.
    unsafe { core::ptr::write_bytes(virt.as_mut_ptr::<u8>(), 0, FRAME_SIZE as usize) };
    Ok(frame)
}

/// Returns a frame to the pool (a pinned frame: once it is unpinned).
pub fn free(frame: PhysFrame) -> Result<(), FrameError> {
    let index = frame.start_address().as_u64() / FRAME_SIZE;
    {
        let mut pins = PINS.lock();
        if let Some(at) = pins.find(index) {
            let pin = &mut pins.entries[at];
            if pin.freed {
                return Err(FrameError::NotAllocated);
            }
            pin.freed = true;
            return Ok(());
        }
    }
    release(index)
}

fn release(index: u64) -> Result<(), FrameError> {
    if index >= FRAMES as u64 {
        return Err(FrameError::NotAllocated);
    }
    let (word, bit) = ((index / 64) as usize, index % 64);
    let mut bitmap = BITMAP.lock();
    if bitmap.usable[word] & (1 << bit) == 0 || bitmap.free[word] & (1 << bit) != 0 {
        return Err(FrameError::NotAllocated);
    }
    bitmap.free[word] |= 1 << bit;
    bitmap.free_count += 1;
    Ok(())
}

/// Holds `frame` (allocated) until a matching [`unpin`]; pins nest.
pub fn pin(frame: PhysFrame) -> Result<(), FrameError> {
    let index = frame.start_address().as_u64() / FRAME_SIZE;
    if index >= FRAMES as u64 {
        return Err(FrameError::NotAllocated);
    }
    let (word, bit) = ((index / 64) as usize, index % 64);
    let mut pins = PINS.lock();
    if let Some(at) = pins.find(index) {
        let pin = &mut pins.entries[at];
        if pin.freed {
            return Err(FrameError::NotAllocated);
        }
        pin.count += 1;
        return Ok(());
    }
    {
        let bitmap = BITMAP.lock();
        if bitmap.usable[word] & (1 << bit) == 0 || bitmap.free[word] & (1 << bit) != 0 {
            return Err(FrameError::NotAllocated);
        }
    }
    if pins.used == PIN_LIMIT {
        return Err(FrameError::TooManyPins);
    }
    let used = pins.used;
    pins.entries[used] = Pin {
        index,
        count: 1,
        freed: false,
    };
    pins.used += 1;
    Ok(())
}

/// Drops one pin of `frame`; the last one frees it if it was freed meanwhile.
pub fn unpin(frame: PhysFrame) {
    let index = frame.start_address().as_u64() / FRAME_SIZE;
    let release_now = {
        let mut pins = PINS.lock();
        let Some(at) = pins.find(index) else {
            return;
        };
        let pin = &mut pins.entries[at];
        pin.count -= 1;
        if pin.count > 0 {
            return;
        }
        let freed = pin.freed;
        let last = pins.used - 1;
        pins.entries.swap(at, last);
        pins.used = last;
        freed
    };
    if release_now {
        let _ = release(index);
    }
}

/// Frames pinned now, and how many of them were freed while pinned.
pub fn pinned_count() -> (usize, usize) {
    let pins = PINS.lock();
    let freed = pins.entries[..pins.used].iter().filter(|p| p.freed).count();
    (pins.used, freed)
}

/// Frames pinned for as long as it lives: what a DMA transfer from them holds.
pub struct Pinned {
    frames: alloc::vec::Vec<PhysFrame>,
}

impl Pinned {
    /// Pins every frame of `frames` (all or none).
    pub fn new(frames: alloc::vec::Vec<PhysFrame>) -> Result<Pinned, FrameError> {
        for (done, frame) in frames.iter().enumerate() {
            if let Err(error) = pin(*frame) {
                frames[..done].iter().for_each(|f| unpin(*f));
                return Err(error);
            }
        }
        Ok(Pinned { frames })
    }

    /// How many frames it holds.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.frames.iter().for_each(|f| unpin(*f));
    }
}

impl core::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Pinned({} frames)", self.frames.len())
    }
}

/// Frames currently free.
pub fn free_count() -> usize {
    BITMAP.lock().free_count
}

/// Usable frames in total.
pub fn total_count() -> usize {
    BITMAP.lock().total
}

/// Adapter so the `x86_64` crate's mapper can take page-table frames from this allocator.
pub struct GlobalFrames;

// SAFETY: `alloc_zeroed` hands out each frame at most once until it is freed, and the frames
// are usable RAM from the boot memory map.
unsafe impl x86_64::structures::paging::FrameAllocator<Size4KiB> for GlobalFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        alloc_zeroed().ok()
    }
}
