//! The final image on its way: the UArea and page index over the destination's image
//! portal, then the pages frame to frame, one DMA transfer per batch the destination granted.

use abi::Pid;
use alloc::vec::Vec;
use kernel::noc::{link_cost, portal, NocError};
use kernel::process::with_table;
use migration::snapshot::Snapshot;

/// Largest portal transfer.
const CHUNK: usize = abi::PORTAL_MAX_TRANSFER;

pub struct Transfer {
    pub sequence: u32,
    pub pid: Pid,
    pub snapshot: Snapshot,
    pub image: portal::PortalTx,
    pub pages: portal::PortalTx,
    /// Sent before the image (after a pre-copy: the final piece, with the manifest).
    pub preamble: Option<Vec<u8>>,
    /// Page batches sent so far.
    pub batches_sent: usize,
    /// A chunk produced but refused (a stale allowance of an earlier, abandoned image): it
    /// goes with the next allowance.
    pub held: Option<Vec<u8>>,
    /// Bytes put on the NoC so far (for the record's `link_bytes`).
    pub link_bytes: u64,
}

impl Transfer {
    /// True once the whole image left.
    pub fn is_done(&self) -> bool {
        self.preamble.is_none()
            && self.held.is_none()
            && self.snapshot.is_done()
            && self.batches_sent == self.snapshot.page_batches()
    }

    /// Sends every chunk and page batch the destination has allowed so far; true if it sent
    /// any.
    pub fn send_allowed(&mut self) -> Result<bool, NocError> {
        let mut sent = false;
        if self.preamble.is_some() && portal::is_allowed(&self.image) {
            if let Some(preamble) = self.preamble.take() {
                if let Err(error) = portal::write(&self.image, &preamble) {
                    self.preamble = Some(preamble);
                    return retry_refused(error);
                }
                self.link_bytes += link_cost::transfer(preamble.len());
                sent = true;
            }
        }
        while self.preamble.is_none()
            && portal::is_allowed(&self.image)
            && (self.held.is_some() || !self.snapshot.is_done())
        {
            let chunk = match self.held.take() {
                Some(chunk) => chunk,
                None => with_table(|table| {
                    let process = table.processes.get(&self.pid)?;
                    self.snapshot.next_chunk(process, CHUNK).ok()
                })
                .ok_or(NocError::TransferFailed)?,
            };
            if let Err(error) = portal::write(&self.image, &chunk) {
                self.held = Some(chunk);
                return retry_refused(error).map(|_| sent);
            }
            self.link_bytes += link_cost::transfer(chunk.len());
            sent = true;
        }
        while self.held.is_none()
            && self.snapshot.is_done()
            && self.batches_sent < self.snapshot.page_batches()
            && portal::is_allowed(&self.pages)
        {
            let batch = self.batches_sent;
            let frames = with_table(|table| {
                let process = table.processes.get(&self.pid)?;
                self.snapshot.batch_frames(process, batch).ok()
            })
            .ok_or(NocError::TransferFailed)?;
            if let Err(error) = portal::write_frames(&self.pages, &frames) {
                return retry_refused(error).map(|_| sent);
            }
            self.link_bytes += link_cost::frames(frames.len());
            self.batches_sent += 1;
            sent = true;
        }
        Ok(sent)
    }
}

/// A write refused because its allowance was revoked (an earlier image was abandoned) sent
/// nothing: the next allowance is a fresh one, so it is tried again. Any other error fails.
fn retry_refused(error: NocError) -> Result<bool, NocError> {
    match error {
        NocError::Refused => Ok(false),
        other => Err(other),
    }
}
