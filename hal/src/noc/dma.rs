//! The DMA side of the NoC driver: range lists of this cluster's physical memory, and the
//! grant / revoke / descriptor messages to noc-sim's DMA engine (formats: `noc_proto::dma`,
//! protocol: docs/noc.md §13).
//!
//! A [`RangeList`] translates a kernel buffer page by page (kernel virtual → physical through
//! [`crate::paging::translate`]), coalesces physically adjacent frames, and writes the ranges
//! into a frame of its own, which the router reads by physical address. The buffer must be
//! mapped (frame-backed) for its whole length and must stay alive and in place until the
//! transfer's completion arrives; the list frame likewise (dropping the list frees it).

use noc_proto::dma::{self, Descriptor, Grant, ListRef, Range, MAX_RANGES};
use x86_64::structures::paging::{PhysFrame, Size4KiB};
use x86_64::VirtAddr;

use super::{send, ClusterId, Header, Kind, NocError, PortId};

const PAGE: u64 = 4096;

/// Why a buffer cannot be described to the DMA engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListError {
    /// Longer than one transfer.
    BadLength,
    /// A page of the buffer is not mapped.
    Unmapped,
    /// More than [`MAX_RANGES`] discontiguous pieces.
    TooFragmented,
    /// No frame for the list.
    OutOfMemory,
}

/// A buffer's physical ranges, stored in a frame the router can read.
pub struct RangeList {
    frame: PhysFrame<Size4KiB>,
    count: u32,
    bytes: u32,
}

impl RangeList {
    /// Describes `len` bytes at kernel address `start` (0 bytes: an empty list).
    pub fn of_buffer(start: *const u8, len: usize) -> Result<RangeList, ListError> {
        if len as u64 > dma::MAX_DMA_TRANSFER {
            return Err(ListError::BadLength);
        }
        let start = start as u64;
        let end = start.checked_add(len as u64).ok_or(ListError::BadLength)?;
        let mut pieces = [Range::default(); MAX_RANGES];
        let mut unmapped = false;
        let mut at = start;
        let walk = core::iter::from_fn(|| {
            if at >= end {
                return None;
            }
            let next = ((at / PAGE) + 1) * PAGE;
            let piece_len = next.min(end) - at;
            let phys = crate::paging::translate(VirtAddr::new(at)).map(|(p, _)| p.as_u64());
            at += piece_len;
            match phys {
                Some(p) => Some((p, piece_len as u32)),
                None => {
                    unmapped = true;
                    None
                }
            }
        });
        let count = dma::coalesce(walk, &mut pieces).ok_or(ListError::TooFragmented)?;
        if unmapped {
            return Err(ListError::Unmapped);
        }
        RangeList::store(&pieces[..count], len as u32)
    }

    /// Describes whole 4 KiB frames, in order (a process's pages: the migration image's
    /// direct transport). At most one transfer's worth.
    pub fn of_frames(frames: &[PhysFrame<Size4KiB>]) -> Result<RangeList, ListError> {
        let len = frames.len() as u64 * PAGE;
        if len > dma::MAX_DMA_TRANSFER {
            return Err(ListError::BadLength);
        }
        let mut pieces = [Range::default(); MAX_RANGES];
        let walk = frames
            .iter()
            .map(|f| (f.start_address().as_u64(), PAGE as u32));
        let count = dma::coalesce(walk, &mut pieces).ok_or(ListError::TooFragmented)?;
        RangeList::store(&pieces[..count], len as u32)
    }

    /// Describes physical pieces `(address, length)`, in order (a user buffer the kernel
    /// translated and holds: a portal write from the writer's own pages).
    pub fn of_ranges(ranges: &[(u64, u32)]) -> Result<RangeList, ListError> {
        let len = ranges
            .iter()
            .try_fold(0u64, |sum, r| sum.checked_add(u64::from(r.1)))
            .filter(|len| *len <= dma::MAX_DMA_TRANSFER)
            .ok_or(ListError::BadLength)?;
        let mut pieces = [Range::default(); MAX_RANGES];
        let count =
            dma::coalesce(ranges.iter().copied(), &mut pieces).ok_or(ListError::TooFragmented)?;
        RangeList::store(&pieces[..count], len as u32)
    }

    /// Writes `pieces` into a fresh frame the router reads.
    fn store(pieces: &[Range], bytes: u32) -> Result<RangeList, ListError> {
        let count = pieces.len();
        let frame = crate::frames::alloc().map_err(|_| ListError::OutOfMemory)?;
        let base = crate::paging::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>();
        for (i, range) in pieces.iter().enumerate() {
            let entry = range.encode();
            // SAFETY: `frame` is a fresh frame we own, mapped at `base` by the physical-memory
            // offset mapping; count ≤ MAX_RANGES entries of RANGE_LEN fill at most 4 KiB.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    entry.as_ptr(),
                    base.add(i * dma::RANGE_LEN),
                    entry.len(),
                )
            };
        }
        Ok(RangeList {
            frame,
            count: count as u32,
            bytes,
        })
    }

    /// Where the router finds the list.
    pub fn list_ref(&self) -> ListRef {
        ListRef {
            addr: self.frame.start_address().as_u64(),
            count: self.count,
        }
    }

    /// Bytes the ranges cover.
    pub fn bytes(&self) -> u32 {
        self.bytes
    }

    /// Number of ranges after coalescing.
    pub fn ranges(&self) -> u32 {
        self.count
    }
}

impl Drop for RangeList {
    fn drop(&mut self) {
        let _ = crate::frames::free(self.frame);
    }
}

fn to_router(kind: Kind, port: PortId, payload: &[u8; dma::MSG_LEN]) -> Result<(), NocError> {
    let header = Header::new(kind, ClusterId(0), ClusterId::ROUTER, port, 0);
    send(header, payload)
}

/// Encodes a grant: `sender` may write up to `limit` bytes into `list` on `port` as
/// `transfer`. The caller sends it with [`send_grant`] (or its own queue, to keep order).
pub fn grant_message(sender: ClusterId, transfer: u32, list: &RangeList, limit: u32) -> Grant {
    Grant {
        sender: sender.0,
        transfer,
        list: list.list_ref(),
        limit,
    }
}

/// The header of a message to the DMA engine (`src`, `seq` and `len` are filled by [`send`]).
pub fn request_header(kind: Kind, port: PortId) -> Header {
    Header::new(kind, ClusterId(0), ClusterId::ROUTER, port, 0)
}

/// Sends a grant now (`WouldBlock` if the TX ring is full).
pub fn send_grant(port: PortId, grant: &Grant) -> Result<(), NocError> {
    to_router(Kind::DmaGrant, port, &grant.encode())
}

/// Encodes a revoke of (sender, port, transfer): the router answers `Revoked`.
pub fn revoke_message(sender: ClusterId, transfer: u32) -> Grant {
    Grant {
        sender: sender.0,
        transfer,
        list: ListRef::default(),
        limit: 0,
    }
}

/// Encodes a descriptor: copy `list` to (`destination`, port, `transfer`).
pub fn descriptor_message(destination: ClusterId, transfer: u32, list: &RangeList) -> Descriptor {
    Descriptor {
        destination: destination.0,
        transfer,
        list: list.list_ref(),
        total: list.bytes(),
    }
}

/// Sends a descriptor now (`WouldBlock` if the TX ring is full).
pub fn send_descriptor(port: PortId, descriptor: &Descriptor) -> Result<(), NocError> {
    to_router(Kind::DmaDescriptor, port, &descriptor.encode())
}
