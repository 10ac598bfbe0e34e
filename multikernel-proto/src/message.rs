//! The daemons' messages: one 120-byte mailbox payload each, fixed little-endian layout,
//! shared by every cluster (they all run the same build).
//!
//! ```text
//!  0      kind (see the `kind` constants)
//!  1      wire version (WIRE_VERSION)
//!  2..4   reserved (0)
//!  4..8   sequence: the source cluster's migration sequence number (0 for other kinds)
//!  8..    kind-specific fields; every byte not named by the kind is 0
//! ```
//!
//! Decoding is strict: a payload decodes only if re-encoding the result gives the same bytes,
//! so padding and unused fields must be zero, and every rejection is a typed
//! [`DecodeError`] (the daemon drops the message and counts it).

use abi::{ClusterId, Pid};
use uarea::image::{ImageError, Manifest, MANIFEST_LEN};

mod decode;
#[cfg(test)]
mod tests;

/// Payload length of a mailbox message.
pub const PAYLOAD: usize = 120;
/// Version of this layout, in byte 1 of every message.
pub const WIRE_VERSION: u8 = 1;

/// Fixed-capacity strings for the name service and [`Message::Spawn`].
pub mod heapless_str {
    /// A program or service name of at most 32 bytes.
    pub type Name = heapless::String<32>;
    /// A NUL-separated argument block of at most 64 bytes.
    pub type Args = heapless::String<64>;
}

/// Why a destination declined or failed a migration (the `reason` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Reason {
    /// Another incoming migration is in progress.
    Busy = 1,
    /// No memory for the image.
    NoMemory = 2,
    /// The pid already exists here.
    Exists = 3,
    /// The cluster is being drained and refuses incoming migrations.
    Refusing = 4,
    /// The image did not validate (CRC, layout, UArea).
    BadImage = 5,
    /// The image stopped arriving.
    Timeout = 6,
}

impl Reason {
    fn from_u32(raw: u32) -> Option<Reason> {
        Some(match raw {
            1 => Reason::Busy,
            2 => Reason::NoMemory,
            3 => Reason::Exists,
            4 => Reason::Refusing,
            5 => Reason::BadImage,
            6 => Reason::Timeout,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Source → destination: here is a process, shall I send it? (retried until answered)
    Offer { sequence: u32, manifest: Manifest },
    /// Destination → source: yes, the image portal is allowed. Re-sent while the destination
    /// waits for the image, as a question: a source that no longer knows `sequence` answers
    /// [`Message::Abort`].
    Accept { sequence: u32 },
    /// Destination → source: no.
    Refuse { sequence: u32, reason: Reason },
    /// Source → destination: the whole body was sent; its CRC (retried until answered).
    Done { sequence: u32, crc: u32 },
    /// Destination → source: the commit is applied; the process runs (or was killed) here.
    /// The acknowledgement of [`Message::Commit`].
    Committed { sequence: u32 },
    /// Destination → source: the image was bad, could not be restored, or stopped arriving;
    /// the destination has dropped it (it never prepared).
    Failed { sequence: u32, reason: Reason },
    /// Destination → source: the image is restored and validated, the process is NOT
    /// runnable; waiting for the decision (retried until Commit or Abort).
    Prepared { sequence: u32 },
    /// Source → destination: the decision is commit; run it (or end it with `kill`, a kill
    /// that arrived at the source during the migration). Retried until `Committed`.
    Commit { sequence: u32, kill: Option<i32> },
    /// Source → destination: the decision is abort (or: this sequence is unknown here,
    /// presumed abort). Drop the prepared copy.
    Abort { sequence: u32 },
    /// Host → birth cluster: `pid` now lives on `cluster`.
    Located { pid: Pid, cluster: ClusterId },
    /// Host → birth cluster: `pid` exited with `code`.
    Exited { pid: Pid, code: i32 },
    /// Anyone → the cluster that should act: move `pid` to `destination`.
    MigrateRequest {
        pid: Pid,
        destination: ClusterId,
        /// The `migrate_with` block, version 2 (24 bytes at 16..40).
        options: abi::MigrateOptions,
    },
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
    /// Post-copy, the process's new cluster → the one it left: a thread waits for `page`
    /// (sent first, then its neighbours).
    PageRequest { pid: Pid, page: u64 },
    /// Post-copy, new cluster → old: every page of `pid` is here, or it ended; the old
    /// cluster drops what it kept.
    PostCopyDone { pid: Pid },
    /// Post-copy, new cluster → old (the one that keeps the migration's record): what the
    /// page client measured once every page of `pid` arrived (`whole`), or once it ended
    /// there first. Sent with [`Message::PostCopyDone`]; it completes the record.
    PostCopyReport(PostCopyReport),
    /// Parent's cluster → target: create `program` as `pid` (born at the parent's cluster).
    Spawn {
        pid: Pid,
        parent: Pid,
        program: heapless_str::Name,
        args: heapless_str::Args,
    },
}

/// The figures of one post-copy, measured at the process's new cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostCopyReport {
    pub pid: Pid,
    /// Every remote page arrived (false: the process ended first).
    pub whole: bool,
    /// Pages a thread faulted on and waited for.
    pub pulled: u64,
    /// Pages that came before anything asked for them.
    pub pushed: u64,
    /// Time threads waited for pulled pages, summed over threads.
    pub fault_wait_ns: u64,
    /// Resume to the last page (or to the end).
    pub residual_ns: u64,
    /// Bytes post-copy put on the NoC, counted at the new cluster: the pieces and pages it
    /// received, the requests and messages it sent (this one included).
    pub link_bytes: u64,
}

impl PostCopyReport {
    /// Whether the report fits a record whose post-copy left `remote_pages` at the source:
    /// no more pages came than stayed there (fewer if the process unmapped some, or ended
    /// first). A wait without a pulled page does not decode at all.
    pub fn fits(&self, remote_pages: u64) -> bool {
        self.pulled
            .checked_add(self.pushed)
            .is_some_and(|moved| moved <= remote_pages)
    }
}

/// Why a payload was not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than [`PAYLOAD`] bytes.
    Truncated(usize),
    /// More than [`PAYLOAD`] bytes.
    TooLong(usize),
    /// Byte 0 names no message.
    UnknownKind(u8),
    /// Byte 1 is not [`WIRE_VERSION`].
    UnsupportedVersion(u8),
    /// A reserved or unused byte is not zero (including the sequence of an unsequenced kind).
    ReservedNotZero,
    /// A pid field is 0 in its local counter.
    BadPid,
    /// The Offer's manifest does not decode.
    BadManifest(ImageError),
    /// A field holds a value outside its range (named).
    BadField(&'static str),
    /// A string's length byte exceeds its capacity (or is 0 where a name is required).
    BadLength(&'static str),
    /// A string is not UTF-8.
    BadUtf8(&'static str),
}

/// Message kinds (byte 0).
pub mod kind {
    pub const OFFER: u8 = 1;
    pub const ACCEPT: u8 = 2;
    pub const REFUSE: u8 = 3;
    pub const DONE: u8 = 4;
    pub const COMMITTED: u8 = 5;
    pub const FAILED: u8 = 6;
    pub const LOCATED: u8 = 7;
    pub const EXITED: u8 = 8;
    pub const MIGRATE_REQUEST: u8 = 9;
    pub const SET_REFUSING: u8 = 10;
    pub const SPAWN: u8 = 11;
    pub const KILL: u8 = 12;
    pub const NAME_LINK: u8 = 13;
    pub const NAME_UNLINK: u8 = 14;
    pub const LIST_REQUEST: u8 = 15;
    pub const LIST_ENTRY: u8 = 16;
    pub const PREPARED: u8 = 17;
    pub const COMMIT: u8 = 18;
    pub const ABORT: u8 = 19;
    pub const PAGE_REQUEST: u8 = 20;
    pub const POSTCOPY_DONE: u8 = 21;
    pub const POSTCOPY_REPORT: u8 = 22;
}

// Field offsets (after the 8-byte header).
pub(crate) const NAME_LEN_AT: usize = 12;
pub(crate) const NAME_AT: usize = 16;
pub(crate) const PROGRAM_LEN_AT: usize = 16;
pub(crate) const ARGS_LEN_AT: usize = 17;
pub(crate) const PROGRAM_AT: usize = 18;
pub(crate) const ARGS_AT: usize = 50;
const _: () = assert!(8 + MANIFEST_LEN <= PAYLOAD);
const _: () = assert!(ARGS_AT + 64 <= PAYLOAD && PROGRAM_AT + 32 <= ARGS_AT);

struct Out([u8; PAYLOAD]);

impl Out {
    fn u32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn u16(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, at: usize, v: &[u8]) {
        self.0[at..at + v.len()].copy_from_slice(v);
    }
}

impl Message {
    /// The migration sequence this message belongs to (0 for the other kinds).
    pub fn sequence(&self) -> u32 {
        use Message::*;
        match *self {
            Offer { sequence, .. }
            | Accept { sequence }
            | Refuse { sequence, .. }
            | Done { sequence, .. }
            | Committed { sequence }
            | Failed { sequence, .. }
            | Prepared { sequence }
            | Commit { sequence, .. }
            | Abort { sequence } => sequence,
            _ => 0,
        }
    }

    /// The message's wire bytes.
    pub fn encode(&self) -> [u8; PAYLOAD] {
        use Message::*;
        let mut out = Out([0u8; PAYLOAD]);
        let kind = match self {
            Offer { manifest, .. } => {
                out.bytes(8, &manifest.encode());
                kind::OFFER
            }
            Accept { .. } => kind::ACCEPT,
            Refuse { reason, .. } => {
                out.u32(8, *reason as u32);
                kind::REFUSE
            }
            Done { crc, .. } => {
                out.u32(8, *crc);
                kind::DONE
            }
            Committed { .. } => kind::COMMITTED,
            Failed { reason, .. } => {
                out.u32(8, *reason as u32);
                kind::FAILED
            }
            Prepared { .. } => kind::PREPARED,
            Commit { kill, .. } => {
                if let Some(code) = kill {
                    out.0[8] = 1;
                    out.u32(12, *code as u32);
                }
                kind::COMMIT
            }
            Abort { .. } => kind::ABORT,
            Located { pid, cluster } => {
                out.u32(8, pid.raw());
                out.u16(12, cluster.0);
                kind::LOCATED
            }
            Exited { pid, code } => {
                out.u32(8, pid.raw());
                out.u32(12, *code as u32);
                kind::EXITED
            }
            MigrateRequest {
                pid,
                destination,
                options,
            } => {
                out.u32(8, pid.raw());
                out.u16(12, destination.0);
                out.bytes(16, &options.to_bytes());
                kind::MIGRATE_REQUEST
            }
            SetRefusing { on } => {
                out.0[8] = *on as u8;
                kind::SET_REFUSING
            }
            Kill { pid } => {
                out.u32(8, pid.raw());
                kind::KILL
            }
            PageRequest { pid, page } => {
                out.u32(8, pid.raw());
                out.bytes(16, &page.to_le_bytes());
                kind::PAGE_REQUEST
            }
            PostCopyDone { pid } => {
                out.u32(8, pid.raw());
                kind::POSTCOPY_DONE
            }
            PostCopyReport(report) => {
                out.u32(8, report.pid.raw());
                out.0[12] = report.whole as u8;
                let figures = [
                    report.pulled,
                    report.pushed,
                    report.fault_wait_ns,
                    report.residual_ns,
                    report.link_bytes,
                ];
                for (i, value) in figures.iter().enumerate() {
                    out.bytes(16 + 8 * i, &value.to_le_bytes());
                }
                kind::POSTCOPY_REPORT
            }
            ListRequest => kind::LIST_REQUEST,
            ListEntry { record } => {
                out.bytes(8, record);
                kind::LIST_ENTRY
            }
            NameLink { pid, name } | NameUnlink { pid, name } => {
                out.u32(8, pid.raw());
                out.0[NAME_LEN_AT] = name.len() as u8;
                out.bytes(NAME_AT, name.as_bytes());
                if matches!(self, NameLink { .. }) {
                    kind::NAME_LINK
                } else {
                    kind::NAME_UNLINK
                }
            }
            Spawn {
                pid,
                parent,
                program,
                args,
            } => {
                out.u32(8, pid.raw());
                out.u32(12, parent.raw());
                out.0[PROGRAM_LEN_AT] = program.len() as u8;
                out.0[ARGS_LEN_AT] = args.len() as u8;
                out.bytes(PROGRAM_AT, program.as_bytes());
                out.bytes(ARGS_AT, args.as_bytes());
                kind::SPAWN
            }
        };
        out.0[0] = kind;
        out.0[1] = WIRE_VERSION;
        out.u32(4, self.sequence());
        out.0
    }

    /// Parses a mailbox payload, with every check.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let bytes: &[u8; PAYLOAD] = match bytes.len() {
            n if n < PAYLOAD => return Err(DecodeError::Truncated(n)),
            n if n > PAYLOAD => return Err(DecodeError::TooLong(n)),
            _ => bytes.try_into().map_err(|_| DecodeError::Truncated(0))?,
        };
        if bytes[1] != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion(bytes[1]));
        }
        if bytes[2..4] != [0, 0] {
            return Err(DecodeError::ReservedNotZero);
        }
        let message = decode::fields(bytes)?;
        // Canonical form: every byte the kind does not use must be zero.
        if message.encode() != *bytes {
            return Err(DecodeError::ReservedNotZero);
        }
        Ok(message)
    }
}
