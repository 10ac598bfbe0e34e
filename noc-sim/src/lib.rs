//! # noc-sim — Tessera's network-on-chip simulator
//!
//! One QEMU per cluster; noc-sim joins them. It is the ivshmem server of every
//! cluster's `ivshmem-doorbell` device ([`ivshmem`]), owns the shared memory
//! laid out by [`noc_proto::layout`], and acts as the NoC router ([`router`]):
//! it copies each message from the sender's TX ring into the receiver's RX
//! ring after the delay given by the chip model ([`topology`], [`routing`],
//! [`link_model`]), validates everything it forwards and counts all traffic.
//! It also keeps the chip clock ([`timesync`]): one time base for every cluster.
//! [`client`] is a QEMU stand-in used by tests. See `docs/noc.md`.

pub mod client;
pub mod control;
pub mod guest_ram;
pub mod ivshmem;
pub mod link_model;
pub mod router;
pub mod routing;
pub mod shm;
pub mod timesync;
pub mod topology;
