//! The checks of `abitest syscalls`, `fpu` and `threads`.

use alloc::vec::Vec;
use ulib::abi::{ClockId, Errno, MapFlags, Prot, Syscall};
use ulib::println;
use ulib::raw::{call, syscall6, syscall_number};

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, name: &str, ok: bool, detail: impl core::fmt::Debug) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail:?}");
        }
    }

    fn expect(&mut self, name: &str, got: Result<usize, Errno>, want: Result<usize, Errno>) {
        self.check(name, got == want, (got, want));
    }

    fn expect_err(&mut self, name: &str, got: Result<usize, Errno>, want: Errno) {
        self.check(name, got == Err(want), (got, want));
    }
}

const NULL: u64 = 0;
const KERNEL: u64 = 0xFFFF_8000_0010_0000;
const UNMAPPED: u64 = 0x0000_3000_0000_0000;
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

pub fn syscalls() -> i32 {
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
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
            &[syscalls as *const () as u64, 0, 1 << 40],
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

    // mailboxes on this cluster: own inbox, errors
    let me_raw = pid.unwrap_or(0) as u64;
    let inbox = call(Syscall::MailboxCreate, &[7]);
    t.check("mailbox_create", inbox.is_ok(), inbox);
    t.expect_err(
        "mailbox_create twice",
        call(Syscall::MailboxCreate, &[7]),
        Errno::EEXIST,
    );
    t.expect_err(
        "mailbox_create bad port",
        call(Syscall::MailboxCreate, &[1 << 20]),
        Errno::EINVAL,
    );
    let outbox = call(Syscall::MailboxOpen, &[me_raw, 7]);
    t.check("mailbox_open self", outbox.is_ok(), outbox);
    t.expect_err(
        "mailbox_open bad pid",
        call(Syscall::MailboxOpen, &[0, 7]),
        Errno::ESRCH,
    );
    if let (Ok(inbox), Ok(outbox)) = (inbox, outbox) {
        let (md_in, md_out) = (inbox as u64, outbox as u64);
        let note = b"note to self";
        t.expect(
            "mailbox_write",
            call(
                Syscall::MailboxWrite,
                &[md_out, note.as_ptr() as u64, note.len() as u64],
            ),
            Ok(note.len()),
        );
        let mut buffer = [0u8; 112];
        // SAFETY: the buffer is ours and 112 bytes long.
        let got = unsafe {
            syscall6(
                Syscall::MailboxRead,
                [md_in, buffer.as_mut_ptr() as u64, 112, 0, 0, 0],
            )
        };
        t.check(
            "mailbox_read",
            got == Ok(note.len()) && &buffer[..note.len()] == note,
            got,
        );
        t.expect_err(
            "mailbox_read small buffer",
            call(Syscall::MailboxRead, &[md_in, buffer.as_ptr() as u64, 10]),
            Errno::EINVAL,
        );
        t.expect_err(
            "mailbox_read kernel buffer",
            call(Syscall::MailboxRead, &[md_in, KERNEL, 112]),
            Errno::EFAULT,
        );
        t.expect_err(
            "mailbox_read on a sender",
            call(Syscall::MailboxRead, &[md_out, buffer.as_ptr() as u64, 112]),
            Errno::EBADF,
        );
        t.expect_err(
            "mailbox_write on an inbox",
            call(Syscall::MailboxWrite, &[md_in, note.as_ptr() as u64, 4]),
            Errno::EBADF,
        );
        t.expect_err(
            "mailbox_write empty",
            call(Syscall::MailboxWrite, &[md_out, note.as_ptr() as u64, 0]),
            Errno::EINVAL,
        );
        t.expect_err(
            "mailbox_write too long",
            call(Syscall::MailboxWrite, &[md_out, page as u64, 113]),
            Errno::EMSGSIZE,
        );
        t.expect_err(
            "mailbox_write null",
            call(Syscall::MailboxWrite, &[md_out, NULL, 8]),
            Errno::EFAULT,
        );
        t.expect(
            "mailbox_close",
            call(Syscall::MailboxClose, &[md_in]),
            Ok(0),
        );
        t.expect_err(
            "mailbox_close twice",
            call(Syscall::MailboxClose, &[md_in]),
            Errno::EBADF,
        );
    }
    t.expect_err(
        "mailbox_read bad descriptor",
        call(Syscall::MailboxRead, &[9999, page as u64, 112]),
        Errno::EBADF,
    );

    // portals on this process: a transfer to itself, and the errors
    {
        let me_pid = ulib::abi::Pid::from_raw(pid.unwrap_or(0) as u32).expect("pid");
        let receiver = ulib::portal::Receiver::create(10);
        t.check("portal_create", receiver.is_ok(), ());
        t.expect_err(
            "portal_create twice",
            call(Syscall::PortalCreate, &[10]),
            Errno::EEXIST,
        );
        let sender = ulib::portal::Sender::open(11, me_pid, 10);
        t.check("portal_open", sender.is_ok(), ());
        if let (Ok(receiver), Ok(sender)) = (receiver, sender) {
            let mut buffer = alloc::vec![0u8; 100_000];
            t.expect_err(
                "portal_read before allow",
                receiver.read(&mut buffer),
                Errno::EINVAL,
            );
            t.check("portal_allow", receiver.allow(me_pid, 11).is_ok(), ());
            let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
            let too_long = alloc::vec![0u8; (1 << 20) + 1];
            t.expect_err(
                "portal_write too long",
                sender.write(&too_long),
                Errno::EMSGSIZE,
            );
            t.expect("portal_write", sender.write(&data), Ok(data.len()));
            let mut small = [0u8; 10];
            t.expect_err(
                "portal_read small buffer",
                receiver.read(&mut small),
                Errno::EMSGSIZE,
            );
            t.check(
                "portal_read",
                receiver.read(&mut buffer) == Ok(data.len()) && buffer == data,
                (),
            );
        }
        t.expect_err(
            "portal_write bad descriptor",
            call(Syscall::PortalWrite, &[4242, page as u64, 8]),
            Errno::EBADF,
        );
        t.expect_err(
            "portal_read kernel buffer",
            call(Syscall::PortalRead, &[4242, KERNEL, 8]),
            Errno::EBADF,
        );
    }

    // the name service, on this cluster
    {
        let me_pid = ulib::abi::Pid::from_raw(pid.unwrap_or(0) as u32).expect("pid");
        let name = alloc::format!("abitest.{}", me_pid.raw());
        t.check(
            "name_link",
            ulib::process::name_link(&name, me_pid).is_ok(),
            (),
        );
        t.check(
            "name_link twice",
            ulib::process::name_link(&name, me_pid) == Err(Errno::EEXIST),
            (),
        );
        t.check(
            "name_lookup",
            ulib::process::name_lookup(&name) == Ok(me_pid),
            (),
        );
        t.check(
            "name_lookup missing",
            ulib::process::name_lookup("no.such.name") == Err(Errno::ENOENT),
            (),
        );
        t.check(
            "name_link too long",
            ulib::process::name_link(&"x".repeat(33), me_pid) == Err(Errno::ENAMETOOLONG),
            (),
        );
        t.check(
            "name_link empty",
            ulib::process::name_link("", me_pid) == Err(Errno::EINVAL),
            (),
        );
        let stranger = ulib::abi::Pid::new(ulib::abi::ClusterId(0), 0x7FFF).expect("pid");
        t.check(
            "name_link for a stranger",
            ulib::process::name_link("stranger", stranger) == Err(Errno::EPERM),
            (),
        );
        t.expect_err(
            "name_lookup kernel pointer",
            call(Syscall::NameLookup, &[KERNEL, 4]),
            Errno::EFAULT,
        );
        t.check("name_unlink", ulib::process::name_unlink(&name).is_ok(), ());
        t.check(
            "name_unlink twice",
            ulib::process::name_unlink(&name) == Err(Errno::ENOENT),
            (),
        );
    }

    // sync points: argument checks (the cross-cluster rounds are `abitest barrier`)
    let other = ulib::abi::Pid::new(ulib::abi::ClusterId(0), 0x7FFF)
        .map(|p| p.raw())
        .unwrap_or(1);
    let group = [pid.unwrap_or(0) as u32, other];
    let alone = [pid.unwrap_or(0) as u32];
    let stranger = [other, other + 1];
    let all_to_one = ulib::abi::SyncMode::AllToOne as u64;
    let one_to_all = ulib::abi::SyncMode::OneToAll as u64;
    t.expect_err(
        "sync_create one member",
        call(Syscall::SyncCreate, &[alone.as_ptr() as u64, 1, all_to_one]),
        Errno::EINVAL,
    );
    t.expect_err(
        "sync_create not a member",
        call(
            Syscall::SyncCreate,
            &[stranger.as_ptr() as u64, 2, all_to_one],
        ),
        Errno::EINVAL,
    );
    t.expect_err(
        "sync_create wrong side",
        call(Syscall::SyncCreate, &[group.as_ptr() as u64, 2, one_to_all]),
        Errno::EINVAL,
    );
    t.expect_err(
        "sync_create bad mode",
        call(Syscall::SyncCreate, &[group.as_ptr() as u64, 2, 7]),
        Errno::EINVAL,
    );
    t.expect_err(
        "sync_create null list",
        call(Syscall::SyncCreate, &[NULL, 2, all_to_one]),
        Errno::EFAULT,
    );
    t.expect_err(
        "sync_create too many",
        call(
            Syscall::SyncCreate,
            &[group.as_ptr() as u64, 65, all_to_one],
        ),
        Errno::EINVAL,
    );
    let duplicate = [pid.unwrap_or(0) as u32, pid.unwrap_or(0) as u32];
    t.expect_err(
        "sync_create duplicate member",
        call(
            Syscall::SyncCreate,
            &[duplicate.as_ptr() as u64, 2, all_to_one],
        ),
        Errno::EINVAL,
    );
    let waiter = call(Syscall::SyncCreate, &[group.as_ptr() as u64, 2, all_to_one]);
    t.check("sync_create", waiter.is_ok(), waiter);
    t.expect_err(
        "sync_create twice",
        call(Syscall::SyncCreate, &[group.as_ptr() as u64, 2, all_to_one]),
        Errno::EEXIST,
    );
    if let Ok(sd) = waiter {
        t.expect_err(
            "sync_signal on the waiting side",
            call(Syscall::SyncSignal, &[sd as u64]),
            Errno::EBADF,
        );
        t.expect("sync_close", call(Syscall::SyncClose, &[sd as u64]), Ok(0));
    }
    t.expect_err(
        "sync_open wrong side",
        call(Syscall::SyncOpen, &[group.as_ptr() as u64, 2, all_to_one]),
        Errno::EINVAL,
    );
    t.expect_err(
        "sync_wait bad descriptor",
        call(Syscall::SyncWait, &[4242]),
        Errno::EBADF,
    );

    println!("abitest: {} passed, {} failed", t.passed, t.failed);
    t.failed as i32
}

/// Two threads keep distinct values in SSE registers across many context switches.
pub fn fpu(rounds: u64) -> i32 {
    let workers: Vec<_> = (1..=2u64)
        .map(|seed| {
            ulib::thread::spawn(move || {
                let mut errors = 0u64;
                for round in 0..rounds {
                    let value = (seed * 1_000_003 + round) as f64 * 0.5;
                    let bits: u64;
                    // SAFETY: only xmm7, rax, rcx and r11 are touched; `yield` (number 7) is a
                    // syscall that switches threads, and must preserve xmm7 for us.
                    unsafe {
                        core::arch::asm!(
                            "movq xmm7, {v}",
                            "syscall",
                            "movq {b}, xmm7",
                            v = in(reg) value.to_bits(),
                            b = out(reg) bits,
                            inout("rax") Syscall::Yield.number() => _,
                            out("rcx") _, out("r11") _, out("xmm7") _,
                        );
                    }
                    let back = f64::from_bits(bits);
                    if back != value {
                        errors += 1;
                    }
                }
                errors
            })
            .expect("thread")
        })
        .collect();
    let errors: u64 = workers.into_iter().map(|w| w.join().unwrap_or(1)).sum();
    println!("fpu: {rounds} rounds x 2 threads, {errors} corrupted");
    if errors == 0 {
        0
    } else {
        1
    }
}

/// Creates and joins `n` threads one after another (each checks its argument).
pub fn many_threads(n: usize) -> i32 {
    let start = ulib::time::now_ns();
    for i in 0..n {
        let handle = match ulib::thread::spawn(move || i * 2) {
            Ok(handle) => handle,
            Err(error) => {
                println!("thread {i}: create failed: {error:?}");
                return 1;
            }
        };
        match handle.join() {
            Ok(v) if v == i * 2 => {}
            other => {
                println!("thread {i}: join gave {other:?}");
                return 1;
            }
        }
    }
    let ms = (ulib::time::now_ns() - start) / 1_000_000;
    println!("threads: {n} created and joined in {ms} ms");
    0
}

/// Barrier rounds with children on other clusters: each child signals its parent
/// (ALL_TO_ONE), then waits for the parent's release (ONE_TO_ALL).
pub fn barrier() -> i32 {
    let me = ulib::process::getpid();
    let clusters = ulib::process::cluster_count() as u16;
    if clusters < 2 {
        println!("barrier: needs 2 clusters or more");
        return 2;
    }
    let me_text = alloc::format!("{}", me.raw());
    let children: Vec<ulib::abi::Pid> = (1..clusters)
        .filter_map(|c| {
            ulib::process::spawn(
                "abitest",
                Some(ulib::ClusterId(c)),
                &["barrier-child", &me_text],
            )
            .ok()
        })
        .collect();
    let mut ok = children.len() == clusters as usize - 1;
    for &child in &children {
        let gather = ulib::barrier::Waiter::create(&[me, child], ulib::abi::SyncMode::AllToOne)
            .expect("gather");
        ok &= gather.wait().is_ok();
        let release = ulib::barrier::Signaller::open(&[me, child], ulib::abi::SyncMode::OneToAll)
            .expect("release");
        ok &= release.signal().is_ok();
    }
    for &child in &children {
        ok &= ulib::process::wait(Some(child)).is_ok_and(|(_, code)| code == 0);
    }
    println!(
        "barrier: {} children on other clusters, {}",
        children.len(),
        if ok { "all rounds done" } else { "FAILED" }
    );
    if ok {
        0
    } else {
        1
    }
}

pub fn barrier_child(parent: Option<u32>) -> i32 {
    let Some(parent) = parent.and_then(ulib::abi::Pid::from_raw) else {
        return 2;
    };
    let me = ulib::process::getpid();
    let signaller =
        ulib::barrier::Signaller::open(&[parent, me], ulib::abi::SyncMode::AllToOne).expect("open");
    let waiter = ulib::barrier::Waiter::create(&[parent, me], ulib::abi::SyncMode::OneToAll)
        .expect("create");
    if signaller.signal().is_err() || waiter.wait().is_err() {
        return 1;
    }
    println!(
        "barrier child on cluster {}: released",
        ulib::process::cluster_id().0
    );
    0
}

const PORTAL_BYTES: usize = 1 << 20;

fn portal_pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11)) as u8
}

/// A 1 MiB portal transfer to a child spawned on cluster `on`, which checks every byte.
pub fn portal_remote(on: u16) -> i32 {
    let me = ulib::process::getpid();
    let inbox = ulib::mailbox::Inbox::create(3).expect("inbox");
    let me_text = alloc::format!("{}", me.raw());
    let Ok(child) = ulib::process::spawn(
        "abitest",
        Some(ulib::ClusterId(on)),
        &["portal-child", &me_text],
    ) else {
        println!("portal: cannot spawn the child");
        return 1;
    };
    let _ready = inbox.recv().expect("ready");
    let data: Vec<u8> = (0..PORTAL_BYTES).map(portal_pattern).collect();
    let sender = ulib::portal::Sender::open(8, child, 9).expect("open");
    let start = ulib::time::now_ns();
    let sent = sender.write(&data);
    let waited = ulib::process::wait(Some(child));
    let ms = (ulib::time::now_ns() - start) / 1_000_000;
    println!("portal: wrote {sent:?} to {child} on cluster {on}; child ended {waited:?} ({ms} ms)");
    if sent == Ok(PORTAL_BYTES) && waited.is_ok_and(|(_, code)| code == 0) {
        0
    } else {
        1
    }
}

pub fn portal_child(parent: Option<u32>) -> i32 {
    let Some(parent) = parent.and_then(ulib::abi::Pid::from_raw) else {
        return 2;
    };
    let receiver = ulib::portal::Receiver::create(9).expect("portal");
    receiver.allow(parent, 8).expect("allow");
    ulib::mailbox::Outbox::open(parent, 3)
        .expect("outbox")
        .send(b"ready")
        .expect("ready");
    let mut buffer = alloc::vec![0u8; PORTAL_BYTES];
    let got = receiver.read(&mut buffer);
    let intact = buffer
        .iter()
        .enumerate()
        .all(|(i, b)| *b == portal_pattern(i));
    println!(
        "portal child on cluster {}: read {got:?}, intact {intact}",
        ulib::process::cluster_id().0
    );
    if got == Ok(PORTAL_BYTES) && intact {
        0
    } else {
        1
    }
}

const SERVICE: &str = "abitest.service";

/// Publishes a name, and a child on cluster `on` finds it, sends a message to the pid it
/// stands for, and sees it vanish after the unlink.
pub fn names_remote(on: u16) -> i32 {
    let me = ulib::process::getpid();
    let inbox = ulib::mailbox::Inbox::create(4).expect("inbox");
    if ulib::process::name_link(SERVICE, me).is_err() {
        println!("names: link failed");
        return 1;
    }
    let Ok(child) = ulib::process::spawn("abitest", Some(ulib::ClusterId(on)), &["names-child"])
    else {
        return 1;
    };
    let hello = inbox.recv();
    let _ = ulib::process::name_unlink(SERVICE);
    let waited = ulib::process::wait(Some(child));
    println!(
        "names: child said {:?}, ended {waited:?}",
        hello
            .as_deref()
            .map(|h| core::str::from_utf8(h).unwrap_or("?"))
    );
    if hello.is_ok() && waited.is_ok_and(|(_, code)| code == 0) {
        0
    } else {
        1
    }
}

pub fn names_child() -> i32 {
    // The link reaches this cluster's replica within a few NoC messages.
    let mut service = ulib::process::name_lookup(SERVICE);
    for _ in 0..5000 {
        if service.is_ok() {
            break;
        }
        ulib::time::sleep_ms(2);
        service = ulib::process::name_lookup(SERVICE);
    }
    let Ok(service) = service else {
        println!("names child: {SERVICE} never appeared");
        return 1;
    };
    let message = alloc::format!(
        "found you as {SERVICE} from cluster {}",
        ulib::process::cluster_id().0
    );
    ulib::mailbox::Outbox::open(service, 4)
        .expect("outbox")
        .send(message.as_bytes())
        .expect("send");
    for _ in 0..5000 {
        if ulib::process::name_lookup(SERVICE) == Err(ulib::Errno::ENOENT) {
            return 0;
        }
        ulib::time::sleep_ms(2);
    }
    println!("names child: {SERVICE} never went away");
    1
}
