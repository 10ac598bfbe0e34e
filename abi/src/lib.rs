//! The Tessera kernel ABI, defined once for the kernel and for userland.
//!
//! Everything that crosses the user/kernel boundary lives here: syscall
//! numbers ([`Syscall`]), error codes ([`Errno`]), the return-value encoding
//! ([`SyscallResult`]), the register calling convention ([`conv`]), the global
//! id newtypes ([`Pid`], [`Tid`], [`ClusterId`], [`PortId`]) and the argument
//! types and limits of each call ([`types`]).
//!
//! Stability rule: a syscall number or an errno value, once published, never
//! changes meaning. New calls take new numbers; removed calls leave a hole.
//! `docs/abi.md` is the human-readable table of the same facts, and the tests
//! in this crate pin every number.
//!
//! The crate is `no_std`, has no `unsafe`, and no dependencies beyond
//! `bitflags` (and `serde` behind the `serde` feature, for the `uarea` crate).

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod conv;
pub mod errno;
pub mod ids;
pub mod limits;
pub mod migrate;
pub mod records;
pub mod records_ex;
pub mod syscall;
pub mod types;

pub use errno::{Errno, SyscallResult};
pub use ids::{ClusterId, Pid, PortId, Tid};
pub use migrate::{MigrateOptions, Strategy};
pub use records::MigrationRecord;
pub use records_ex::MigrationRecordEx;
pub use syscall::{Syscall, UnknownSyscall};
pub use types::{
    ClockId, MapFlags, ProcessInfo, ProcessState, Prot, SyncMode, ANY_CHILD, ANY_CLUSTER,
    MAILBOX_PAYLOAD_SIZE, PORTAL_MAX_TRANSFER, PROC_NAME_MAX, SPAWN_ARGS_MAX, SYNC_MAX_MEMBERS,
};
