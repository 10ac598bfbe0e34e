//! `abitest syscalls`: spawn, wait, kill and listing.

use ulib::abi::{Errno, Syscall};
use ulib::raw::{call, syscall6};

use super::{Tally, KERNEL, NULL};

pub fn check(t: &mut Tally, pid: Result<usize, Errno>) {
    // processes
    let name = "hello";
    let spawn = |name_at: u64, name_len: u64, cluster: u64| {
        call(Syscall::Spawn, &[name_at, name_len, cluster, 0, 0])
    };
    t.expect_err(
        "spawn null name",
        spawn(NULL, 5, ulib::abi::ANY_CLUSTER),
        Errno::EFAULT,
    );
    t.expect_err(
        "spawn kernel name",
        spawn(KERNEL, 5, ulib::abi::ANY_CLUSTER),
        Errno::EFAULT,
    );
    t.expect_err(
        "spawn no such program",
        spawn(b"nope".as_ptr() as u64, 4, ulib::abi::ANY_CLUSTER),
        Errno::ENOENT,
    );
    t.expect_err(
        "spawn long name",
        spawn(name.as_ptr() as u64, 4096, ulib::abi::ANY_CLUSTER),
        Errno::ENAMETOOLONG,
    );
    t.expect_err(
        "spawn bad cluster",
        spawn(name.as_ptr() as u64, 5, 4000),
        Errno::EINVAL,
    );
    t.expect_err(
        "spawn args too long",
        call(
            Syscall::Spawn,
            &[name.as_ptr() as u64, 5, ulib::abi::ANY_CLUSTER, 0, 1 << 20],
        ),
        Errno::E2BIG,
    );
    t.expect_err(
        "spawn empty name",
        spawn(name.as_ptr() as u64, 0, ulib::abi::ANY_CLUSTER),
        Errno::EINVAL,
    );
    let child = ulib::process::spawn("hello", None, &["abitest"]);
    t.check("spawn hello", child.is_ok(), child);
    if let Ok(child) = child {
        let waited = ulib::process::wait(Some(child));
        t.check("wait child", waited == Ok((child, 0)), waited);
    }
    t.expect_err(
        "wait no children",
        call(Syscall::Wait, &[ulib::abi::ANY_CHILD, 0]),
        Errno::ECHILD,
    );
    t.expect_err(
        "wait bad status pointer",
        {
            let child = ulib::process::spawn("hello", None, &[])
                .map(|p| p.raw() as u64)
                .unwrap_or(0);
            let result = call(Syscall::Wait, &[child, KERNEL]);
            let _ = ulib::process::wait(None);
            result
        },
        Errno::EFAULT,
    );
    t.expect_err("kill bad pid", call(Syscall::Kill, &[0]), Errno::EINVAL);
    t.expect_err(
        "kill missing",
        call(Syscall::Kill, &[0x00FF_FFFF]),
        Errno::ESRCH,
    );
    let sleeper = ulib::process::spawn("counter", None, &["1000"]);
    if let Ok(sleeper) = sleeper {
        t.expect(
            "kill child",
            call(Syscall::Kill, &[sleeper.raw() as u64]),
            Ok(0),
        );
        let waited = ulib::process::wait(Some(sleeper));
        t.check(
            "killed child reaped",
            waited.is_ok_and(|(_, code)| code != 0),
            waited,
        );
    }
    let list = ulib::process::list();
    t.check(
        "proc_list has me",
        list.as_ref()
            .is_ok_and(|l| l.iter().any(|r| r.pid == pid.unwrap_or(0) as u32)),
        (),
    );
    // SAFETY: deliberately invalid pointers; the kernel must refuse them.
    let bad_list = unsafe { syscall6(Syscall::ProcList, [KERNEL, 4, 0, 0, 0, 0]) };
    t.expect_err("proc_list kernel buffer", bad_list, Errno::EFAULT);
}
