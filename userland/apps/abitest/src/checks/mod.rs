//! The checks of `abitest syscalls` (one module per family of calls) and of the
//! multi-process scenarios (`remote`).

use ulib::abi::{ClockId, Errno, Syscall};
use ulib::println;
use ulib::raw::{call, syscall_number};

pub(crate) struct Tally {
    pub(crate) passed: u32,
    pub(crate) failed: u32,
}

impl Tally {
    pub(crate) fn check(&mut self, name: &str, ok: bool, detail: impl core::fmt::Debug) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail:?}");
        }
    }

    pub(crate) fn expect(
        &mut self,
        name: &str,
        got: Result<usize, Errno>,
        want: Result<usize, Errno>,
    ) {
        self.check(name, got == want, (got, want));
    }

    pub(crate) fn expect_err(&mut self, name: &str, got: Result<usize, Errno>, want: Errno) {
        self.check(name, got == Err(want), (got, want));
    }
}

pub(crate) const NULL: u64 = 0;
pub(crate) const KERNEL: u64 = 0xFFFF_8000_0010_0000;
pub(crate) const UNMAPPED: u64 = 0x0000_3000_0000_0000;
pub(crate) const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

mod endpoints;
mod memory;
mod portal_follow;
mod processes;
mod remote;
mod userdma;

pub use portal_follow::*;
pub use remote::*;
pub use userdma::*;

pub fn syscalls() -> i32 {
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
    let (pid, page) = basics(&mut t);
    memory::check(&mut t, page);
    processes::check(&mut t, pid);
    endpoints::check(&mut t, pid, page);
    println!("abitest: {} passed, {} failed", t.passed, t.failed);
    t.failed as i32
}

/// write, identity, clocks and unknown numbers; returns our pid and a mapped page for the
/// endpoint checks.
fn basics(t: &mut Tally) -> (Result<usize, Errno>, *mut u8) {
    let message = b"abitest: write works\n";
    // write
    t.expect(
        "write ok",
        call(
            Syscall::Write,
            &[message.as_ptr() as u64, message.len() as u64],
        ),
        Ok(message.len()),
    );
    t.expect(
        "write empty",
        call(Syscall::Write, &[message.as_ptr() as u64, 0]),
        Ok(0),
    );
    t.expect_err(
        "write null",
        call(Syscall::Write, &[NULL, 8]),
        Errno::EFAULT,
    );
    t.expect_err(
        "write kernel",
        call(Syscall::Write, &[KERNEL, 8]),
        Errno::EFAULT,
    );
    t.expect_err(
        "write unmapped",
        call(Syscall::Write, &[UNMAPPED, 8]),
        Errno::EFAULT,
    );
    t.expect_err(
        "write non-canonical",
        call(Syscall::Write, &[NON_CANONICAL, 8]),
        Errno::EFAULT,
    );
    t.expect_err(
        "write wraps",
        call(Syscall::Write, &[u64::MAX - 4, 16]),
        Errno::EFAULT,
    );
    t.expect_err(
        "write overlong",
        call(Syscall::Write, &[message.as_ptr() as u64, 1 << 20]),
        Errno::EINVAL,
    );
    // A buffer that runs off the end of its mapping.
    let page = ulib::heap::mmap(4096).expect("mmap");
    t.expect_err(
        "write past mapping",
        call(Syscall::Write, &[page as u64 + 4000, 200]),
        Errno::EFAULT,
    );

    // identity and topology
    let pid = call(Syscall::GetPid, &[]);
    t.check(
        "getpid",
        pid.is_ok_and(|p| ulib::abi::Pid::from_arg(p as u64).is_some()),
        pid,
    );
    t.check(
        "gettid main",
        call(Syscall::GetTid, &[]) == Ok(0),
        call(Syscall::GetTid, &[]),
    );
    let count = call(Syscall::ClusterCount, &[]);
    t.check("cluster_count", count.is_ok_and(|c| c >= 1), count);
    let here = call(Syscall::ClusterIdOf, &[]);
    t.check(
        "cluster_id < count",
        here.is_ok_and(|c| c < count.unwrap_or(1)),
        here,
    );

    // clocks
    let a = call(Syscall::ClockNs, &[ClockId::Monotonic as u64]).unwrap_or(0);
    let b = call(Syscall::ClockNs, &[ClockId::Monotonic as u64]).unwrap_or(0);
    t.check("clock monotonic", b >= a && a > 0, (a, b));
    t.check(
        "clock process cpu",
        call(Syscall::ClockNs, &[ClockId::ProcessCpu as u64]).is_ok(),
        (),
    );
    t.expect_err("clock bad id", call(Syscall::ClockNs, &[99]), Errno::EINVAL);

    // unknown numbers
    // SAFETY: unknown syscall numbers touch nothing.
    let unknown = unsafe { syscall_number(9999, [0; 6]) };
    t.check(
        "unknown syscall",
        unknown == Errno::ENOSYS.as_return(),
        unknown,
    );
    // SAFETY: as above.
    let reserved = unsafe { syscall_number(Syscall::Migrate.number() + 50, [0; 6]) };
    t.check(
        "hole in numbering",
        reserved == Errno::ENOSYS.as_return(),
        reserved,
    );
    (pid, page)
}
