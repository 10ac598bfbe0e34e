//! `abitest syscalls`: mailboxes, portals, names and sync points on this cluster.

use alloc::vec::Vec;
use ulib::abi::{Errno, Syscall};
use ulib::raw::{call, syscall6};

use super::{Tally, KERNEL, NULL};

pub fn check(t: &mut Tally, pid: Result<usize, Errno>, page: *mut u8) {
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
}
