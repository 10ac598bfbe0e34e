//! `abitest harden CASE`: an unprivileged program trying to hurt its kernel (issue 11). Each
//! case prints `FAIL …` lines for what went wrong and exits 0 only if the kernel held.

use ulib::abi::{Errno, Pid, Prot, Syscall};
use ulib::println;
use ulib::raw::call;

const PAGE: u64 = 4096;
const RW: u64 = Prot::READ.bits() | Prot::WRITE.bits();

struct Verdict(u32);

impl Verdict {
    fn check(&mut self, name: &str, ok: bool, detail: impl core::fmt::Debug) {
        if !ok {
            self.0 += 1;
            println!("FAIL {name}: {detail:?}");
        }
    }
    fn exit_code(self, case: &str) -> i32 {
        println!("harden {case}: {} failed", self.0);
        i32::from(self.0 != 0)
    }
}

fn mmap(addr: u64, len: u64) -> Result<usize, Errno> {
    call(Syscall::Mmap, &[addr, len, RW, 0])
}

pub fn run(case: &str) -> i32 {
    let mut v = Verdict(0);
    match case {
        "mmap-top" => mmap_top(&mut v),
        "buffers" => buffers(&mut v),
        "munmap-huge" => munmap_huge(&mut v),
        "names" => names(&mut v),
        "inbox-flood" => inbox_flood(&mut v),
        "mailbox-from" => mailbox_from(&mut v),
        "children" => children(&mut v),
        "orphan" => orphan(&mut v),
        _ => v.check("known case", false, case),
    }
    v.exit_code(case)
}

/// Hints and lengths at the top of the address space never wrap around to page 0.
fn mmap_top(v: &mut Verdict) {
    for hint in [u64::MAX, u64::MAX - PAGE + 1, 0x7FFF_FFFF_F000, 1 << 63] {
        let got = mmap(hint, PAGE);
        v.check(
            "mmap with a hint at the top",
            got == Err(Errno::ENOMEM),
            (hint, got),
        );
    }
    for len in [u64::MAX, u64::MAX - PAGE, 1 << 47] {
        let got = mmap(0, len);
        v.check(
            "mmap of an impossible length",
            got == Err(Errno::ENOMEM),
            (len, got),
        );
    }
    let got = mmap(0, PAGE);
    v.check(
        "an ordinary mmap still works",
        matches!(got, Ok(a) if a as u64 >= 1 << 44),
        got,
    );
}

/// Output buffers are checked whole before a byte is written.
fn buffers(v: &mut Verdict) {
    let Ok(page) = mmap(0, PAGE) else {
        return v.check("mmap", false, ());
    };
    let page = page as u64;
    // SAFETY: the page was just mapped read-write for us.
    let bytes = unsafe { core::slice::from_raw_parts_mut(page as *mut u8, PAGE as usize) };
    bytes.fill(0xAA);
    let got = call(Syscall::ProcList, &[page, 0x0400_0000_0000_0000]);
    v.check(
        "proc_list whose capacity overflows",
        got == Err(Errno::EFAULT),
        got,
    );
    // Two records claimed, 32 bytes of room before the unmapped page after ours.
    let got = call(Syscall::ProcList, &[page + PAGE - 32, 2]);
    v.check("proc_list past the mapping", got == Err(Errno::EFAULT), got);
    let got = call(Syscall::MigrationStats, &[page, u64::MAX - page]);
    v.check(
        "migration_stats past the user half",
        got == Err(Errno::EFAULT),
        got,
    );
    let got = call(Syscall::MigrationStats, &[page + PAGE - 64, 128]);
    v.check(
        "migration_stats past the mapping",
        got == Err(Errno::EFAULT),
        got,
    );
    stats_ex_bounds(v, page);
    v.check("nothing written", bytes.iter().all(|b| *b == 0xAA), ());
    let got = call(Syscall::ProcList, &[page, 1]);
    v.check(
        "proc_list into a whole buffer",
        matches!(got, Ok(n) if n >= 1),
        got,
    );
}

/// Unmapping a huge, sparsely touched mapping costs what is mapped, not its length.
fn munmap_huge(v: &mut Verdict) {
    let len = 1u64 << 40;
    let Ok(base) = mmap(0, len) else {
        return v.check("mmap 1 TiB", false, ());
    };
    let base = base as u64;
    for offset in [0, len / 2, len - PAGE] {
        // SAFETY: inside the mapping just made (demand-zero, read-write).
        unsafe { ((base + offset) as *mut u64).write_volatile(offset) };
    }
    println!("harden: 1 TiB mapped at {base:#x}, 3 pages touched");
    let started = ulib::time::now_ns();
    let got = call(Syscall::Munmap, &[base, len]);
    let took_ms = (ulib::time::now_ns() - started) / 1_000_000;
    println!("harden: munmap of 1 TiB took {took_ms} ms");
    v.check("munmap", got == Ok(0), got);
    v.check("munmap of 1 TiB under a second", took_ms < 1000, took_ms);
}

/// Names per process are limited.
fn names(v: &mut Verdict) {
    let me = ulib::process::getpid();
    let limit = ulib::abi::limits::NAMES_PER_PROCESS;
    let mut linked = 0;
    let mut refused = None;
    for i in 0..limit + 8 {
        let name = alloc::format!("harden-{}-{i}", me.raw());
        match ulib::process::name_link(&name, me) {
            Ok(()) => linked += 1,
            Err(errno) => {
                refused = Some(errno);
                break;
            }
        }
    }
    v.check("names up to the limit", linked == limit, linked);
    v.check(
        "the next name refused with ENOSPC",
        refused == Some(Errno::ENOSPC),
        refused,
    );
    let name = alloc::format!("harden-{}-0", me.raw());
    v.check("unlink one", ulib::process::name_unlink(&name).is_ok(), ());
    v.check(
        "room again",
        ulib::process::name_link(&name, me).is_ok(),
        (),
    );
}

/// Flood 16 of our own inboxes with 1,024 messages each: the kernel accepts only our quota,
/// and says so (`EAGAIN`) for every message beyond it instead of dropping it after `Ok`.
/// The kernel side checks it queued exactly what was accepted (`harden: flooded N`).
fn inbox_flood(v: &mut Verdict) {
    let me = ulib::process::getpid();
    let payload = [0x5Au8; 112];
    let (mut accepted, mut refused) = (0usize, 0usize);
    for port in 0..16u16 {
        let inbox = ulib::mailbox::Inbox::create(100 + port);
        let outbox = ulib::mailbox::Outbox::open(me, 100 + port);
        let (Ok(inbox), Ok(outbox)) = (inbox, outbox) else {
            return v.check("inbox and outbox", false, port);
        };
        core::mem::forget(inbox);
        for _ in 0..1024 {
            match outbox.send(&payload) {
                Ok(()) => accepted += 1,
                Err(Errno::EAGAIN) => refused += 1,
                Err(errno) => return v.check("send", false, errno),
            }
        }
    }
    let quota = ulib::abi::limits::QUEUED_MESSAGES_PER_PROCESS;
    v.check("accepted up to the quota", accepted == quota, accepted);
    v.check("the rest refused", refused == 16 * 1024 - quota, refused);
    println!("harden: flooded {accepted}");
    ulib::time::sleep_ms(60_000);
}

/// `mailbox_read_from` names the sender; a write says why it was not accepted.
fn mailbox_from(v: &mut Verdict) {
    let me = ulib::process::getpid();
    let (Ok(inbox), Ok(outbox)) = (
        ulib::mailbox::Inbox::create(200),
        ulib::mailbox::Outbox::open(me, 200),
    ) else {
        return v.check("inbox and outbox", false, ());
    };
    let sent = outbox.send(b"who am I");
    v.check("send to self", sent.is_ok(), sent);
    let got = inbox.recv_from();
    v.check(
        "read_from names the sender",
        got == Ok((b"who am I".to_vec(), Some(me))),
        got,
    );
    let no_inbox = ulib::mailbox::Outbox::open(me, 201).map(|o| o.send(b"x"));
    v.check(
        "no inbox: ECONNREFUSED",
        no_inbox == Ok(Err(Errno::ECONNREFUSED)),
        no_inbox,
    );
    let stranger = Pid::new(ulib::process::cluster_id(), Pid::MAX_LOCAL).unwrap_or(me);
    let no_one = ulib::mailbox::Outbox::open(stranger, 200).map(|o| o.send(b"x"));
    v.check(
        "no such process: ESRCH",
        no_one == Ok(Err(Errno::ESRCH)),
        no_one,
    );
    let mut buffer = [0u8; 112];
    let bad = call(
        Syscall::MailboxReadFrom,
        &[0, buffer.as_mut_ptr() as u64, 112, 0xFFFF_8000_0000_0000],
    );
    v.check(
        "kernel-half sender pointer: EFAULT",
        bad == Err(Errno::EFAULT),
        bad,
    );
}

/// Children not yet reaped are limited; waiting for them makes room again.
fn children(v: &mut Verdict) {
    let limit = ulib::abi::limits::CHILDREN_PER_PROCESS;
    let mut spawned = 0;
    let mut refused = None;
    for _ in 0..limit + 4 {
        match ulib::process::spawn("hello", None, &["child"]) {
            Ok(_) => spawned += 1,
            Err(errno) => {
                refused = Some(errno);
                break;
            }
        }
    }
    v.check("children up to the limit", spawned == limit, spawned);
    v.check(
        "the next spawn refused with EAGAIN",
        refused == Some(Errno::EAGAIN),
        refused,
    );
    for _ in 0..spawned {
        let _ = ulib::process::wait(None);
    }
    let got = ulib::process::spawn("hello", None, &["child"]);
    v.check("room again after wait", got.is_ok(), got);
    let _ = ulib::process::wait(None);
}

/// A parent that ends without waiting for its dead child: the kernel must not keep the
/// child's zombie forever (the kernel side checks, with the child's pid printed here).
fn orphan(v: &mut Verdict) {
    let Ok(child) = ulib::process::spawn("hello", None, &["orphan"]) else {
        return v.check("spawn", false, ());
    };
    let zombie = |pid: Pid| {
        ulib::process::list()
            .ok()
            .and_then(|l| l.into_iter().find(|r| r.pid == pid.raw()))
            .is_some_and(|r| r.state == 3)
    };
    let deadline = ulib::time::now_ns() + 30_000_000_000;
    while !zombie(child) && ulib::time::now_ns() < deadline {
        ulib::time::sleep_ms(5);
    }
    v.check("the child became a zombie", zombie(child), child);
    println!("harden: orphaned zombie {}", child.raw());
}

/// `migration_stats_ex` refuses a short, partial or misaligned buffer and a bad record size
/// (`EINVAL`) and a buffer past the mapping (`EFAULT`) before it writes anything.
fn stats_ex_bounds(v: &mut Verdict, page: u64) {
    let size = ulib::abi::MigrationRecordEx::SIZE as u64;
    let stats_ex = |buf: u64, len: u64, record_size: u64| {
        call(Syscall::MigrationStatsEx, &[buf, len, record_size])
    };
    // Names without `format!`: a heap allocation could map memory right after `page`.
    let cases: [(&str, u64, u64, u64, Errno); 7] = [
        (
            "migration_stats_ex, a short buffer",
            page,
            size - 8,
            size,
            Errno::EINVAL,
        ),
        (
            "migration_stats_ex, a partial record",
            page,
            size + 8,
            size,
            Errno::EINVAL,
        ),
        (
            "migration_stats_ex, a misaligned buffer",
            page + 4,
            size,
            size,
            Errno::EINVAL,
        ),
        (
            "migration_stats_ex, a record under 64 bytes",
            page,
            120,
            60,
            Errno::EINVAL,
        ),
        (
            "migration_stats_ex, a record not 8-aligned",
            page,
            130,
            65,
            Errno::EINVAL,
        ),
        (
            "migration_stats_ex, a record over 4 KiB",
            page,
            8192,
            8192,
            Errno::EINVAL,
        ),
        (
            "migration_stats_ex past the mapping",
            page + PAGE - size,
            2 * size,
            size,
            Errno::EFAULT,
        ),
    ];
    for (what, buf, len, record_size, errno) in cases {
        let got = stats_ex(buf, len, record_size);
        v.check(what, got == Err(errno), got);
    }
    let got = stats_ex(page, 0, size);
    v.check("migration_stats_ex counting only", got.is_ok(), got);
}
