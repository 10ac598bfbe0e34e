//! The final image on its way: the UArea and page index over the destination's image
//! portal, then the pages frame to frame, one DMA transfer per batch the destination granted.

use abi::Pid;
use alloc::vec::Vec;
use kernel::noc::{portal, NocError};
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
}

impl Transfer {
    /// True once the whole image left.
    pub fn is_done(&self) -> bool {
        self.preamble.is_none()
            && self.snapshot.is_done()
            && self.batches_sent == self.snapshot.page_batches()
    }

    /// Sends every chunk and page batch the destination has allowed so far; true if it sent
    /// any.
    pub fn send_allowed(&mut self) -> Result<bool, NocError> {
        let mut sent = false;
        if self.preamble.is_some() && portal::is_allowed(&self.image) {
            if let Some(preamble) = self.preamble.take() {
                portal::write(&self.image, &preamble)?;
                sent = true;
            }
        }
        while self.preamble.is_none() && portal::is_allowed(&self.image) && !self.snapshot.is_done()
        {
            let chunk = with_table(|table| {
                let process = table.processes.get(&self.pid)?;
                self.snapshot.next_chunk(process, CHUNK).ok()
            })
            .ok_or(NocError::TransferFailed)?;
            portal::write(&self.image, &chunk)?;
            sent = true;
        }
        while self.snapshot.is_done()
            && self.batches_sent < self.snapshot.page_batches()
            && portal::is_allowed(&self.pages)
        {
            let batch = self.batches_sent;
            let frames = with_table(|table| {
                let process = table.processes.get(&self.pid)?;
                self.snapshot.batch_frames(process, batch).ok()
            })
            .ok_or(NocError::TransferFailed)?;
            portal::write_frames(&self.pages, &frames)?;
            self.batches_sent += 1;
            sent = true;
        }
        Ok(sent)
    }
}
