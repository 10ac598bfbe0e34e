//! Syscall numbers.
//!
//! Numbers are grouped by subsystem in blocks of 16 so each group can grow
//! without renumbering the others:
//!
//! | block     | group |
//! |-----------|-------|
//! | `0..16`   | process and thread life, time, topology |
//! | `16..32`  | memory and futexes |
//! | `32..48`  | NoC mailboxes |
//! | `48..64`  | NoC portals |
//! | `64..80`  | NoC sync points |
//! | `80..96`  | process management (spawn, wait, kill, list) |
//! | `96..112` | migration (reserved, added by the migration work) |
//!
//! A number, once given, is never reused for another call. `docs/abi.md`
//! describes arguments, return values and errors of each call.

use core::fmt;

macro_rules! syscalls {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal => $name:literal, $args:literal; )*) => {
        /// A syscall number, as passed in `rax`.
        #[repr(u64)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Syscall {
            $( $(#[$doc])* $variant = $num, )*
        }

        impl Syscall {
            /// Every syscall, in numeric order.
            pub const ALL: &'static [Syscall] = &[$(Syscall::$variant,)*];

            /// The number passed in `rax`.
            pub const fn number(self) -> u64 {
                self as u64
            }

            /// The syscall's name as written in `docs/abi.md` (`"mailbox_read"`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Syscall::$variant => $name, )*
                }
            }

            /// How many argument registers the call reads (the rest are ignored).
            pub const fn arg_count(self) -> usize {
                match self {
                    $( Syscall::$variant => $args, )*
                }
            }

            /// The syscall with number `number`, if there is one.
            pub const fn from_number(number: u64) -> Option<Syscall> {
                match number {
                    $( $num => Some(Syscall::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

syscalls! {
    /// `exit(code: i32) -> !`: end the whole process.
    Exit = 0 => "exit", 1;
    /// `write(buf: *const u8, len: usize) -> usize`: write bytes to the console.
    Write = 1 => "write", 2;
    /// `getpid() -> Pid`.
    GetPid = 2 => "getpid", 0;
    /// `gettid() -> Tid`.
    GetTid = 3 => "gettid", 0;
    /// `thread_create(entry: usize, arg: usize, stack_size: usize) -> Tid`.
    ThreadCreate = 4 => "thread_create", 3;
    /// `thread_join(tid: Tid) -> usize`: wait for a thread, return its exit value.
    ThreadJoin = 5 => "thread_join", 1;
    /// `thread_exit(value: usize) -> !`: end the calling thread.
    ThreadExit = 6 => "thread_exit", 1;
    /// `yield() -> 0`: give up the rest of the quantum.
    Yield = 7 => "yield", 0;
    /// `sleep(ns: u64) -> 0`: block for at least `ns` nanoseconds.
    Sleep = 8 => "sleep", 1;
    /// `clock_ns(clock: ClockId) -> u64`: read a clock in nanoseconds.
    ClockNs = 9 => "clock_ns", 1;
    /// `cluster_id() -> ClusterId`: the cluster the caller runs on now.
    ClusterIdOf = 10 => "cluster_id", 0;
    /// `cluster_count() -> usize`: number of compute clusters in the machine.
    ClusterCount = 11 => "cluster_count", 0;

    /// `mmap(addr: usize, len: usize, prot: Prot, flags: MapFlags) -> usize`: map anonymous zeroed memory.
    Mmap = 16 => "mmap", 4;
    /// `munmap(addr: usize, len: usize) -> 0`.
    Munmap = 17 => "munmap", 2;
    /// `futex_wait(uaddr: *const u32, expected: u32, timeout_ns: u64) -> 0`.
    FutexWait = 18 => "futex_wait", 3;
    /// `futex_wake(uaddr: *const u32, count: usize) -> usize`: number of threads woken.
    FutexWake = 19 => "futex_wake", 2;

    /// `mailbox_create(port: PortId) -> md`: open the caller's inbox on `port`.
    MailboxCreate = 32 => "mailbox_create", 1;
    /// `mailbox_open(pid: Pid, port: PortId) -> md`: open a sending end to `(pid, port)`.
    MailboxOpen = 33 => "mailbox_open", 2;
    /// `mailbox_read(md, buf: *mut u8, len: usize) -> usize`: receive one message.
    MailboxRead = 34 => "mailbox_read", 3;
    /// `mailbox_write(md, buf: *const u8, len: usize) -> usize`: send one message.
    MailboxWrite = 35 => "mailbox_write", 3;
    /// `mailbox_close(md) -> 0`.
    MailboxClose = 36 => "mailbox_close", 1;
    /// `mailbox_read_from(md, buf: *mut u8, len: usize, from: *mut Pid) -> usize`: receive one
    /// message and learn its sender.
    MailboxReadFrom = 37 => "mailbox_read_from", 4;

    /// `portal_create(port: PortId) -> pd`: open the caller's receiving portal on `port`.
    PortalCreate = 48 => "portal_create", 1;
    /// `portal_allow(pd, pid: Pid, port: PortId) -> 0`: accept the next transfer from `(pid, port)`.
    PortalAllow = 49 => "portal_allow", 3;
    /// `portal_open(port: PortId, pid: Pid, remote: PortId) -> pd`: open a sending portal.
    PortalOpen = 50 => "portal_open", 3;
    /// `portal_read(pd, buf: *mut u8, len: usize) -> usize`.
    PortalRead = 51 => "portal_read", 3;
    /// `portal_write(pd, buf: *const u8, len: usize) -> usize`.
    PortalWrite = 52 => "portal_write", 3;
    /// `portal_close(pd) -> 0`.
    PortalClose = 53 => "portal_close", 1;

    /// `sync_create(pids: *const Pid, count: usize, mode: SyncMode) -> sd`: receiving side of a barrier.
    SyncCreate = 64 => "sync_create", 3;
    /// `sync_open(pids: *const Pid, count: usize, mode: SyncMode) -> sd`: signalling side.
    SyncOpen = 65 => "sync_open", 3;
    /// `sync_wait(sd) -> 0`.
    SyncWait = 66 => "sync_wait", 1;
    /// `sync_signal(sd) -> 0`.
    SyncSignal = 67 => "sync_signal", 1;
    /// `sync_close(sd) -> 0`.
    SyncClose = 68 => "sync_close", 1;

    /// `spawn(name: *const u8, name_len: usize, cluster: u64, args: *const u8, args_len: usize) -> Pid`.
    Spawn = 80 => "spawn", 5;
    /// `wait(pid: u64, status: *mut i32) -> Pid`: reap a child (`ANY_CHILD` for any).
    Wait = 81 => "wait", 2;
    /// `kill(pid: Pid) -> 0`: terminate a process.
    Kill = 82 => "kill", 1;
    /// `proc_list(buf: *mut ProcessInfo, capacity: usize) -> usize`: list this cluster's processes.
    ProcList = 83 => "proc_list", 2;
    /// `name_link(name: *const u8, len: usize, pid: Pid) -> 0`: publish `name` for `pid` machine-wide.
    NameLink = 84 => "name_link", 3;
    /// `name_lookup(name: *const u8, len: usize) -> Pid`.
    NameLookup = 85 => "name_lookup", 2;
    /// `name_unlink(name: *const u8, len: usize) -> 0`.
    NameUnlink = 86 => "name_unlink", 2;

    /// `migrate(pid: Pid, cluster: ClusterId) -> 0`: move a process to another cluster.
    Migrate = 96 => "migrate", 2;
    /// `migration_stats(buf: *mut u8, len: usize) -> usize`: the latest migration records.
    MigrationStats = 97 => "migration_stats", 2;
    /// `migrate_with(pid: Pid, cluster: ClusterId, options: *const u8) -> 0`: `migrate` with
    /// a strategy and its tuning (an [`crate::MigrateOptions`] block; 0 means stop-and-copy).
    MigrateWith = 98 => "migrate_with", 3;
    /// `migration_stats_ex(buf: *mut u8, len: usize, record_size: usize) -> usize`: the
    /// latest migration records with every figure ([`crate::MigrationRecordEx`]), each cut
    /// or zero-padded to the caller's `record_size`.
    MigrationStatsEx = 99 => "migration_stats_ex", 3;
}

/// A number in `rax` that names no syscall (the kernel answers `ENOSYS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownSyscall(pub u64);

impl fmt::Display for UnknownSyscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown syscall number {}", self.0)
    }
}

impl TryFrom<u64> for Syscall {
    type Error = UnknownSyscall;

    fn try_from(number: u64) -> Result<Self, Self::Error> {
        Syscall::from_number(number).ok_or(UnknownSyscall(number))
    }
}

impl From<Syscall> for u64 {
    fn from(call: Syscall) -> u64 {
        call as u64
    }
}

impl fmt::Display for Syscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::conv::MAX_ARGS;

    #[test]
    fn every_number_round_trips() {
        for &call in Syscall::ALL {
            assert_eq!(Syscall::try_from(call.number()), Ok(call));
            assert_eq!(u64::from(call), call.number());
        }
    }

    #[test]
    fn unknown_numbers_are_rejected() {
        let known = |n: u64| Syscall::ALL.iter().any(|c| c.number() == n);
        for n in (0..512).chain([u64::MAX, u64::MAX - 1, 1 << 32, 1 << 63]) {
            if !known(n) {
                assert_eq!(Syscall::try_from(n), Err(UnknownSyscall(n)));
            }
        }
    }

    #[test]
    fn numbers_and_names_are_unique_and_sorted() {
        for pair in Syscall::ALL.windows(2) {
            assert!(pair[0].number() < pair[1].number(), "{pair:?}");
        }
        for (i, a) in Syscall::ALL.iter().enumerate() {
            for b in &Syscall::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn arg_counts_fit_the_registers() {
        for &call in Syscall::ALL {
            assert!(call.arg_count() <= MAX_ARGS, "{call}");
        }
    }

    /// `docs/abi.md` has one table row per syscall, starting `| number | `name` |`.
    #[test]
    fn docs_table_lists_every_syscall() {
        let doc = include_str!("../../docs/abi.md");
        for &call in Syscall::ALL {
            let row = row(call.number(), call.name());
            assert!(
                doc.lines().any(|line| line.starts_with(&row)),
                "docs/abi.md has no row for {call} ({})",
                call.number()
            );
        }
    }

    /// `docs/abi.md` lists every error code.
    #[test]
    fn docs_table_lists_every_errno() {
        let doc = include_str!("../../docs/abi.md");
        for &errno in crate::Errno::ALL {
            let row = row(errno.code() as u64, errno.name());
            assert!(
                doc.lines().any(|line| line.starts_with(&row)),
                "docs/abi.md has no row for {}",
                errno.name()
            );
        }
    }

    /// `| 42 | `name` |`, the start of a table row.
    fn row(number: u64, name: &str) -> std::string::String {
        std::format!("| {number} | `{name}` |")
    }

    /// Published numbers are frozen: this table must only ever grow.
    #[test]
    fn published_numbers_are_stable() {
        let published: &[(u64, &str)] = &[
            (0, "exit"),
            (1, "write"),
            (2, "getpid"),
            (3, "gettid"),
            (4, "thread_create"),
            (5, "thread_join"),
            (6, "thread_exit"),
            (7, "yield"),
            (8, "sleep"),
            (9, "clock_ns"),
            (10, "cluster_id"),
            (11, "cluster_count"),
            (16, "mmap"),
            (17, "munmap"),
            (18, "futex_wait"),
            (19, "futex_wake"),
            (32, "mailbox_create"),
            (33, "mailbox_open"),
            (34, "mailbox_read"),
            (35, "mailbox_write"),
            (36, "mailbox_close"),
            (37, "mailbox_read_from"),
            (48, "portal_create"),
            (49, "portal_allow"),
            (50, "portal_open"),
            (51, "portal_read"),
            (52, "portal_write"),
            (53, "portal_close"),
            (64, "sync_create"),
            (65, "sync_open"),
            (66, "sync_wait"),
            (67, "sync_signal"),
            (68, "sync_close"),
            (80, "spawn"),
            (81, "wait"),
            (82, "kill"),
            (83, "proc_list"),
            (84, "name_link"),
            (85, "name_lookup"),
            (86, "name_unlink"),
            (96, "migrate"),
            (97, "migration_stats"),
            (98, "migrate_with"),
            (99, "migration_stats_ex"),
        ];
        for &(number, name) in published {
            assert_eq!(Syscall::try_from(number).map(Syscall::name), Ok(name));
        }
        assert_eq!(published.len(), Syscall::ALL.len());
    }
}
