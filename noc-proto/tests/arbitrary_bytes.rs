//! Fuzz-style property: the NoC wire decoder never panics on arbitrary bytes — random ones,
//! and random ones behind a valid CRC (which reach the field checks).

use noc_proto::wire::{decode, HEADER_LEN, OFF_CRC};
use proptest::prelude::*;

fn seal(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_LEN {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes[..OFF_CRC]);
        crc.update(&bytes[HEADER_LEN..]);
        let crc = crc.finalize();
        bytes[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn wire_decode_never_panics(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..300),
        clusters in 0u16..40,
        sealed: bool,
    ) {
        if sealed {
            seal(&mut bytes);
        }
        if let Ok((_, payload)) = decode(&bytes, clusters) {
            prop_assert_eq!(payload.len() + HEADER_LEN, bytes.len());
        }
    }
}
