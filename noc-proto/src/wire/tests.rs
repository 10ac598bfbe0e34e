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
