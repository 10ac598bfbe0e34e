//! # noc-proto — the one definition of Tessera's NoC
//!
//! Everything that crosses the simulated network-on-chip, or sits in the
//! ivshmem shared memory between a guest kernel and the noc-sim router, is
//! defined here and nowhere else: the wire header ([`wire`]), the shared
//! memory layout ([`layout`]) and the lock-free SPSC ring ([`ring`]) that
//! carries messages through it. The guest NoC driver (no_std, memory mapped
//! from PCI BAR2) and noc-sim (host, mmap'd memfd) both link this crate, so the
//! two ends cannot drift apart; each format carries a version number
//! ([`wire::WIRE_VERSION`], [`layout::LAYOUT_VERSION`]). The chip clock (one time base
//! for every cluster) and its time-sync exchange through the control block are in [`clock`].
//!
//! See `docs/noc.md` in the repository for the full protocol description.
//!
//! Typical guest use:
//!
//! ```no_run
//! use noc_proto::{layout::{Layout, Slice}, wire::{ClusterId, Header, PortId, MAX_MESSAGE}};
//! # let bar2: *mut u8 = core::ptr::null_mut(); let bar2_size = 64 << 20; let ivposition = 0u16;
//! let layout = Layout::new(bar2_size).unwrap();
//! let me = ClusterId(ivposition);
//! // SAFETY: BAR2 is mapped for bar2_size bytes.
//! let slice = unsafe { Slice::in_region(bar2, layout, me) }.unwrap();
//! let info = slice.control().validate(&layout, me).unwrap();
//! slice.tx().try_push(&Header::mailbox(me, ClusterId(1), PortId(0), 0), &[0u8; 120]).unwrap();
//! // ... ring the router's doorbell: BAR0 + 12 <- (info.router_peer_id << 16) | 0
//! let mut buf = [0u8; MAX_MESSAGE];
//! while let Ok(Some((hdr, payload))) = slice.rx().recv_message(&mut buf, info.cluster_count) {
//!     let _ = (hdr, payload);
//! }
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod clock;
pub mod dma;
pub mod layout;
pub mod ring;
pub mod wire;

pub use layout::{ControlBlock, Layout, LayoutError, Slice, MAX_CLUSTERS, ROUTER_PEER_ID};
pub use ring::{RecvError, Ring, RingError};
pub use wire::{ClusterId, Header, Kind, PortId, WireError};
