//! Tessera's multikernel protocols, kept apart from the kernel so the host can test them.
//!
//! * [`ports`]: the one registry of reserved NoC ports.
//! * [`message`]: the daemons' wire format (one 120-byte mailbox payload per message).
//! * [`outqueue`]: their outgoing messages, queued per destination and bounded.
//! * [`migrate`]: the migration protocol — presumed-abort two-phase commit — as sans-IO
//!   state machines ([`migrate::Source`], [`migrate::Destination`]) that take messages, ticks
//!   and local events and return [`migrate::Action`]s. The kernel daemon drives them against
//!   the real process table; `tests/migration_sim.rs` drives them against a simulated NoC that
//!   drops, duplicates, reorders and delays messages and crashes clusters.
//! * [`precopy`]: pre-copy's decision after each round (another, throttled harder, or stop).
//!
//! `no_std` + `alloc`; `std` only for the host tests.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod message;
pub mod migrate;
pub mod outqueue;
pub mod ports;
pub mod postcopy;
pub mod precopy;
