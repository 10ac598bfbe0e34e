//! `abitest syscalls`: mmap / munmap, futex, threads, sleep and yield.

use ulib::abi::{Errno, MapFlags, Prot, Syscall};
use ulib::raw::call;

use super::{Tally, KERNEL, NULL};

pub fn check(t: &mut Tally, page: *mut u8) {
    // mmap / munmap
    let rw = (Prot::READ | Prot::WRITE).bits();
    let mapped = call(Syscall::Mmap, &[0, 3 * 4096, rw, 0]);
    t.check("mmap ok", mapped.is_ok_and(|a| a % 4096 == 0), mapped);
    if let Ok(address) = mapped {
        // SAFETY: just mapped, three writable pages.
        unsafe {
            let p = address as *mut u8;
            p.write_volatile(1);
            p.add(3 * 4096 - 1).write_volatile(2);
            t.check("mmap zeroed", p.add(4096).read_volatile() == 0, ());
        }
        t.expect(
            "munmap middle",
            call(Syscall::Munmap, &[address as u64 + 4096, 4096]),
            Ok(0),
        );
        t.expect_err(
            "write to unmapped hole",
            call(Syscall::Write, &[address as u64 + 4096, 1]),
            Errno::EFAULT,
        );
        t.expect(
            "munmap rest",
            call(Syscall::Munmap, &[address as u64, 4096]),
            Ok(0),
        );
        t.expect(
            "munmap last",
            call(Syscall::Munmap, &[address as u64 + 8192, 4096]),
            Ok(0),
        );
        t.expect_err(
            "munmap twice",
            call(Syscall::Munmap, &[address as u64, 4096]),
            Errno::EINVAL,
        );
    }
    t.expect_err(
        "mmap zero length",
        call(Syscall::Mmap, &[0, 0, rw, 0]),
        Errno::EINVAL,
    );
    t.expect_err(
        "mmap W+X",
        call(
            Syscall::Mmap,
            &[0, 4096, (Prot::WRITE | Prot::EXEC).bits(), 0],
        ),
        Errno::EINVAL,
    );
    t.expect_err(
        "mmap bad prot",
        call(Syscall::Mmap, &[0, 4096, 1 << 10, 0]),
        Errno::EINVAL,
    );
    t.expect_err(
        "mmap bad flags",
        call(Syscall::Mmap, &[0, 4096, rw, 1 << 10]),
        Errno::EINVAL,
    );
    t.expect_err(
        "mmap fixed unaligned",
        call(
            Syscall::Mmap,
            &[0x2000_0000_0123, 4096, rw, MapFlags::FIXED.bits()],
        ),
        Errno::EINVAL,
    );
    t.expect_err(
        "mmap fixed kernel",
        call(Syscall::Mmap, &[KERNEL, 4096, rw, MapFlags::FIXED.bits()]),
        Errno::EINVAL,
    );
    t.expect_err(
        "mmap fixed over text",
        call(
            Syscall::Mmap,
            &[0x40_0000, 4096, rw, MapFlags::FIXED.bits()],
        ),
        Errno::EEXIST,
    );
    t.expect_err(
        "munmap text",
        call(Syscall::Munmap, &[0x40_0000, 4096]),
        Errno::EINVAL,
    );
    t.expect_err(
        "munmap unaligned",
        call(Syscall::Munmap, &[page as u64 + 1, 4096]),
        Errno::EINVAL,
    );

    // futex
    let word = core::sync::atomic::AtomicU32::new(7);
    let word_at = word.as_ptr() as u64;
    t.expect_err(
        "futex value changed",
        call(
            Syscall::FutexWait,
            &[word_at, 8, ulib::abi::types::FUTEX_NO_TIMEOUT],
        ),
        Errno::EAGAIN,
    );
    t.expect_err(
        "futex unaligned",
        call(
            Syscall::FutexWait,
            &[word_at + 1, 7, ulib::abi::types::FUTEX_NO_TIMEOUT],
        ),
        Errno::EINVAL,
    );
    t.expect_err(
        "futex null",
        call(
            Syscall::FutexWait,
            &[NULL, 0, ulib::abi::types::FUTEX_NO_TIMEOUT],
        ),
        Errno::EFAULT,
    );
    t.expect_err(
        "futex kernel",
        call(
            Syscall::FutexWait,
            &[KERNEL, 0, ulib::abi::types::FUTEX_NO_TIMEOUT],
        ),
        Errno::EFAULT,
    );
    t.expect(
        "futex wake nobody",
        call(Syscall::FutexWake, &[word_at, 10]),
        Ok(0),
    );

    // threads
    t.expect_err("join self", call(Syscall::ThreadJoin, &[0]), Errno::EINVAL);
    t.expect_err(
        "join unknown",
        call(Syscall::ThreadJoin, &[777]),
        Errno::ESRCH,
    );
    t.expect_err(
        "thread at null",
        call(Syscall::ThreadCreate, &[NULL, 0, 0]),
        Errno::EFAULT,
    );
    t.expect_err(
        "thread at data",
        call(Syscall::ThreadCreate, &[word_at, 0, 0]),
        Errno::EFAULT,
    );
    t.expect_err(
        "thread huge stack",
        call(
            Syscall::ThreadCreate,
            &[super::syscalls as *const () as u64, 0, 1 << 40],
        ),
        Errno::EINVAL,
    );
    let handle = ulib::thread::spawn(|| 42u32);
    t.check(
        "thread spawn+join",
        handle.map(|h| h.join()) == Ok(Ok(42)),
        (),
    );

    // sleep and yield
    let before = ulib::time::now_ns();
    t.expect("sleep", call(Syscall::Sleep, &[5_000_000]), Ok(0));
    let slept = ulib::time::now_ns() - before;
    t.check("sleep lasted", slept >= 5_000_000, slept);
    t.expect("yield", call(Syscall::Yield, &[]), Ok(0));
}
