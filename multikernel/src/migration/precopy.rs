//! The source side of a pre-copy: rounds of pages sent while the process runs.
//!
//! Each round takes the pages written since the last one (the first: every page) and sends
//! them in pieces of at most 256 pages: a piece names its pages on the image portal, the
//! destination grants a frame for each, and the engine copies the process's frames into them
//! (`uarea::precopy`). A DMA write completes before the kernel returns to the process, so no
//! page is read half-written; a write after its dirty bit was taken marks it for the next
//! round. The rounds end when the next would be small enough (`stop_pages`), after
//! `max_rounds`, or when the dirty set stops shrinking (the process writes faster than the
//! link drains: more rounds would not help); the process is then frozen and the final image
//! sends the rest.
//!
//! Unless the request allows throttling (`throttle_max_pct`, QEMU's auto-converge): then a
//! round that did not halve the dirty set throttles the process — 20 % of its CPU time
//! first, one step more after each further such round, up to the maximum — and another
//! round goes. Only a round that fails to shrink with the throttle already at its maximum
//! ends the rounds as outrun. A slower process dirties fewer pages per round, so the final
//! stop copies less. The throttle is kernel-local ([`kernel::process::throttle`]) and is
//! lifted when the rounds end (the freeze), fail, or the migration is dropped. The rule is
//! `multikernel_proto::precopy::after_round`, host-tested.
//!
//! A pass sends at most [`PIECES_PER_PASS`] pieces, so the process keeps running between
//! them and the dirty rate measured is its own.

use abi::records_ex::ROUNDS_RECORDED;
use abi::{MigrateOptions, Pid};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use kernel::noc::{link_cost, portal, NocError};
use kernel::process::with_table;
use migration::precopy;
use multikernel_proto::precopy::{after_round, Next, RoundEnd};
use uarea::precopy::{encode_round, MAX_PIECE_PAGES};
use x86_64::structures::paging::{PhysFrame, Size4KiB};

use crate::ports::{IMAGE_PAGES_PORT, IMAGE_PORT};

/// Pieces (1 MiB each at most) one scheduler pass may send.
const PIECES_PER_PASS: usize = 4;

/// Pre-copy's capability to throttle the process it moves.
struct Mover;

// SAFETY: only `PreCopy::throttle` uses it, on the process that pre-copy is moving;
// `PreCopy` lifts the throttle when its rounds end and when it is dropped (any failure).
unsafe impl kernel::process::throttle::MayThrottle for Mover {}

/// What pre-copy measured, for the migration's record.
#[derive(Debug, Clone, Copy)]
pub struct PreCopyStats {
    /// Rounds sent.
    pub rounds: u32,
    /// Pages sent over all rounds (a page sent twice counts twice).
    pub pages: u64,
    /// Of `pages`, those of each round (the last entry also takes any round past it).
    pub round_pages: [u32; ROUNDS_RECORDED],
    /// Bytes the rounds put on the NoC: their pieces and pages.
    pub link_bytes: u64,
    /// Pages written again after they were sent, per second of pre-copy.
    pub dirty_rate: u32,
    /// The dirty set stopped shrinking: the process outran the link (with the throttle, if
    /// allowed, at its maximum).
    pub outran: bool,
    /// The CPU throttle (per cent) the process had when the rounds ended (0: none).
    pub throttle_pct: u32,
}

impl Default for PreCopyStats {
    fn default() -> PreCopyStats {
        PreCopyStats {
            rounds: 0,
            pages: 0,
            round_pages: [0; ROUNDS_RECORDED],
            link_bytes: 0,
            dirty_rate: 0,
            outran: false,
            throttle_pct: 0,
        }
    }
}

/// What one pass did.
pub enum Step {
    /// Sent nothing (waiting for the destination's grants).
    Waiting,
    /// Sent pieces or pages.
    Progress,
    /// The rounds are over: freeze the process and send the final image.
    Converged,
}

pub struct PreCopy {
    pub sequence: u32,
    pub pid: Pid,
    pub image: portal::PortalTx,
    pub pages: portal::PortalTx,
    options: MigrateOptions,
    /// This round's pages not yet named in a piece.
    todo: Vec<u64>,
    /// Pieces named, in order, whose pages are not yet written.
    unwritten: alloc::collections::VecDeque<Vec<u64>>,
    /// Pages the destination holds (their latest copy went).
    pub sent: BTreeSet<u64>,
    /// Pages of the previous round (to see whether the dirty set shrinks).
    last_round: usize,
    /// Pages written again after they were sent.
    redirtied: u64,
    started_ns: u64,
    pub stats: PreCopyStats,
    /// Stands in for a page the process unmapped after it was named: its copy is never used
    /// (the final image does not name it), so a zero page is read instead of a stale frame.
    blank: PhysFrame<Size4KiB>,
}

impl PreCopy {
    /// Starts round 1 (every page of the process) towards `to`.
    pub fn start(
        pid: Pid,
        to: abi::ClusterId,
        sequence: u32,
        options: MigrateOptions,
    ) -> Result<PreCopy, NocError> {
        let image = portal::open(to, IMAGE_PORT)?;
        let pages = portal::open(to, IMAGE_PAGES_PORT)?;
        let blank = hal::frames::alloc().map_err(|_| NocError::TransferFailed)?;
        let target = hal::paging::phys_to_virt(blank.start_address()).as_mut_ptr::<u8>();
        // SAFETY: the frame was just allocated and is reached through the physical map;
        // nothing else refers to it.
        unsafe { core::ptr::write_bytes(target, 0, 4096) };
        let mut precopy = PreCopy {
            sequence,
            pid,
            image,
            pages,
            options,
            todo: Vec::new(),
            unwritten: alloc::collections::VecDeque::new(),
            sent: BTreeSet::new(),
            last_round: usize::MAX,
            redirtied: 0,
            started_ns: hal::clock::now_ns(),
            stats: PreCopyStats::default(),
            blank,
        };
        // Round 1 sends every page; its dirty bits are taken so round 2 sees later writes.
        let all = with_table(|table| {
            let _ = precopy::take_dirty(table, pid);
            let process = table.processes.get(&pid)?;
            let mut all = Vec::new();
            for s in &process.uarea.memory.segments {
                process
                    .space
                    .for_each_mapped(s.start, s.end(), |p| all.push(p));
            }
            Some(all)
        })
        .ok_or(NocError::TransferFailed)?;
        precopy.begin_round(all);
        Ok(precopy)
    }

    fn begin_round(&mut self, pages: Vec<u64>) {
        self.stats.rounds += 1;
        self.redirtied += pages.iter().filter(|p| self.sent.contains(p)).count() as u64;
        self.last_round = pages.len();
        self.todo = pages;
        self.todo.reverse(); // popped from the end, so sent in address order
    }

    /// One pass: name pages and write them as the destination allows; then, once a round is
    /// all written, start the next or say the rounds are over.
    pub fn step(&mut self) -> Result<Step, NocError> {
        let mut progress = false;
        for _ in 0..PIECES_PER_PASS {
            let mut moved = false;
            if !self.todo.is_empty() && portal::is_allowed(&self.image) {
                let take = self.todo.len().min(MAX_PIECE_PAGES);
                let piece: Vec<u64> = self.todo.split_off(self.todo.len() - take);
                let piece: Vec<u64> = piece.into_iter().rev().collect();
                let named = encode_round(self.stats.rounds, &piece);
                if let Err(error) = portal::write(&self.image, &named) {
                    // Back in the round; a refusal (stale allowance) is tried again.
                    self.todo.extend(piece.into_iter().rev());
                    if error == NocError::Refused {
                        break;
                    }
                    return Err(error);
                }
                self.stats.link_bytes += link_cost::transfer(named.len());
                self.unwritten.push_back(piece);
                moved = true;
            }
            if !self.unwritten.is_empty() && portal::is_allowed(&self.pages) {
                let Some(piece) = self.unwritten.pop_front() else {
                    break;
                };
                let frames = self.frames_of(&piece)?;
                if let Err(error) = portal::write_frames(&self.pages, &frames) {
                    // A refusal (a stale allowance) sent nothing: the piece goes again.
                    self.unwritten.push_front(piece);
                    if error == NocError::Refused {
                        break;
                    }
                    return Err(error);
                }
                self.stats.pages += piece.len() as u64;
                self.stats.link_bytes += link_cost::frames(piece.len());
                let round = (self.stats.rounds as usize).clamp(1, ROUNDS_RECORDED) - 1;
                self.stats.round_pages[round] += piece.len() as u32;
                self.sent.extend(piece);
                moved = true;
            }
            progress |= moved;
            if !moved {
                break;
            }
        }
        if !self.todo.is_empty() || !self.unwritten.is_empty() {
            return Ok(if progress {
                Step::Progress
            } else {
                Step::Waiting
            });
        }
        // The round is all at the destination: another, or stop?
        let dirty = with_table(|t| precopy::count_dirty(t, self.pid))
            .map_err(|_| NocError::TransferFailed)?;
        let end = RoundEnd {
            rounds: self.stats.rounds,
            sent: self.last_round,
            dirty,
            throttle_pct: self.stats.throttle_pct,
        };
        match after_round(&self.options, end) {
            Next::Round => {}
            // A process gone meanwhile ends the migration on the next pass (`ESRCH`).
            Next::Throttle(pct) => self.throttle(pct, dirty),
            Next::Stop { outran } => {
                self.stats.outran = outran;
                self.finish_stats(dirty);
                // The process is frozen next: the throttle has done its work.
                self.lift_throttle();
                return Ok(Step::Converged);
            }
        }
        let next = with_table(|t| precopy::take_dirty(t, self.pid))
            .map_err(|_| NocError::TransferFailed)?;
        self.begin_round(next);
        Ok(Step::Progress)
    }

    /// The round left `dirty` pages, not half fewer than it sent: throttle the process at
    /// `pct` (nothing if it is gone).
    fn throttle(&mut self, pct: u32, dirty: usize) {
        if !with_table(|t| t.set_throttle(&Mover, self.pid, pct)) {
            return;
        }
        self.stats.throttle_pct = pct;
        log::info!(
            "pre-copy of {}: round {} left {dirty} pages dirty, at least half the {} it sent: throttled to {pct}%",
            self.pid,
            self.stats.rounds,
            self.last_round
        );
    }

    /// Lets the process run at full speed again (the figure stays in the stats).
    pub fn lift_throttle(&mut self) {
        if self.stats.throttle_pct > 0 {
            with_table(|t| t.lift_throttle(self.pid));
        }
    }

    fn finish_stats(&mut self, still_dirty: usize) {
        let elapsed_ns = hal::clock::now_ns().saturating_sub(self.started_ns).max(1);
        let rewritten = self.redirtied + still_dirty as u64;
        self.stats.dirty_rate =
            (rewritten as u128 * 1_000_000_000 / elapsed_ns as u128).min(u32::MAX as u128) as u32;
    }

    /// The process's frames for `pages`, in order (the blank frame for one it unmapped).
    fn frames_of(&self, pages: &[u64]) -> Result<Vec<PhysFrame<Size4KiB>>, NocError> {
        with_table(|table| {
            let process = table.processes.get(&self.pid)?;
            Some(
                pages
                    .iter()
                    .map(|&page| {
                        process
                            .space
                            .translate(x86_64::VirtAddr::new(page))
                            .map_or(self.blank, |(phys, _)| PhysFrame::containing_address(phys))
                    })
                    .collect(),
            )
        })
        .ok_or(NocError::TransferFailed)
    }
}

impl Drop for PreCopy {
    fn drop(&mut self) {
        // However the migration ended (abort, refusal, failure, kill), the process is not
        // held back by it any more.
        self.lift_throttle();
        // Every write waited for its completion: the engine reads the blank frame no more.
        let _ = hal::frames::free(self.blank);
    }
}
