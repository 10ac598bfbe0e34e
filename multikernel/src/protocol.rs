//! The daemons' messages: one 120-byte mailbox payload each, fixed little-endian layout.
//!
//! ```text
//!  0      kind
//!  1..4   reserved (0)
//!  4..8   sequence (matches a reply to its request)
//!  8..    kind-specific fields
//! ```
//! Every message is decoded with checks; an unknown kind or bad field is dropped and counted.

use abi::{ClusterId, Pid};
use uarea::image::{Manifest, MANIFEST_LEN};

/// Payload length of a mailbox message.
pub const PAYLOAD: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Source → destination: here is a process, shall I send it?
    Offer { sequence: u32, manifest: Manifest },
    /// Destination → source: yes; the portal is allowed.
    Accept { sequence: u32 },
    /// Destination → source: no (busy, no memory, pid exists, refusing).
    Refuse { sequence: u32, reason: u32 },
    /// Source → destination: the whole body was sent; its CRC.
    Done { sequence: u32, crc: u32 },
    /// Destination → source: the process runs here now.
    Committed { sequence: u32 },
    /// Destination → source: the image was bad or could not be restored.
    Failed { sequence: u32, reason: u32 },
    /// Host → birth cluster: `pid` now lives on `cluster`.
    Located { pid: Pid, cluster: ClusterId },
    /// Host → birth cluster: `pid` exited with `code`.
    Exited { pid: Pid, code: i32 },
    /// Anyone → the cluster that should act: move `pid` to `destination`.
    MigrateRequest { pid: Pid, destination: ClusterId },
    /// Administration: refuse (or accept again) incoming migrations — a cluster being drained.
    SetRefusing { on: bool },
    /// Anyone → the cluster that should act: end `pid` as if killed.
    Kill { pid: Pid },
    /// Monitor → every cluster: report your processes.
    ListRequest,
    /// Reply: one process of the replying cluster (its `proc_list` record).
    ListEntry { record: [u8; 64] },
    /// Name service: `name` now stands for `pid` (broadcast to every cluster).
    NameLink { pid: Pid, name: heapless_str::Name },
    /// Name service: `name` no longer stands for `pid`.
    NameUnlink { pid: Pid, name: heapless_str::Name },
    /// Parent's cluster → target: create `program` as `pid` (born at the parent's cluster).
    Spawn {
        pid: Pid,
        parent: Pid,
        program: heapless_str::Name,
        args: heapless_str::Args,
    },
}

/// Fixed-capacity strings for [`Message::Spawn`].
pub mod heapless_str {
    /// A program name of at most 32 bytes.
    pub type Name = heapless::String<32>;
    /// A NUL-separated argument block of at most 64 bytes.
    pub type Args = heapless::String<64>;
}

/// Why a destination declined or failed (the `reason` field).
pub mod reason {
    pub const BUSY: u32 = 1;
    pub const NO_MEMORY: u32 = 2;
    pub const EXISTS: u32 = 3;
    pub const REFUSING: u32 = 4;
    pub const BAD_IMAGE: u32 = 5;
    pub const TIMEOUT: u32 = 6;
}

const OFFER: u8 = 1;
const ACCEPT: u8 = 2;
const REFUSE: u8 = 3;
const DONE: u8 = 4;
const COMMITTED: u8 = 5;
const FAILED: u8 = 6;
const LOCATED: u8 = 7;
const EXITED: u8 = 8;
const MIGRATE_REQUEST: u8 = 9;
const SET_REFUSING: u8 = 10;
const SPAWN: u8 = 11;
const KILL: u8 = 12;
const NAME_LINK: u8 = 13;
const NAME_UNLINK: u8 = 14;
const LIST_REQUEST: u8 = 15;
const LIST_ENTRY: u8 = 16;

impl Message {
    pub fn encode(&self) -> [u8; PAYLOAD] {
        let mut out = [0u8; PAYLOAD];
        let (kind, sequence) = match *self {
            Message::Offer { sequence, manifest } => {
                out[8..8 + MANIFEST_LEN].copy_from_slice(&manifest.encode());
                (OFFER, sequence)
            }
            Message::Accept { sequence } => (ACCEPT, sequence),
            Message::Refuse { sequence, reason } | Message::Failed { sequence, reason } => {
                out[8..12].copy_from_slice(&reason.to_le_bytes());
                (
                    if matches!(self, Message::Refuse { .. }) {
                        REFUSE
                    } else {
                        FAILED
                    },
                    sequence,
                )
            }
            Message::Done { sequence, crc } => {
                out[8..12].copy_from_slice(&crc.to_le_bytes());
                (DONE, sequence)
            }
            Message::Committed { sequence } => (COMMITTED, sequence),
            Message::Located { pid, cluster } => {
                out[8..12].copy_from_slice(&pid.raw().to_le_bytes());
                out[12..14].copy_from_slice(&cluster.0.to_le_bytes());
                (LOCATED, 0)
            }
            Message::Exited { pid, code } => {
                out[8..12].copy_from_slice(&pid.raw().to_le_bytes());
                out[12..16].copy_from_slice(&code.to_le_bytes());
                (EXITED, 0)
            }
            Message::MigrateRequest { pid, destination } => {
                out[8..12].copy_from_slice(&pid.raw().to_le_bytes());
                out[12..14].copy_from_slice(&destination.0.to_le_bytes());
                (MIGRATE_REQUEST, 0)
            }
            Message::SetRefusing { on } => {
                out[8] = on as u8;
                (SET_REFUSING, 0)
            }
            Message::Kill { pid } => {
                out[8..12].copy_from_slice(&pid.raw().to_le_bytes());
                (KILL, 0)
            }
            Message::ListRequest => (LIST_REQUEST, 0),
            Message::ListEntry { record } => {
                out[8..72].copy_from_slice(&record);
                (LIST_ENTRY, 0)
            }
            Message::NameLink { pid, ref name } | Message::NameUnlink { pid, ref name } => {
                out[8..12].copy_from_slice(&pid.raw().to_le_bytes());
                out[12] = name.len() as u8;
                out[16..16 + name.len()].copy_from_slice(name.as_bytes());
                (
                    if matches!(self, Message::NameLink { .. }) {
                        NAME_LINK
                    } else {
                        NAME_UNLINK
                    },
                    0,
                )
            }
            Message::Spawn {
                pid,
                parent,
                ref program,
                ref args,
            } => {
                out[8..12].copy_from_slice(&pid.raw().to_le_bytes());
                out[12..16].copy_from_slice(&parent.raw().to_le_bytes());
                out[16] = program.len() as u8;
                out[17] = args.len() as u8;
                out[18..18 + program.len()].copy_from_slice(program.as_bytes());
                out[50..50 + args.len()].copy_from_slice(args.as_bytes());
                (SPAWN, 0)
            }
        };
        out[0] = kind;
        out[4..8].copy_from_slice(&sequence.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8; PAYLOAD]) -> Option<Message> {
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        if bytes[1..4] != [0, 0, 0] {
            return None;
        }
        let sequence = u32_at(4);
        Some(match bytes[0] {
            OFFER => Message::Offer {
                sequence,
                manifest: Manifest::decode(&bytes[8..8 + MANIFEST_LEN]).ok()?,
            },
            ACCEPT => Message::Accept { sequence },
            REFUSE => Message::Refuse {
                sequence,
                reason: u32_at(8),
            },
            DONE => Message::Done {
                sequence,
                crc: u32_at(8),
            },
            COMMITTED => Message::Committed { sequence },
            FAILED => Message::Failed {
                sequence,
                reason: u32_at(8),
            },
            LOCATED => Message::Located {
                pid: Pid::from_raw(u32_at(8))?,
                cluster: ClusterId(u16_at(12)),
            },
            EXITED => Message::Exited {
                pid: Pid::from_raw(u32_at(8))?,
                code: u32_at(12) as i32,
            },
            MIGRATE_REQUEST => Message::MigrateRequest {
                pid: Pid::from_raw(u32_at(8))?,
                destination: ClusterId(u16_at(12)),
            },
            SET_REFUSING if bytes[8] <= 1 => Message::SetRefusing { on: bytes[8] == 1 },
            LIST_REQUEST => Message::ListRequest,
            LIST_ENTRY => Message::ListEntry {
                record: bytes[8..72].try_into().ok()?,
            },
            NAME_LINK | NAME_UNLINK => {
                let len = bytes[12] as usize;
                if len == 0 || len > 32 {
                    return None;
                }
                let name =
                    heapless_str::Name::try_from(core::str::from_utf8(&bytes[16..16 + len]).ok()?)
                        .ok()?;
                let pid = Pid::from_raw(u32_at(8))?;
                if bytes[0] == NAME_LINK {
                    Message::NameLink { pid, name }
                } else {
                    Message::NameUnlink { pid, name }
                }
            }
            KILL => Message::Kill {
                pid: Pid::from_raw(u32_at(8))?,
            },
            SPAWN => {
                let (name_len, args_len) = (bytes[16] as usize, bytes[17] as usize);
                if name_len > 32 || args_len > 64 {
                    return None;
                }
                let program = core::str::from_utf8(&bytes[18..18 + name_len]).ok()?;
                let args = core::str::from_utf8(&bytes[50..50 + args_len]).ok()?;
                Message::Spawn {
                    pid: Pid::from_raw(u32_at(8))?,
                    parent: Pid::from_raw(u32_at(12))?,
                    program: heapless_str::Name::try_from(program).ok()?,
                    args: heapless_str::Args::try_from(args).ok()?,
                }
            }
            _ => return None,
        })
    }
}
