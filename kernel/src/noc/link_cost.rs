//! What a send costs on the mesh, in the bytes noc-sim's link model charges every link of
//! its route (`noc-sim/src/router/forward.rs` for messages, `router/dma.rs` for portal
//! transfers), so a daemon can count the link bytes of its own work without reading the
//! router's per-link counters, which the guest cannot see.
//!
//! The receiver's portal grants (`PortalAllow`) and the router's completions are not counted:
//! they are the portal's own protocol, a few dozen bytes per transfer.

use noc_proto::wire::{HEADER_LEN, MAILBOX_PAYLOAD};

const PAGE: u64 = 4096;

/// One mailbox message (a daemon message: header and its 120-byte payload).
pub const fn message() -> u64 {
    (HEADER_LEN + MAILBOX_PAYLOAD) as u64
}

/// One portal transfer of `bytes` (the engine moves them under one header).
pub const fn transfer(bytes: usize) -> u64 {
    (bytes + HEADER_LEN) as u64
}

/// One portal transfer of `frames` whole pages.
pub const fn frames(frames: usize) -> u64 {
    frames as u64 * PAGE + HEADER_LEN as u64
}
