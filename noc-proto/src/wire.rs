//! The NoC wire header: a fixed 32-byte little-endian layout, CRC-protected.
//!
//! Every message that crosses the NoC — mailbox, portal chunk, sync signal,
//! membership notice — starts with this header. Both the guest kernel and
//! noc-sim encode and decode it with these functions only, so the two ends can
//! never disagree on the format. The header is written into shared memory that
//! the other side may scribble on, so [`decode`] treats its input as hostile:
//! it checks every field and the checksum and says precisely what was wrong.
//!
//! | offset | size | field    | notes                                             |
//! |-------:|-----:|----------|---------------------------------------------------|
//! | 0      | 4    | magic    | [`WIRE_MAGIC`] (`"TNOC"` in memory order)          |
//! | 4      | 1    | version  | [`WIRE_VERSION`]                                  |
//! | 5      | 1    | kind     | [`Kind`]; unknown values are rejected             |
//! | 6      | 2    | flags    | [`flags`]; unknown bits are rejected              |
//! | 8      | 2    | src      | source cluster, or [`ClusterId::ROUTER`]          |
//! | 10     | 2    | dst      | destination cluster, or [`ClusterId::ROUTER`]     |
//! | 12     | 2    | port     | logical port on the destination                   |
//! | 14     | 2    | reserved | must be 0                                         |
//! | 16     | 4    | len      | payload length in bytes (bounded per kind)        |
//! | 20     | 4    | seq      | sender's sequence number                          |
//! | 24     | 4    | arg      | kind-specific (portal: byte offset; down: cluster) |
//! | 28     | 4    | crc      | CRC-32 of bytes 0..28 followed by the payload     |

/// `"TNOC"` read as a little-endian u32.
pub const WIRE_MAGIC: u32 = u32::from_le_bytes(*b"TNOC");
/// Bumped on any incompatible change of this header or of a payload format.
pub const WIRE_VERSION: u8 = 1;
/// Size of the encoded header.
pub const HEADER_LEN: usize = 32;
/// Mailbox messages have a fixed payload size (Nanvix on MPPA-256: 120 bytes).
pub const MAILBOX_PAYLOAD: usize = 120;
/// Largest payload of one `PortalData` chunk.
pub const MAX_PORTAL_CHUNK: usize = 32 * 1024;
/// Largest portal transfer (split into chunks of at most [`MAX_PORTAL_CHUNK`]).
pub const MAX_PORTAL_TRANSFER: usize = 1024 * 1024;
/// Largest payload of any message.
pub const MAX_PAYLOAD: usize = MAX_PORTAL_CHUNK;
/// Largest encoded message (header + payload).
pub const MAX_MESSAGE: usize = HEADER_LEN + MAX_PAYLOAD;
/// Largest payload of `SyncSignal`, `PortalAllow` and `Control` messages.
pub const MAX_CONTROL_PAYLOAD: usize = 256;
/// Payload bytes of every DMA grant, descriptor and completion (`crate::dma`).
pub const DMA_MSG_LEN: usize = 32;

/// Header flag bits.
pub mod flags {
    /// `PortalData`: first chunk of a transfer.
    pub const FIRST: u16 = 1 << 0;
    /// `PortalData`: last chunk of a transfer.
    pub const LAST: u16 = 1 << 1;
    /// Every bit defined so far; anything else is rejected.
    pub const KNOWN: u16 = FIRST | LAST;
}

/// A cluster number, `0..cluster_count`, or [`ClusterId::ROUTER`]: the one cluster type of
/// the whole system, from the ABI.
pub use abi::ClusterId;

/// A logical port on a cluster's NoC interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PortId(pub u16);

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Fixed-size ([`MAILBOX_PAYLOAD`]) message to a mailbox port.
    Mailbox = 1,
    /// One chunk of a portal transfer; `arg` = byte offset in the transfer.
    PortalData = 2,
    /// Receiver allows a sender to write into a portal; `arg` = max bytes.
    PortalAllow = 3,
    /// Sync primitive signal; `arg` = sync id.
    SyncSignal = 4,
    /// Router → clusters: cluster `arg` went down. Empty payload.
    ClusterDown = 5,
    /// Runtime/daemon control traffic (name service etc.).
    Control = 6,
    // ---- DMA engine (noc_proto::dma; payload exactly dma::MSG_LEN) ----
    /// Receiver → router: a grant (or revoke) of its RAM for one transfer.
    DmaGrant = 7,
    /// Sender → router: copy these ranges of my RAM to a granted transfer.
    DmaDescriptor = 8,
    /// Router → both sides: a transfer completed or was rejected.
    DmaComplete = 9,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Mailbox,
        Kind::PortalData,
        Kind::PortalAllow,
        Kind::SyncSignal,
        Kind::ClusterDown,
        Kind::Control,
        Kind::DmaGrant,
        Kind::DmaDescriptor,
        Kind::DmaComplete,
    ];

    pub const fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Mailbox,
            2 => Kind::PortalData,
            3 => Kind::PortalAllow,
            4 => Kind::SyncSignal,
            5 => Kind::ClusterDown,
            6 => Kind::Control,
            7 => Kind::DmaGrant,
            8 => Kind::DmaDescriptor,
            9 => Kind::DmaComplete,
            _ => return None,
        })
    }

    /// Whether a payload of `len` bytes is legal for this kind.
    pub const fn len_ok(self, len: usize) -> bool {
        match self {
            Kind::Mailbox => len == MAILBOX_PAYLOAD,
            Kind::PortalData => len <= MAX_PORTAL_CHUNK,
            Kind::ClusterDown => len == 0,
            Kind::PortalAllow | Kind::SyncSignal | Kind::Control => len <= MAX_CONTROL_PAYLOAD,
            Kind::DmaGrant | Kind::DmaDescriptor | Kind::DmaComplete => len == DMA_MSG_LEN,
        }
    }
}

/// A decoded (or to-be-encoded) header. `crc` is not stored: it is computed by
/// [`encode_header`] and checked by [`decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub flags: u16,
    pub src: ClusterId,
    pub dst: ClusterId,
    pub port: PortId,
    /// Payload length in bytes.
    pub len: u32,
    pub seq: u32,
    pub arg: u32,
}

impl Header {
    /// A header with flags, seq and arg zero.
    pub const fn new(kind: Kind, src: ClusterId, dst: ClusterId, port: PortId, len: u32) -> Self {
        Header {
            kind,
            flags: 0,
            src,
            dst,
            port,
            len,
            seq: 0,
            arg: 0,
        }
    }

    /// A mailbox message header (payload is exactly [`MAILBOX_PAYLOAD`] bytes).
    pub const fn mailbox(src: ClusterId, dst: ClusterId, port: PortId, seq: u32) -> Self {
        let mut h = Header::new(Kind::Mailbox, src, dst, port, MAILBOX_PAYLOAD as u32);
        h.seq = seq;
        h
    }
}

/// Why a byte string is not a valid message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than a header, or than header + `len`.
    Truncated {
        have: usize,
        need: usize,
    },
    /// More bytes than header + `len`.
    Trailing {
        have: usize,
        expected: usize,
    },
    BadMagic(u32),
    BadVersion(u8),
    BadKind(u8),
    BadFlags(u16),
    /// Reserved header field not zero.
    Reserved(u16),
    /// Payload length illegal for the kind (or above [`MAX_PAYLOAD`]).
    BadLength {
        kind: u8,
        len: u32,
    },
    /// Source or destination not a cluster of this machine nor the router.
    BadCluster(u16),
    /// CRC mismatch: the message was damaged.
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// Encoding: payload slice length differs from `header.len`, or the output
    /// buffer is too small.
    Encode,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            WireError::Truncated { have, need } => {
                write!(f, "truncated: {have} bytes, need {need}")
            }
            WireError::Trailing { have, expected } => {
                write!(f, "trailing bytes: {have} bytes, expected {expected}")
            }
            WireError::BadMagic(m) => write!(f, "bad magic {m:#010x}"),
            WireError::BadVersion(v) => write!(f, "unsupported wire version {v}"),
            WireError::BadKind(k) => write!(f, "unknown kind {k}"),
            WireError::BadFlags(x) => write!(f, "unknown flags {x:#06x}"),
            WireError::Reserved(x) => write!(f, "reserved field {x:#06x} not zero"),
            WireError::BadLength { kind, len } => write!(f, "length {len} illegal for kind {kind}"),
            WireError::BadCluster(c) => write!(f, "cluster {c} out of range"),
            WireError::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            WireError::Encode => write!(f, "payload does not match header length"),
        }
    }
}

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_KIND: usize = 5;
const OFF_FLAGS: usize = 6;
const OFF_SRC: usize = 8;
const OFF_DST: usize = 10;
const OFF_PORT: usize = 12;
const OFF_RESERVED: usize = 14;
const OFF_LEN: usize = 16;
const OFF_SEQ: usize = 20;
const OFF_ARG: usize = 24;
/// Offset of the CRC field; the CRC covers the bytes before it and the payload.
pub const OFF_CRC: usize = 28;

fn put_u16(b: &mut [u8; HEADER_LEN], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8; HEADER_LEN], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn get_u16(b: &[u8; HEADER_LEN], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn get_u32(b: &[u8; HEADER_LEN], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Encodes `hdr` for `payload`, including the CRC over both.
///
/// Fails with [`WireError::Encode`] if `payload.len() != hdr.len`; other fields
/// are not checked here (tests and fault injection need to build bad headers),
/// the receiver's [`decode`] checks them.
pub fn encode_header(hdr: &Header, payload: &[u8]) -> Result<[u8; HEADER_LEN], WireError> {
    if payload.len() != hdr.len as usize {
        return Err(WireError::Encode);
    }
    let mut b = [0u8; HEADER_LEN];
    put_u32(&mut b, OFF_MAGIC, WIRE_MAGIC);
    b[OFF_VERSION] = WIRE_VERSION;
    b[OFF_KIND] = hdr.kind as u8;
    put_u16(&mut b, OFF_FLAGS, hdr.flags);
    put_u16(&mut b, OFF_SRC, hdr.src.0);
    put_u16(&mut b, OFF_DST, hdr.dst.0);
    put_u16(&mut b, OFF_PORT, hdr.port.0);
    put_u16(&mut b, OFF_RESERVED, 0);
    put_u32(&mut b, OFF_LEN, hdr.len);
    put_u32(&mut b, OFF_SEQ, hdr.seq);
    put_u32(&mut b, OFF_ARG, hdr.arg);
    let crc = message_crc(&b[..OFF_CRC], payload);
    put_u32(&mut b, OFF_CRC, crc);
    Ok(b)
}

/// The CRC-32 (IEEE, as zlib's) of a message: its header up to the CRC field, then its
/// payload.
fn message_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(header);
    crc.update(payload);
    crc.finalize()
}

/// Encodes header and payload into `out`; returns the number of bytes written.
pub fn encode(hdr: &Header, payload: &[u8], out: &mut [u8]) -> Result<usize, WireError> {
    let h = encode_header(hdr, payload)?;
    let total = HEADER_LEN + payload.len();
    let out = out.get_mut(..total).ok_or(WireError::Encode)?;
    out[..HEADER_LEN].copy_from_slice(&h);
    out[HEADER_LEN..].copy_from_slice(payload);
    Ok(total)
}

/// Decodes and validates one whole message (`bytes` must be exactly header +
/// payload). `cluster_count` bounds `src` and `dst` (the router id is always
/// accepted). Returns the header and the payload slice.
///
/// Check order: size, magic, version, length bound, size again, checksum, then
/// the semantic fields — so a damaged message reports `Checksum` unless the
/// damage already made it unparseable.
pub fn decode(bytes: &[u8], cluster_count: u16) -> Result<(Header, &[u8]), WireError> {
    let hb: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated {
            have: bytes.len(),
            need: HEADER_LEN,
        })?;
    let magic = get_u32(hb, OFF_MAGIC);
    if magic != WIRE_MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let version = hb[OFF_VERSION];
    if version != WIRE_VERSION {
        return Err(WireError::BadVersion(version));
    }
    let kind_raw = hb[OFF_KIND];
    let len = get_u32(hb, OFF_LEN);
    if len as usize > MAX_PAYLOAD {
        return Err(WireError::BadLength {
            kind: kind_raw,
            len,
        });
    }
    let expected = HEADER_LEN + len as usize;
    if bytes.len() < expected {
        return Err(WireError::Truncated {
            have: bytes.len(),
            need: expected,
        });
    }
    if bytes.len() > expected {
        return Err(WireError::Trailing {
            have: bytes.len(),
            expected,
        });
    }
    let payload = &bytes[HEADER_LEN..];
    let stored = get_u32(hb, OFF_CRC);
    let computed = message_crc(&hb[..OFF_CRC], payload);
    if stored != computed {
        return Err(WireError::Checksum { stored, computed });
    }
    let kind = Kind::from_u8(kind_raw).ok_or(WireError::BadKind(kind_raw))?;
    if !kind.len_ok(len as usize) {
        return Err(WireError::BadLength {
            kind: kind_raw,
            len,
        });
    }
    let flags = get_u16(hb, OFF_FLAGS);
    if flags & !flags::KNOWN != 0 {
        return Err(WireError::BadFlags(flags));
    }
    let reserved = get_u16(hb, OFF_RESERVED);
    if reserved != 0 {
        return Err(WireError::Reserved(reserved));
    }
    let cluster_ok = |c: u16| c < cluster_count || c == ClusterId::ROUTER.0;
    let src = get_u16(hb, OFF_SRC);
    if !cluster_ok(src) {
        return Err(WireError::BadCluster(src));
    }
    let dst = get_u16(hb, OFF_DST);
    if !cluster_ok(dst) {
        return Err(WireError::BadCluster(dst));
    }
    let hdr = Header {
        kind,
        flags,
        src: ClusterId(src),
        dst: ClusterId(dst),
        port: PortId(get_u16(hb, OFF_PORT)),
        len,
        seq: get_u32(hb, OFF_SEQ),
        arg: get_u32(hb, OFF_ARG),
    };
    Ok((hdr, payload))
}

/// Reads the destination field of an encoded header without validating it
/// (the router uses [`decode`] first; this is for diagnostics).
pub fn peek_dst(bytes: &[u8]) -> Option<ClusterId> {
    let b = bytes.get(OFF_DST..OFF_DST + 2)?;
    Some(ClusterId(u16::from_le_bytes([b[0], b[1]])))
}

/// One chunk of a portal transfer, as produced by [`portal_chunks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortalChunk {
    /// Byte offset in the transfer (goes into `Header::arg`).
    pub offset: u32,
    pub len: u32,
    /// [`flags::FIRST`] / [`flags::LAST`] as appropriate.
    pub flags: u16,
}

/// Splits a transfer of `total` bytes (≤ [`MAX_PORTAL_TRANSFER`]) into chunks
/// of at most [`MAX_PORTAL_CHUNK`]. An empty transfer is one empty chunk with
/// both `FIRST` and `LAST`, so the receiver still sees it complete.
pub fn portal_chunks(total: usize) -> impl Iterator<Item = PortalChunk> {
    let n = if total == 0 {
        1
    } else {
        total.div_ceil(MAX_PORTAL_CHUNK)
    };
    (0..n).map(move |i| {
        let offset = i * MAX_PORTAL_CHUNK;
        let len = core::cmp::min(MAX_PORTAL_CHUNK, total - offset);
        let mut f = 0;
        if i == 0 {
            f |= flags::FIRST;
        }
        if i + 1 == n {
            f |= flags::LAST;
        }
        PortalChunk {
            offset: offset as u32,
            len: len as u32,
            flags: f,
        }
    })
}

#[cfg(test)]
mod tests;
