//! The process heap: a first-fit allocator that grows by mapping anonymous memory.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use abi::{Errno, MapFlags, Prot, Syscall};
use linked_list_allocator::Heap;
use spin::Mutex;

use crate::raw::call;

const CHUNK: usize = 1 << 20;

/// Maps `len` bytes of zeroed, readable and writable memory.
pub fn mmap(len: usize) -> Result<*mut u8, Errno> {
    let prot = (Prot::READ | Prot::WRITE).bits();
    call(
        Syscall::Mmap,
        &[0, len as u64, prot, MapFlags::empty().bits()],
    )
    .map(|a| a as *mut u8)
}

/// Unmaps memory returned by [`mmap`].
///
/// # Safety
/// Nothing may use the range afterwards.
pub unsafe fn munmap(address: *mut u8, len: usize) -> Result<(), Errno> {
    call(Syscall::Munmap, &[address as u64, len as u64]).map(|_| ())
}

struct UserHeap {
    heap: Mutex<Heap>,
}

#[global_allocator]
static HEAP: UserHeap = UserHeap {
    heap: Mutex::new(Heap::empty()),
};

// SAFETY: all heap state is behind the mutex; new memory comes from mmap and is never
// handed out twice.
unsafe impl GlobalAlloc for UserHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
        if let Ok(ptr) = heap.allocate_first_fit(layout) {
            return ptr.as_ptr();
        }
        let grow = (layout.size() + layout.align()).next_multiple_of(CHUNK);
        let Ok(memory) = mmap(grow) else {
            return core::ptr::null_mut();
        };
        if heap.size() == 0 {
            // SAFETY: the mapping is fresh, writable and ours.
            unsafe { heap.init(memory, grow) };
        } else if core::ptr::eq(memory, heap.top()) {
            // SAFETY: the new mapping starts right at the heap's top.
            unsafe { heap.extend(grow) };
        } else {
            // Not contiguous: the new chunk becomes a free block of its own.
            // SAFETY: the block is fresh mapped memory, large and aligned enough for a hole.
            unsafe {
                heap.deallocate(
                    NonNull::new_unchecked(memory),
                    Layout::from_size_align_unchecked(grow, 8),
                )
            };
        }
        heap.allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout.
            unsafe { self.heap.lock().deallocate(ptr, layout) };
        }
    }
}
