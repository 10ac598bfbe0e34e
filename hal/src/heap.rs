//! The kernel heap: the global allocator behind `alloc`.
//!
//! It starts small and grows by mapping more frames when an allocation does not fit, up to
//! [`HEAP_MAX`]; past that, allocation fails and the `alloc` error handler reports it.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;
use spin::Mutex;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use crate::paging::{self, MapError, HEAP_START};

const HEAP_INITIAL: usize = 4 << 20;
/// Largest the heap may grow to.
pub const HEAP_MAX: usize = 64 << 20;
const GROW_STEP: usize = 1 << 20;

struct KernelHeap {
    heap: Mutex<Heap>,
}

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap {
    heap: Mutex::new(Heap::empty()),
};

const HEAP_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE);

/// Maps the initial heap.
pub fn init() -> Result<(), MapError> {
    paging::map_fresh(
        VirtAddr::new(HEAP_START),
        (HEAP_INITIAL / 4096) as u64,
        HEAP_FLAGS,
    )?;
    // SAFETY: the range was just mapped, is writable and used by nothing else.
    unsafe {
        ALLOCATOR
            .heap
            .lock()
            .init(HEAP_START as *mut u8, HEAP_INITIAL)
    };
    Ok(())
}

/// Bytes of heap currently mapped and in use.
pub fn stats() -> (usize, usize) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let heap = ALLOCATOR.heap.lock();
        (heap.size(), heap.used())
    })
}

fn grow(heap: &mut Heap, at_least: usize) -> bool {
    let step = at_least.next_multiple_of(GROW_STEP);
    if heap.size() + step > HEAP_MAX {
        return false;
    }
    let top = heap.top() as u64;
    if paging::map_fresh(VirtAddr::new(top), (step / 4096) as u64, HEAP_FLAGS).is_err() {
        return false;
    }
    // SAFETY: the pages right after the heap's top were just mapped for the heap.
    unsafe { heap.extend(step) };
    true
}

// SAFETY: all heap access is serialised by the mutex, with interrupts off so an interrupt
// handler that allocates cannot deadlock against the code it interrupted.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        x86_64::instructions::interrupts::without_interrupts(|| {
            let mut heap = self.heap.lock();
            if let Ok(ptr) = heap.allocate_first_fit(layout) {
                return ptr.as_ptr();
            }
            if grow(&mut heap, layout.size() + layout.align()) {
                if let Ok(ptr) = heap.allocate_first_fit(layout) {
                    return ptr.as_ptr();
                }
            }
            core::ptr::null_mut()
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        x86_64::instructions::interrupts::without_interrupts(|| {
            if let Some(ptr) = NonNull::new(ptr) {
                // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
                unsafe { self.heap.lock().deallocate(ptr, layout) };
            }
        })
    }
}
