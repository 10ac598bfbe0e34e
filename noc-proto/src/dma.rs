//! The DMA engine's formats: grants, descriptors, completions and their validation.
//!
//! Bulk data does not travel through the rings. The MPPA's D-NoC moves it with a DMA engine,
//! and so does noc-sim: every cluster's RAM is a shared file the router maps, so it can copy
//! from the sender's RAM straight into the receiver's at host memcpy speed (docs/noc.md §13).
//!
//! * The receiver **grants** (`Kind::DmaGrant` to the router): "sender S may write up to
//!   `limit` bytes into these ranges of my RAM, on port P, as transfer T".
//! * The sender **posts a descriptor** (`Kind::DmaDescriptor` to the router): "copy these
//!   ranges of my RAM to cluster D, port P, transfer T".
//! * The router checks both lists against each cluster's RAM size and the descriptor against
//!   the grant ([`plan`]), copies, checks the copy, and at the time the link model gives
//!   posts a **completion** (`Kind::DmaComplete`) to both sides: status and bytes.
//!
//! Range lists never ride in ring messages: a list lives in its owner's RAM (one 4 KiB frame
//! holds [`MAX_RANGES`] entries, enough for a page-aligned 1 MiB buffer even if no two
//! frames are adjacent) and the message carries its guest-physical address and entry count.
//! Contiguous frames are coalesced into one range by the guest, so a buffer from contiguous
//! frames is one entry.
//!
//! All integers are little-endian. Every message here is exactly [`MSG_LEN`] bytes and starts
//! with [`DMA_VERSION`]. Nothing a guest writes is trusted: every check is overflow-free
//! (`checked_*`), and a rejection is a [`Status`], never a panic.

/// Version of every format in this module (first u16 of each message).
pub const DMA_VERSION: u16 = 1;
/// Payload size of `DmaGrant`, `DmaDescriptor` and `DmaComplete`.
pub const MSG_LEN: usize = crate::wire::DMA_MSG_LEN;
/// Bytes of one range-list entry.
pub const RANGE_LEN: usize = 16;
/// Most entries in one range list (one 4 KiB frame of entries).
pub const MAX_RANGES: usize = 4096 / RANGE_LEN;
/// Most bytes one transfer moves (the portal limit).
pub const MAX_DMA_TRANSFER: u64 = crate::wire::MAX_PORTAL_TRANSFER as u64;

/// One guest-physical range: `addr u64 | len u32 | reserved u32 (0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    pub addr: u64,
    pub len: u32,
}

impl Range {
    pub fn encode(&self) -> [u8; RANGE_LEN] {
        let mut out = [0u8; RANGE_LEN];
        out[0..8].copy_from_slice(&self.addr.to_le_bytes());
        out[8..12].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes entry `index` of a list; `None` if `bytes` is too short or reserved is set.
    pub fn decode_at(bytes: &[u8], index: usize) -> Option<Range> {
        let start = index.checked_mul(RANGE_LEN)?;
        let entry = bytes.get(start..start.checked_add(RANGE_LEN)?)?;
        if entry[12..16] != [0; 4] {
            return None;
        }
        Some(Range {
            addr: u64::from_le_bytes(entry[0..8].try_into().ok()?),
            len: u32::from_le_bytes(entry[8..12].try_into().ok()?),
        })
    }

    /// One past the last byte, if that does not overflow.
    pub fn end(&self) -> Option<u64> {
        self.addr.checked_add(self.len as u64)
    }
}

/// Where a range list lives: `count` entries at guest-physical `addr` of its owner's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ListRef {
    pub addr: u64,
    pub count: u32,
}

impl ListRef {
    /// The list's own bytes as a range of the owner's RAM, checked against `ram_size`.
    /// An empty list (count 0) is legal: an empty transfer.
    pub fn bytes_in(&self, ram_size: u64) -> Result<(u64, usize), Status> {
        if self.count as usize > MAX_RANGES {
            return Err(Status::BadList);
        }
        let len = self.count as u64 * RANGE_LEN as u64;
        let end = self.addr.checked_add(len).ok_or(Status::BadList)?;
        if end > ram_size {
            return Err(Status::BadList);
        }
        Ok((self.addr, len as usize))
    }
}

/// The receiver's permission (`DmaGrant` payload; header: src = receiver, dst = router,
/// port = the receiving port).
///
/// `0 version u16 | 2 sender u16 | 4 transfer u32 | 8 list addr u64 | 16 list count u32 |
/// 20 limit u32 | 24 reserved u64`. `limit = 0` (and count 0) **revokes** the grant
/// (sender, port, transfer); the router answers a revoke with a `Revoked` completion, after
/// which the receiver may reuse the memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Grant {
    pub sender: u16,
    pub transfer: u32,
    pub list: ListRef,
    pub limit: u32,
}

/// The sender's request (`DmaDescriptor` payload; header: src = sender, dst = router,
/// port = the destination port).
///
/// `0 version u16 | 2 destination u16 | 4 transfer u32 | 8 list addr u64 | 16 list count u32 |
/// 20 total bytes u32 | 24 reserved u64`. `total` must equal the sum of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Descriptor {
    pub destination: u16,
    pub transfer: u32,
    pub list: ListRef,
    pub total: u32,
}

/// Which side a completion is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    Sender = 0,
    Receiver = 1,
}

/// Outcome of a DMA operation (completion `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Copied and verified.
    Ok = 0,
    /// No grant for (sender, port, transfer): the receiver did not allow it.
    NoGrant = 1,
    /// Above [`MAX_DMA_TRANSFER`] or the grant's limit.
    TooLarge = 2,
    /// More bytes than the granted ranges hold.
    OutOfGrant = 3,
    /// A source range is empty, overflows or lies outside the sender's RAM.
    BadSource = 4,
    /// A list is malformed: count above [`MAX_RANGES`], outside RAM, reserved bits,
    /// a bad range in a grant, or `total` ≠ the sum of the source list.
    BadList = 5,
    /// The engine's check after the copy failed (source and destination differ).
    Corrupt = 6,
    /// The other cluster is gone (disconnected before the transfer completed).
    PeerGone = 7,
    /// Answer to a revoke: the grant is gone and its memory will not be written.
    Revoked = 8,
    /// The router has no RAM mapping for one of the clusters.
    NoRam = 9,
    /// A message of this module that does not decode (version, reserved bits).
    BadMessage = 10,
    /// The link between the two clusters is cut for a while (noc-sim `cut` / `isolate`):
    /// nothing was copied. Transient — the same transfer may succeed once the link heals.
    LinkDown = 11,
}

impl Status {
    pub const fn from_u8(v: u8) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::NoGrant,
            2 => Status::TooLarge,
            3 => Status::OutOfGrant,
            4 => Status::BadSource,
            5 => Status::BadList,
            6 => Status::Corrupt,
            7 => Status::PeerGone,
            8 => Status::Revoked,
            9 => Status::NoRam,
            10 => Status::BadMessage,
            11 => Status::LinkDown,
            _ => return None,
        })
    }
}

/// The router's report (`DmaComplete` payload; header: src = router, dst = either side,
/// port = the receiving port).
///
/// `0 version u16 | 2 peer u16 | 4 transfer u32 | 8 role u8 | 9 status u8 | 10 reserved u16 |
/// 12 bytes u32 | 16 crc u32 | 20 reserved (12 bytes)`. `peer` is the other side (the sender
/// for the receiver's copy); `crc` is the CRC-32 of the bytes as they landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub peer: u16,
    pub transfer: u32,
    pub role: Role,
    pub status: Status,
    pub bytes: u32,
    pub crc: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// The common shape of grants and descriptors: (peer u16, transfer, list, u32 at 20).
fn encode_request(peer: u16, transfer: u32, list: ListRef, last: u32) -> [u8; MSG_LEN] {
    let mut out = [0u8; MSG_LEN];
    out[0..2].copy_from_slice(&DMA_VERSION.to_le_bytes());
    out[2..4].copy_from_slice(&peer.to_le_bytes());
    out[4..8].copy_from_slice(&transfer.to_le_bytes());
    out[8..16].copy_from_slice(&list.addr.to_le_bytes());
    out[16..20].copy_from_slice(&list.count.to_le_bytes());
    out[20..24].copy_from_slice(&last.to_le_bytes());
    out
}

fn decode_request(b: &[u8]) -> Result<(u16, u32, ListRef, u32), Status> {
    if b.len() != MSG_LEN || u16_at(b, 0) != DMA_VERSION || b[24..32] != [0; 8] {
        return Err(Status::BadMessage);
    }
    let list = ListRef {
        addr: u64_at(b, 8),
        count: u32_at(b, 16),
    };
    Ok((u16_at(b, 2), u32_at(b, 4), list, u32_at(b, 20)))
}

impl Grant {
    pub fn encode(&self) -> [u8; MSG_LEN] {
        encode_request(self.sender, self.transfer, self.list, self.limit)
    }
    pub fn decode(b: &[u8]) -> Result<Grant, Status> {
        let (sender, transfer, list, limit) = decode_request(b)?;
        Ok(Grant {
            sender,
            transfer,
            list,
            limit,
        })
    }
    pub fn is_revoke(&self) -> bool {
        self.limit == 0
    }
}

impl Descriptor {
    pub fn encode(&self) -> [u8; MSG_LEN] {
        encode_request(self.destination, self.transfer, self.list, self.total)
    }
    pub fn decode(b: &[u8]) -> Result<Descriptor, Status> {
        let (destination, transfer, list, total) = decode_request(b)?;
        Ok(Descriptor {
            destination,
            transfer,
            list,
            total,
        })
    }
}

impl Completion {
    pub fn encode(&self) -> [u8; MSG_LEN] {
        let mut out = [0u8; MSG_LEN];
        out[0..2].copy_from_slice(&DMA_VERSION.to_le_bytes());
        out[2..4].copy_from_slice(&self.peer.to_le_bytes());
        out[4..8].copy_from_slice(&self.transfer.to_le_bytes());
        out[8] = self.role as u8;
        out[9] = self.status as u8;
        out[12..16].copy_from_slice(&self.bytes.to_le_bytes());
        out[16..20].copy_from_slice(&self.crc.to_le_bytes());
        out
    }
    pub fn decode(b: &[u8]) -> Result<Completion, Status> {
        if b.len() != MSG_LEN || u16_at(b, 0) != DMA_VERSION {
            return Err(Status::BadMessage);
        }
        let role = match b[8] {
            0 => Role::Sender,
            1 => Role::Receiver,
            _ => return Err(Status::BadMessage),
        };
        Ok(Completion {
            peer: u16_at(b, 2),
            transfer: u32_at(b, 4),
            role,
            status: Status::from_u8(b[9]).ok_or(Status::BadMessage)?,
            bytes: u32_at(b, 12),
            crc: u32_at(b, 16),
        })
    }
}

/// Checks every range of a list against its owner's RAM; returns the sum of the lengths.
/// `bad` is the status for a bad range (`BadSource` for a descriptor, `BadList` for a grant).
/// An empty list holds 0 bytes (an empty transfer moves nothing).
pub fn check_ranges(ranges: &[Range], ram_size: u64, bad: Status) -> Result<u64, Status> {
    if ranges.len() > MAX_RANGES {
        return Err(Status::BadList);
    }
    let mut total: u64 = 0;
    for range in ranges {
        let end = range.end().ok_or(bad)?;
        if range.len == 0 || end > ram_size {
            return Err(bad);
        }
        total = total.checked_add(range.len as u64).ok_or(bad)?;
    }
    Ok(total)
}

/// One contiguous copy: `len` bytes from the sender's `src` to the receiver's `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub src: u64,
    pub dst: u64,
    pub len: u64,
}

/// A validated transfer: the byte count and the copy steps ([`Plan::steps`]).
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    pub total: u64,
    source: &'a [Range],
    target: &'a [Range],
}

/// Validates a descriptor against the sender's RAM and the receiver's grant, and returns the
/// copy plan. Order: source ranges in the sender's RAM (`BadSource`), `total` = their sum
/// (`BadList`), `total` ≤ [`MAX_DMA_TRANSFER`] and ≤ the grant's limit (`TooLarge`), target
/// ranges in the receiver's RAM (`BadList`), `total` ≤ what they hold (`OutOfGrant`).
/// On `Ok`, every step lies inside a source range and inside a granted range.
pub fn plan<'a>(
    source: &'a [Range],
    sender_ram: u64,
    declared_total: u32,
    target: &'a [Range],
    receiver_ram: u64,
    limit: u32,
) -> Result<Plan<'a>, Status> {
    let total = check_ranges(source, sender_ram, Status::BadSource)?;
    if total != declared_total as u64 {
        return Err(Status::BadList);
    }
    if total > MAX_DMA_TRANSFER || total > limit as u64 {
        return Err(Status::TooLarge);
    }
    let capacity = check_ranges(target, receiver_ram, Status::BadList)?;
    if total > capacity {
        return Err(Status::OutOfGrant);
    }
    Ok(Plan {
        total,
        source,
        target,
    })
}

impl<'a> Plan<'a> {
    /// The copy steps, in transfer order: both lists are walked together, so a step never
    /// crosses the end of a source range or of a target range.
    pub fn steps(&self) -> Steps<'a> {
        Steps {
            source: self.source,
            target: self.target,
            si: 0,
            s_off: 0,
            ti: 0,
            t_off: 0,
            left: self.total,
        }
    }
}

/// Iterator over a [`Plan`]'s steps.
pub struct Steps<'a> {
    source: &'a [Range],
    target: &'a [Range],
    si: usize,
    s_off: u64,
    ti: usize,
    t_off: u64,
    left: u64,
}

impl Iterator for Steps<'_> {
    type Item = Step;
    fn next(&mut self) -> Option<Step> {
        if self.left == 0 {
            return None;
        }
        let s = self.source.get(self.si)?;
        let t = self.target.get(self.ti)?;
        let s_rest = (s.len as u64).checked_sub(self.s_off)?;
        let t_rest = (t.len as u64).checked_sub(self.t_off)?;
        let len = s_rest.min(t_rest).min(self.left);
        let step = Step {
            src: s.addr.checked_add(self.s_off)?,
            dst: t.addr.checked_add(self.t_off)?,
            len,
        };
        self.left -= len;
        self.s_off += len;
        self.t_off += len;
        if self.s_off == s.len as u64 {
            self.si += 1;
            self.s_off = 0;
        }
        if self.t_off == t.len as u64 {
            self.ti += 1;
            self.t_off = 0;
        }
        Some(step)
    }
}

/// Coalesces physically adjacent pieces into ranges, for a guest building a list from a
/// page-by-page translation. Pieces are `(addr, len)` in buffer order; returns the number
/// of ranges written to `out`, or `None` if more than `out.len()` are needed.
pub fn coalesce(pieces: impl Iterator<Item = (u64, u32)>, out: &mut [Range]) -> Option<usize> {
    let mut n = 0usize;
    for (addr, len) in pieces {
        if n > 0 {
            let last = &mut out[n - 1];
            if last.end() == Some(addr) {
                if let Some(sum) = last.len.checked_add(len) {
                    last.len = sum;
                    continue;
                }
            }
        }
        *out.get_mut(n)? = Range { addr, len };
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests;
