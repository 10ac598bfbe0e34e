//! Threads that run closures, like `std::thread`.
//!
//! The kernel starts a thread at an entry address with one argument; ulib passes a boxed
//! closure as that argument, runs it on the new thread, stores its result and ends the thread.
//! [`JoinHandle::join`] waits in the kernel and takes the result.

use alloc::boxed::Box;
use alloc::sync::Arc;

use abi::{Errno, Syscall, Tid};
use spin::Mutex;

use crate::raw::call;

struct Packet<T> {
    result: Mutex<Option<T>>,
}

/// Owns a running thread; `join` waits for it and returns its result.
pub struct JoinHandle<T> {
    tid: Tid,
    packet: Arc<Packet<T>>,
}

impl<T> JoinHandle<T> {
    /// The thread's id.
    pub fn tid(&self) -> Tid {
        self.tid
    }

    /// Waits for the thread to finish and returns what its closure returned.
    pub fn join(self) -> Result<T, Errno> {
        join_raw(self.tid)?;
        self.packet.result.lock().take().ok_or(Errno::ESRCH)
    }
}

type Start = Box<dyn FnOnce()>;

extern "C" fn trampoline(start: *mut Start) -> ! {
    // SAFETY: `spawn` leaked exactly this box for exactly this thread.
    let start = unsafe { Box::from_raw(start) };
    start();
    exit(0)
}

/// Starts a thread running `f`, with the default stack.
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, Errno>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_with_stack(0, f)
}

/// Starts a thread running `f` on a stack of `stack_size` bytes (0: the default).
pub fn spawn_with_stack<F, T>(stack_size: usize, f: F) -> Result<JoinHandle<T>, Errno>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let packet = Arc::new(Packet {
        result: Mutex::new(None),
    });
    let their_packet = packet.clone();
    let start: Start = Box::new(move || {
        let value = f();
        *their_packet.result.lock() = Some(value);
    });
    let start = Box::into_raw(Box::new(start));
    match call(
        Syscall::ThreadCreate,
        &[
            trampoline as *const () as u64,
            start as u64,
            stack_size as u64,
        ],
    ) {
        Ok(tid) => Ok(JoinHandle {
            tid: Tid(tid as u32),
            packet,
        }),
        Err(error) => {
            // SAFETY: the thread was not created, so the box is still ours.
            drop(unsafe { Box::from_raw(start) });
            Err(error)
        }
    }
}

/// Waits for thread `tid` and returns the value it passed to [`exit`].
pub fn join_raw(tid: Tid) -> Result<usize, Errno> {
    call(Syscall::ThreadJoin, &[tid.0 as u64])
}

/// Ends the calling thread with `value`.
pub fn exit(value: usize) -> ! {
    let _ = call(Syscall::ThreadExit, &[value as u64]);
    unreachable!("thread_exit returned")
}

/// The calling thread's id.
pub fn current() -> Tid {
    Tid(call(Syscall::GetTid, &[]).unwrap_or(0) as u32)
}

/// Blocks while `*word == expected` (until a [`futex_wake`] on it).
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32) -> Result<(), Errno> {
    call(
        Syscall::FutexWait,
        &[
            word.as_ptr() as u64,
            expected as u64,
            abi::types::FUTEX_NO_TIMEOUT,
        ],
    )
    .map(|_| ())
}

/// Wakes up to `count` threads waiting on `word`; returns how many woke.
pub fn futex_wake(word: &core::sync::atomic::AtomicU32, count: usize) -> usize {
    call(Syscall::FutexWake, &[word.as_ptr() as u64, count as u64]).unwrap_or(0)
}
