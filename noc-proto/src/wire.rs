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
mod tests {
    use super::*;
    use proptest::prelude::*;
    extern crate std;
    use std::vec::Vec;

    const CLUSTERS: u16 = 20;

    fn arb_kind() -> impl Strategy<Value = Kind> {
        proptest::sample::select(Kind::ALL.to_vec())
    }

    fn arb_cluster() -> impl Strategy<Value = ClusterId> {
        prop_oneof![(0..CLUSTERS).prop_map(ClusterId), Just(ClusterId::ROUTER)]
    }

    /// A valid header together with a payload of a legal length for its kind.
    fn arb_message() -> impl Strategy<Value = (Header, Vec<u8>)> {
        (
            arb_kind(),
            any::<u16>(),
            arb_cluster(),
            arb_cluster(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_flat_map(|(kind, fl, src, dst, port, seq, arg)| {
                let len = match kind {
                    Kind::Mailbox => (MAILBOX_PAYLOAD..=MAILBOX_PAYLOAD).boxed(),
                    Kind::ClusterDown => (0usize..=0).boxed(),
                    Kind::PortalData => (0usize..=600).boxed(),
                    Kind::DmaGrant | Kind::DmaDescriptor | Kind::DmaComplete => {
                        (DMA_MSG_LEN..=DMA_MSG_LEN).boxed()
                    }
                    _ => (0usize..=MAX_CONTROL_PAYLOAD).boxed(),
                };
                (
                    len.prop_flat_map(|l| proptest::collection::vec(any::<u8>(), l)),
                    Just(()),
                )
                    .prop_map(move |(payload, ())| {
                        let hdr = Header {
                            kind,
                            flags: fl & flags::KNOWN,
                            src,
                            dst,
                            port: PortId(port),
                            len: payload.len() as u32,
                            seq,
                            arg,
                        };
                        (hdr, payload)
                    })
            })
    }

    fn encode_vec(hdr: &Header, payload: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; HEADER_LEN + payload.len()];
        let n = encode(hdr, payload, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    proptest! {
        #[test]
        fn round_trip((hdr, payload) in arb_message()) {
            let bytes = encode_vec(&hdr, &payload);
            let (h2, p2) = decode(&bytes, CLUSTERS).unwrap();
            prop_assert_eq!(h2, hdr);
            prop_assert_eq!(p2, &payload[..]);
        }

        #[test]
        fn any_single_bit_flip_is_rejected((hdr, payload) in arb_message(), bit in any::<usize>()) {
            let mut bytes = encode_vec(&hdr, &payload);
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(&bytes, CLUSTERS).is_err());
        }

        #[test]
        fn truncated_is_rejected((hdr, payload) in arb_message(), cut in any::<usize>()) {
            let bytes = encode_vec(&hdr, &payload);
            let cut = cut % bytes.len();
            let is_truncated = matches!(decode(&bytes[..cut], CLUSTERS), Err(WireError::Truncated { .. }));
            prop_assert!(is_truncated);
        }

        #[test]
        fn trailing_is_rejected((hdr, payload) in arb_message(), extra in 1usize..16) {
            let mut bytes = encode_vec(&hdr, &payload);
            bytes.extend(core::iter::repeat_n(0u8, extra));
            let is_trailing = matches!(decode(&bytes, CLUSTERS), Err(WireError::Trailing { .. }));
            prop_assert!(is_trailing);
        }

        #[test]
        fn unknown_kind_is_rejected_even_with_good_crc(k in any::<u8>()) {
            prop_assume!(Kind::from_u8(k).is_none());
            let hdr = Header::new(Kind::Control, ClusterId(0), ClusterId(1), PortId(0), 0);
            let mut bytes = encode_vec(&hdr, &[]);
            bytes[OFF_KIND] = k;
            fix_crc(&mut bytes);
            prop_assert_eq!(decode(&bytes, CLUSTERS), Err(WireError::BadKind(k)));
        }

        #[test]
        fn wrong_length_for_kind_is_rejected(kind in arb_kind(), len in 0usize..=MAX_PAYLOAD + 8) {
            prop_assume!(!kind.len_ok(len));
            let payload = std::vec![0xA5u8; len];
            let hdr = Header::new(kind, ClusterId(0), ClusterId(1), PortId(0), len as u32);
            let bytes = encode_vec(&hdr, &payload);
            let is_bad_len = matches!(decode(&bytes, CLUSTERS), Err(WireError::BadLength { .. }));
            prop_assert!(is_bad_len);
        }

        #[test]
        fn cluster_out_of_range_is_rejected(c in CLUSTERS..u16::MAX, as_src in any::<bool>()) {
            prop_assume!(c != ClusterId::ROUTER.0);
            let (s, d) = if as_src { (ClusterId(c), ClusterId(0)) } else { (ClusterId(0), ClusterId(c)) };
            let hdr = Header::new(Kind::Control, s, d, PortId(0), 0);
            let bytes = encode_vec(&hdr, &[]);
            prop_assert_eq!(decode(&bytes, CLUSTERS), Err(WireError::BadCluster(c)));
        }

        #[test]
        fn portal_chunks_cover_transfer(total in 0usize..=MAX_PORTAL_TRANSFER) {
            let chunks: Vec<_> = portal_chunks(total).collect();
            let mut next = 0usize;
            for (i, c) in chunks.iter().enumerate() {
                prop_assert_eq!(c.offset as usize, next);
                prop_assert!(c.len as usize <= MAX_PORTAL_CHUNK);
                prop_assert_eq!(c.flags & flags::FIRST != 0, i == 0);
                prop_assert_eq!(c.flags & flags::LAST != 0, i + 1 == chunks.len());
                next += c.len as usize;
            }
            prop_assert_eq!(next, total);
        }
    }

    fn fix_crc(bytes: &mut [u8]) {
        let crc = message_crc(&bytes[..OFF_CRC], &bytes[HEADER_LEN..]);
        bytes[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn specific_errors() {
        let hdr = Header::mailbox(ClusterId(1), ClusterId(2), PortId(7), 9);
        let good = encode_vec(&hdr, &[1u8; MAILBOX_PAYLOAD]);
        let mut b = good.clone();
        b[0] ^= 1;
        assert!(matches!(decode(&b, CLUSTERS), Err(WireError::BadMagic(_))));
        let mut b = good.clone();
        b[OFF_VERSION] = 99;
        assert_eq!(decode(&b, CLUSTERS), Err(WireError::BadVersion(99)));
        let mut b = good.clone();
        b[HEADER_LEN + 5] ^= 0x10;
        assert!(matches!(
            decode(&b, CLUSTERS),
            Err(WireError::Checksum { .. })
        ));
        let mut b = good.clone();
        b[OFF_RESERVED] = 1;
        fix_crc(&mut b);
        assert_eq!(decode(&b, CLUSTERS), Err(WireError::Reserved(1)));
        let mut b = good.clone();
        b[OFF_FLAGS] = 0x80;
        fix_crc(&mut b);
        assert_eq!(decode(&b, CLUSTERS), Err(WireError::BadFlags(0x80)));
        let mut b = good.clone();
        b[OFF_LEN..OFF_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&b, CLUSTERS),
            Err(WireError::BadLength { .. })
        ));
        assert_eq!(encode_header(&hdr, &[0u8; 3]), Err(WireError::Encode));
        assert_eq!(peek_dst(&good), Some(ClusterId(2)));
    }
}
