//! User portal writes by DMA: a `portal_write` to a process on another cluster hands the NoC's
//! DMA engine the writer's own pages, so no CPU copies the bytes on the way out.
//!
//! Why the writer blocks and its pages are held: the engine reads the pages when the receiving
//! kernel has granted its buffer, some time after the call, so the call can only return when
//! the engine's completion says what happened (`Ok(len)`, or the error: nothing was delivered).
//! Until then the pages' frames are pinned (`hal::frames::Pinned`): `munmap`, exit or a
//! migrated process's release free them only once the engine can no longer read them, and a
//! freeze of the process waits for the write to end (a frozen image never holds one:
//! `uarea` rejects `PortalDma` in a frozen UArea).
//!
//! A buffer whose pages do not fit one DMA range list (more than 256 discontiguous pieces: a
//! 1 MiB buffer that is not page-aligned, on frames of which no two are adjacent) is copied
//! into kernel memory instead, and moves from there the same way.

use abi::{Errno, Pid, Tid};
use noc_proto::dma::{coalesce, Range, MAX_RANGES};
use uarea::{BlockReason, ThreadState};

use crate::noc::NocError;
use crate::process::{memory, Process, Table};
use crate::requests::PortalSource;

/// Holds the user buffer `[address, address + len)` of `process` for the DMA engine (or
/// copies it, see the module docs). `EFAULT` if not readable, `EAGAIN` if too many frames are
/// pinned on this cluster already (`hal::frames::PIN_LIMIT`), `ENOMEM` without memory.
pub fn hold_buffer(process: &mut Process, address: u64, len: usize) -> Result<PortalSource, Errno> {
    let (frames, pieces) =
        memory::user_frames(&mut process.space, &process.uarea.memory, address, len)?;
    let mut ranges = [Range::default(); MAX_RANGES];
    if coalesce(pieces.iter().copied(), &mut ranges).is_none() {
        let mut data = alloc::vec::Vec::new();
        data.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
        data.resize(len, 0);
        memory::copy_from_user(
            &mut process.space,
            &process.uarea.memory,
            address,
            &mut data,
        )?;
        return Ok(PortalSource::Copied(data));
    }
    let held = hal::frames::Pinned::new(frames).map_err(|error| match error {
        hal::frames::FrameError::TooManyPins => Errno::EAGAIN,
        _ => Errno::EFAULT,
    })?;
    Ok(PortalSource::Pinned {
        pieces,
        _held: held,
    })
}

/// The engine finished (or the transfer failed): the writer's `portal_write` returns `result`.
/// Nothing happens if the writer is gone or no longer blocked in that write.
pub fn write_done(table: &mut Table, writer: (Pid, Tid), result: Result<usize, Errno>) {
    let (pid, tid) = writer;
    let blocked = table
        .processes
        .get(&pid)
        .and_then(|p| p.uarea.thread(tid))
        .is_some_and(|t| matches!(t.state, ThreadState::Blocked(BlockReason::PortalDma { .. })));
    if blocked {
        table.complete_blocked(pid, tid, result);
    }
}

/// True while a thread of `pid` waits for a portal write the engine has not finished.
pub fn write_in_flight(table: &Table, pid: Pid) -> bool {
    table.processes.get(&pid).is_some_and(|p| {
        p.uarea
            .threads
            .iter()
            .any(|t| matches!(t.state, ThreadState::Blocked(BlockReason::PortalDma { .. })))
    })
}

/// What a failed transfer returns to the writer (docs/abi.md, `portal_write`).
pub fn errno(error: NocError) -> Errno {
    match error {
        // The receiving kernel never allowed in time (the relay's stall limit).
        NocError::TimedOut | NocError::WouldBlock => Errno::ETIMEDOUT,
        NocError::TooLarge => Errno::EMSGSIZE,
        NocError::Refused => Errno::EAGAIN,
        NocError::BadCluster | NocError::NotPresent => Errno::EHOSTUNREACH,
        _ => Errno::EIO,
    }
}
