//! Single-producer single-consumer byte ring over raw shared memory.
//!
//! A ring is a 128-byte header (producer's `head` and consumer's `tail`, each
//! a monotonically increasing `u64` byte position on its own cache line) plus
//! a data area of `capacity` bytes (a multiple of 8, not necessarily a power
//! of two). Records are variable-length and always contiguous in the data
//! area, so the consumer can copy one out in a single `memcpy`:
//!
//! ```text
//! frame  = len: u32 LE | tag: u32 LE | len bytes | zero padding to a multiple of 8
//! tag    = FRAME_DATA (a record) or FRAME_PAD (skip to the end of the data area)
//! ```
//!
//! When a record does not fit between `head` and the end of the data area,
//! the producer writes a `FRAME_PAD` frame there and the record at offset 0.
//!
//! **Ordering.** The producer writes the frame bytes, then stores `head` with
//! `Release`; the consumer loads `head` with `Acquire`, so every byte below
//! `head` is visible before it reads it — records are never torn. Symmetrically
//! the consumer copies a record out, then stores `tail` with `Release`; the
//! producer loads `tail` with `Acquire` before reusing that space. A full ring
//! is reported as [`RingError::Full`]: nothing is ever overwritten.
//!
//! **Untrusted peer.** The other side of the shared memory may write anything
//! anywhere. Every position read from it is checked (`head - tail ≤ capacity`,
//! frame length within the published bytes and within the data area) before
//! use, and all data accesses are reduced modulo `capacity`, so a hostile peer
//! can at worst make the ring report [`RingError::Corrupt`], never make this
//! side touch memory outside the ring.
//!
//! To guarantee progress on an empty ring whatever the wrap position, a
//! record's frame may use at most half the capacity ([`Ring::max_record`]).

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::wire::{self, Header, WireError, HEADER_LEN};

/// Bytes of the ring header in shared memory.
pub const RING_HEADER_SIZE: usize = 128;
/// Offset of `head` (written by the producer) in the ring header.
pub const RING_HEAD_OFFSET: usize = 0;
/// Offset of `tail` (written by the consumer) in the ring header.
pub const RING_TAIL_OFFSET: usize = 64;
/// Bytes of the frame header in front of every record.
pub const FRAME_HEADER: usize = 8;
/// Frame tag of a record (`"REC1"`).
pub const FRAME_DATA: u32 = u32::from_le_bytes(*b"REC1");
/// Frame tag of padding up to the end of the data area (`"PAD!"`).
pub const FRAME_PAD: u32 = u32::from_le_bytes(*b"PAD!");

/// Why a ring operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Not enough free space now; retry after the consumer made progress.
    Full,
    /// The record can never fit (longer than [`Ring::max_record`]).
    TooLarge,
    /// The shared indices or a frame are inconsistent: the peer broke the
    /// protocol. The consumer can recover with [`Ring::reset_consumer`].
    Corrupt,
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RingError::Full => "ring full",
            RingError::TooLarge => "record larger than the ring allows",
            RingError::Corrupt => "ring indices or frame corrupt",
        })
    }
}

/// Why [`Ring::recv_message`] did not return a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    Ring(RingError),
    /// A record was consumed but failed validation; it was dropped.
    Wire(WireError),
    /// The caller's buffer is smaller than the record; it was dropped.
    BufferTooSmall {
        len: usize,
    },
}

const fn frame_size(len: usize) -> usize {
    FRAME_HEADER + ((len + 7) & !7)
}

/// Handle on one ring in shared memory. Cheap to copy; it holds only
/// pointers. Exactly one party may use the producer methods (`try_push*`) and
/// exactly one the consumer methods (`peek`, `pop`, `recv*`).
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    header: *mut u8,
    data: *mut u8,
    capacity: usize,
}

// SAFETY: a Ring is two pointers into memory that `Ring::new`'s caller
// promised stays mapped; all shared state is accessed through atomics or
// raw copies, so handing the handle to another thread is sound.
unsafe impl Send for Ring {}
// SAFETY: as above; methods take &self and use atomics for the indices.
unsafe impl Sync for Ring {}

/// A record found by [`Ring::peek`]: where it is and where the ring's tail
/// goes once it is popped.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    ptr: *const u8,
    len: usize,
    next_tail: u64,
}

impl Record {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the record into `out[..len]`; returns `None` if `out` is short.
    pub fn copy_to(&self, out: &mut [u8]) -> Option<usize> {
        let out = out.get_mut(..self.len)?;
        // SAFETY: `peek` checked that `ptr..ptr+len` lies inside the data area
        // and below the published head, and the producer does not reuse it
        // until we pop. A hostile peer writing concurrently can only change the
        // bytes we copy, which the caller validates after copying.
        unsafe { ptr::copy_nonoverlapping(self.ptr, out.as_mut_ptr(), self.len) };
        Some(self.len)
    }
}

impl Ring {
    /// Makes a handle on the ring whose header is at `header` and data area at
    /// `data`.
    ///
    /// # Safety
    /// `header` must be 64-byte aligned and valid for reads and writes of
    /// [`RING_HEADER_SIZE`] bytes, `data` valid for reads and writes of
    /// `capacity` bytes, both for as long as any copy of the handle is used.
    /// `capacity` must be a non-zero multiple of 8. The memory may be shared
    /// with another process or VM.
    pub const unsafe fn new(header: *mut u8, data: *mut u8, capacity: usize) -> Ring {
        assert!(capacity >= 64 && capacity.is_multiple_of(8));
        Ring {
            header,
            data,
            capacity,
        }
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: the header is valid and 64-aligned (see `new`), so the u64 at
        // RING_HEAD_OFFSET is aligned and in bounds; it is only accessed
        // atomically by both parties.
        unsafe { AtomicU64::from_ptr(self.header.add(RING_HEAD_OFFSET).cast()) }
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: as for `head`.
        unsafe { AtomicU64::from_ptr(self.header.add(RING_TAIL_OFFSET).cast()) }
    }

    /// Data-area capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Largest record (payload of one frame) this ring accepts.
    pub fn max_record(&self) -> usize {
        (self.capacity / 2 - FRAME_HEADER) & !7
    }

    /// Resets both indices to 0. Only while neither side uses the ring (the
    /// router does it when it lays out the shared memory).
    pub fn init(&self) {
        self.head().store(0, Ordering::Relaxed);
        self.tail().store(0, Ordering::Release);
    }

    /// Bytes published and not yet consumed, or `Corrupt`.
    pub fn used_bytes(&self) -> Result<usize, RingError> {
        let used = self
            .head()
            .load(Ordering::Acquire)
            .wrapping_sub(self.tail().load(Ordering::Acquire));
        if used > self.capacity as u64 {
            return Err(RingError::Corrupt);
        }
        Ok(used as usize)
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.used_bytes(), Ok(0))
    }

    fn write_bytes(&self, off: usize, bytes: &[u8]) {
        debug_assert!(off + bytes.len() <= self.capacity);
        // SAFETY: callers pass `off + bytes.len() <= capacity` (checked by
        // `try_push_parts` before any write), and this region lies between the
        // consumer's tail and capacity bytes later, so the consumer is not
        // reading it.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(off), bytes.len()) };
    }

    fn write_frame(&self, off: usize, len: u32, tag: u32) {
        let mut f = [0u8; FRAME_HEADER];
        f[..4].copy_from_slice(&len.to_le_bytes());
        f[4..].copy_from_slice(&tag.to_le_bytes());
        self.write_bytes(off, &f);
    }

    /// Producer: appends one record made of the concatenation of `parts`.
    pub fn try_push_parts(&self, parts: &[&[u8]]) -> Result<(), RingError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.max_record() {
            return Err(RingError::TooLarge);
        }
        let fsize = frame_size(len);
        let cap = self.capacity as u64;
        // Our own index: only we write it (a hostile consumer could, but then
        // the check below catches inconsistency and all writes stay in bounds).
        let head = self.head().load(Ordering::Relaxed);
        let tail = self.tail().load(Ordering::Acquire);
        let used = head.wrapping_sub(tail);
        if used > cap || !head.is_multiple_of(8) {
            return Err(RingError::Corrupt);
        }
        let free = (cap - used) as usize;
        let mut off = (head % cap) as usize;
        let to_end = self.capacity - off;
        let need = if fsize <= to_end {
            fsize
        } else {
            to_end + fsize
        };
        if need > free {
            return Err(RingError::Full);
        }
        let mut new_head = head;
        if fsize > to_end {
            self.write_frame(off, (to_end - FRAME_HEADER) as u32, FRAME_PAD);
            new_head += to_end as u64;
            off = 0;
        }
        self.write_frame(off, len as u32, FRAME_DATA);
        let mut at = off + FRAME_HEADER;
        for p in parts {
            self.write_bytes(at, p);
            at += p.len();
        }
        let pad = fsize - FRAME_HEADER - len;
        if pad > 0 {
            self.write_bytes(at, &[0u8; 8][..pad]);
        }
        new_head += fsize as u64;
        // Publish: everything written above happens-before the consumer's
        // Acquire load of head.
        self.head().store(new_head, Ordering::Release);
        Ok(())
    }

    /// Producer: appends one already-encoded record.
    pub fn try_push_record(&self, record: &[u8]) -> Result<(), RingError> {
        self.try_push_parts(&[record])
    }

    /// Producer: encodes `hdr` (computing its checksum) and appends the
    /// message. If `payload.len() != hdr.len` nothing is pushed and the result
    /// is `Err(Corrupt)`.
    pub fn try_push(&self, hdr: &Header, payload: &[u8]) -> Result<(), RingError> {
        let h = wire::encode_header(hdr, payload).map_err(|_| RingError::Corrupt)?;
        self.try_push_parts(&[&h, payload])
    }

    /// Consumer: the oldest record, if any, without consuming it.
    pub fn peek(&self) -> Result<Option<Record>, RingError> {
        let cap = self.capacity as u64;
        let mut tail = self.tail().load(Ordering::Relaxed);
        let head = self.head().load(Ordering::Acquire);
        let mut used = head.wrapping_sub(tail);
        if used > cap || !used.is_multiple_of(8) || !tail.is_multiple_of(8) {
            return Err(RingError::Corrupt);
        }
        // At most one pad frame precedes a record.
        for _ in 0..2 {
            if used == 0 {
                return Ok(None);
            }
            let off = (tail % cap) as usize;
            let mut f = [0u8; FRAME_HEADER];
            // SAFETY: off is 8-aligned and < capacity, capacity is a multiple
            // of 8, so the 8 frame bytes are inside the data area; they are
            // below head, published by the producer's Release store.
            unsafe { ptr::copy_nonoverlapping(self.data.add(off), f.as_mut_ptr(), FRAME_HEADER) };
            let len = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
            let tag = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            let to_end = self.capacity - off;
            match tag {
                FRAME_PAD => {
                    if len != to_end - FRAME_HEADER || to_end as u64 > used {
                        return Err(RingError::Corrupt);
                    }
                    tail += to_end as u64;
                    used -= to_end as u64;
                }
                FRAME_DATA => {
                    if len > self.max_record() {
                        return Err(RingError::Corrupt);
                    }
                    let fsize = frame_size(len);
                    if fsize > to_end || fsize as u64 > used {
                        return Err(RingError::Corrupt);
                    }
                    return Ok(Some(Record {
                        // SAFETY: off + FRAME_HEADER + len <= off + fsize <= capacity.
                        ptr: unsafe { self.data.add(off + FRAME_HEADER) },
                        len,
                        next_tail: tail + fsize as u64,
                    }));
                }
                _ => return Err(RingError::Corrupt),
            }
        }
        // A pad followed by a pad: impossible from a correct producer.
        Err(RingError::Corrupt)
    }

    /// Consumer: consumes `rec` (which must come from this ring's latest
    /// `peek`), releasing its space to the producer.
    pub fn pop(&self, rec: Record) {
        self.tail().store(rec.next_tail, Ordering::Release);
    }

    /// Consumer: copies the oldest record into `out` and consumes it. Returns
    /// its length, `Ok(None)` if the ring is empty. A record longer than `out`
    /// is consumed and reported as `Err(TooLarge)`.
    pub fn pop_into(&self, out: &mut [u8]) -> Result<Option<usize>, RingError> {
        let Some(rec) = self.peek()? else {
            return Ok(None);
        };
        let n = rec.copy_to(out);
        self.pop(rec);
        n.map(Some).ok_or(RingError::TooLarge)
    }

    /// Consumer of `self`, producer of `dst`: moves the oldest record of this
    /// ring into `dst` (the router's DMA copy). `Ok(None)` if empty; `Full` if
    /// `dst` has no room (the record stays here).
    pub fn forward_to(&self, dst: &Ring) -> Result<Option<usize>, RingError> {
        let Some(rec) = self.peek()? else {
            return Ok(None);
        };
        // SAFETY: see `Record::copy_to`: the record's bytes are in bounds and
        // stable until we pop it.
        let bytes = unsafe { core::slice::from_raw_parts(rec.ptr, rec.len) };
        dst.try_push_record(bytes)?;
        self.pop(rec);
        Ok(Some(rec.len))
    }

    /// Consumer: receives one message into `buf` (at least
    /// [`wire::MAX_MESSAGE`] bytes to accept any message) and validates it.
    /// The record is consumed whether or not it is valid, so a bad message is
    /// dropped exactly once; the caller counts `Err(Wire(_))`.
    pub fn recv_message<'b>(
        &self,
        buf: &'b mut [u8],
        cluster_count: u16,
    ) -> Result<Option<(Header, &'b [u8])>, RecvError> {
        let Some(rec) = self.peek().map_err(RecvError::Ring)? else {
            return Ok(None);
        };
        let copied = rec.copy_to(buf);
        self.pop(rec);
        let n = copied.ok_or(RecvError::BufferTooSmall { len: rec.len })?;
        let (hdr, payload) = wire::decode(&buf[..n], cluster_count).map_err(RecvError::Wire)?;
        debug_assert!(payload.len() + HEADER_LEN == n);
        Ok(Some((hdr, payload)))
    }

    /// Consumer: drops everything published so far (recovery after `Corrupt`).
    pub fn reset_consumer(&self) {
        let head = self.head().load(Ordering::Acquire);
        self.tail().store(head, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
