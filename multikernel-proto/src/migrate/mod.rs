//! Migration between clusters as a presumed-abort two-phase commit (BRIEF §8 "Migration
//! atomicity"), written sans-IO: [`Source`] and [`Destination`] take messages, time
//! (`now_ns`), peer-gone notices, driver completions and local events (a kill or a user mail
//! for the migrating pid) and return [`Action`]s. They own no process, no NoC port and no
//! clock, so the kernel daemon and the host simulation (`tests/migration_sim.rs`) run the
//! same code.
//!
//! # The protocol
//!
//! ```text
//!  source                                   destination
//!  Freeze ─ Offer(seq, manifest) ─────────▶ Admit → Accept (or Refuse)
//!  (live: Survey ─ Offer … Accept, then pre-copy while it runs, then Freeze)
//!  StartTransfer ═══ image (portal/DMA) ══▶ image received
//!  Done(seq, crc) ────────────────────────▶ Restore (NOT runnable) → Prepared
//!  decide: COMMIT ◀──── Prepared(seq) ──────
//!  Free, forward mail, Report Ok
//!  Commit(seq, kill?) ────────────────────▶ Resume (or ApplyKill) → Committed
//!  forget the decision ◀── Committed(seq) ──
//! ```
//! Before the decision the source aborts on Refuse, Failed, a failed transfer, the
//! destination leaving, or a stall (no progress for [`Config::stall_timeout_ns`]): it thaws
//! the process, delivers the mail it held, applies the kill it held, reports the error and
//! sends Abort once. It never sends Abort after deciding commit, and it keeps every commit
//! until `Committed` arrives (or the destination is gone); it answers any message about a
//! sequence it does not know with Abort (*presumed abort*): such a sequence was aborted, or
//! committed and acknowledged — the destination ignores Abort for a sequence it committed.
//!
//! # Why no separate reliable link
//! Every protocol message is retried by the state machine that needs its answer, and the
//! answer is the acknowledgement: the source re-sends Offer until Accept/Refuse, Done until
//! Prepared/Failed, Commit until Committed; the destination re-sends Accept (waiting for the
//! image) and Prepared (waiting for the decision) — both also serve as questions the source
//! answers with Abort if it forgot the sequence. Every handler is idempotent, keyed by
//! `(source cluster, sequence)`; sequences are monotonic per source cluster and clusters
//! never restart (a cluster that leaves is gone for good), so the destination keeps only the
//! last finished sequence of each source. A per-peer link would add its own windows and
//! buffers yet still need the phase-driven retries, because the answers depend on state.
//!
//! # Kills and mail during a migration
//! A kill or user mail for the pid that reaches the source before the decision is held
//! ([`Source::hold_kill`], [`Source::hold_mail`]): on abort it is applied/delivered at the
//! source after the thaw; on commit the kill rides in `Commit` and the mail is forwarded to
//! the destination (once, right after the decision). After the decision the driver's
//! forwarding pointer (installed on [`Action::Free`]) sends later kills and mail on. The
//! destination holds kills and mail for a process it has not yet been told to run
//! ([`Destination::hold_kill`], [`Destination::hold_mail`]) and applies them on Commit, or
//! sends them back to the source on Abort. Forwarded kills and mail travel on the user-mail
//! path, which this crate takes as reliable between live clusters (NoC mailboxes with
//! back-pressure); only the protocol messages are assumed lossy.
//!
//! # When the process is lost (the named cases)
//! * **L0** — the cluster the process lives on (not migrating) leaves.
//! * **L1** — the source leaves before the destination learns the decision: the destination
//!   discards its prepared copy (presumed abort), because the process belonged to the source
//!   until then. This includes the source leaving after deciding commit but before any
//!   Commit arrived.
//! * **L2** — the destination leaves after the source decided commit: the source freed its
//!   copy at the decision and never thaws.
//!
//! Mail and kills held by (or in flight to) a cluster that leaves are lost with it.

mod destination;
mod source;
#[cfg(test)]
mod tests;

pub use destination::Destination;
pub use source::Source;

use crate::message::{Message, Reason};
use abi::{ClusterId, Pid};
use uarea::image::Manifest;

/// Timers of both machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The source aborts a migration that made no progress for this long before the
    /// decision; the destination drops an image that stopped arriving. Generous by default:
    /// TCG on a loaded two-core host can stall a cluster for seconds.
    pub stall_timeout_ns: u64,
    /// Interval between re-sends of an unanswered protocol message.
    pub retransmit_ns: u64,
    /// Requests a [`Source`] queues behind the one in flight; more are refused with
    /// [`MigrateError::Busy`].
    pub queue_limit: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            stall_timeout_ns: 20_000_000_000,
            retransmit_ns: 200_000_000,
            queue_limit: 16,
        }
    }
}

/// One migration request, as numbered by the [`Source`] that took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A user mail the driver holds the bytes of; the machines only move the token around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailToken(pub u64);

/// Why a migration request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateError {
    /// The destination refused (it exists there, or it is draining).
    Refused,
    /// The destination was receiving another process, or the source queue was full.
    Busy,
    /// No progress for [`Config::stall_timeout_ns`] (or the destination stopped waiting).
    Timeout,
    /// The destination left.
    PeerGone,
    /// The destination rejected the image.
    BadImage,
    /// The destination (or the source, taking the snapshot) ran out of memory.
    OutOfMemory,
    /// The process is not on this cluster (or exited before its turn).
    NoSuchProcess,
    /// The destination is this cluster.
    BadDestination,
    /// The bulk transfer of the image failed.
    TransferFailed,
}

impl MigrateError {
    /// What a destination's refusal or failure means for the request.
    pub fn from_reason(reason: Reason) -> MigrateError {
        match reason {
            Reason::Busy => MigrateError::Busy,
            Reason::NoMemory => MigrateError::OutOfMemory,
            Reason::Exists | Reason::Refusing => MigrateError::Refused,
            Reason::BadImage => MigrateError::BadImage,
            Reason::Timeout => MigrateError::Timeout,
        }
    }
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a daemon message (best effort: the machines retry).
    Send { to: ClusterId, message: Message },
    /// Source: freeze `pid` and take its snapshot for `to`, then call [`Source::on_frozen`].
    Freeze {
        pid: Pid,
        to: ClusterId,
        sequence: u32,
    },
    /// Source, live strategies: measure the running process for its offer (nothing frozen),
    /// then call [`Source::on_surveyed`].
    Survey {
        pid: Pid,
        to: ClusterId,
        sequence: u32,
    },
    /// Source, live strategies: the destination accepted; copy pages while the process runs
    /// (calling [`Source::on_transfer_progress`] as they go), then call
    /// [`Source::on_precopy_done`].
    StartPreCopy {
        pid: Pid,
        to: ClusterId,
        sequence: u32,
    },
    /// Source: stream the image of `sequence` to `to` (portal/DMA), then call
    /// [`Source::on_transfer_done`] (and [`Source::on_transfer_progress`] per chunk).
    StartTransfer {
        pid: Pid,
        to: ClusterId,
        sequence: u32,
    },
    /// Source: the migration aborted; make the frozen process runnable again, unchanged.
    Thaw { pid: Pid },
    /// Source: commit decided; drop the frozen copy and forward what comes for `pid` to `to`.
    Free { pid: Pid, to: ClusterId },
    /// Destination: admit this image (allocate, allow the image portal), then call
    /// [`Destination::on_admitted`].
    Admit {
        from: ClusterId,
        sequence: u32,
        manifest: Manifest,
    },
    /// Destination: the whole image and its CRC are here; validate and restore the process,
    /// NOT runnable, then call [`Destination::on_restored`].
    Restore {
        from: ClusterId,
        sequence: u32,
        pid: Pid,
        crc: u32,
    },
    /// Destination: drop the admitted image or the prepared (never run) process.
    Discard {
        from: ClusterId,
        sequence: u32,
        pid: Pid,
    },
    /// Destination: commit; make the prepared process runnable (and drop any forwarding
    /// pointer for `pid` left here by an earlier migration).
    Resume { pid: Pid },
    /// End `pid` here as if killed (the thawed copy at a source, the prepared copy at a
    /// destination, which then also drops any forwarding pointer for `pid`). Its exit is
    /// reported as for any killed process.
    ApplyKill { pid: Pid, code: i32 },
    /// Deliver a held mail to `pid` here.
    DeliverMail { pid: Pid, mail: MailToken },
    /// Send a held mail for `pid` on to `to` (user-mail path).
    ForwardMail {
        pid: Pid,
        mail: MailToken,
        to: ClusterId,
    },
    /// Send a held kill for `pid` on to `to` (it is the copy there that survives).
    ForwardKill { pid: Pid, code: i32, to: ClusterId },
    /// Drop a held mail: its process was lost with the cluster that left.
    DropMail { pid: Pid, mail: MailToken },
    /// The request ended (exactly once per request): `Ok(destination)` once commit is
    /// decided, or why it failed.
    Report {
        request: RequestId,
        pid: Pid,
        outcome: Result<ClusterId, MigrateError>,
    },
}

/// Which machine a protocol message is for (`None`: not a migration message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Destination,
}

/// The machine that handles `message`, so the daemon's dispatcher stays a short match.
pub fn role(message: &Message) -> Option<Role> {
    match message {
        Message::Accept { .. }
        | Message::Refuse { .. }
        | Message::Failed { .. }
        | Message::Prepared { .. }
        | Message::Committed { .. } => Some(Role::Source),
        Message::Offer { .. }
        | Message::Done { .. }
        | Message::Commit { .. }
        | Message::Abort { .. } => Some(Role::Destination),
        _ => None,
    }
}

/// True once `interval` has passed since `since`.
fn elapsed(now_ns: u64, since_ns: u64, interval_ns: u64) -> bool {
    now_ns.saturating_sub(since_ns) >= interval_ns
}
