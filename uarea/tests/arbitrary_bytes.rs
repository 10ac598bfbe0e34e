//! Fuzz-style properties: the decoders of bytes that cross the NoC (the UArea envelope, the
//! migration image's manifest and body) never panic on arbitrary input — they return an
//! error. Random bytes rarely pass a CRC, so the UArea payload and the manifest are also
//! sealed with a valid checksum, reaching the postcard decoder and the semantic checks.

use abi::{ClusterId, Pid};
use proptest::prelude::*;
use uarea::image::{ImageReader, Manifest, PageTransport, MANIFEST_LEN};
use uarea::{UArea, HEADER_LEN, MAGIC};

fn seal(payload: &[u8]) -> Vec<u8> {
    let mut image = Vec::with_capacity(HEADER_LEN + payload.len());
    image.extend_from_slice(&MAGIC);
    image.extend_from_slice(&1u16.to_le_bytes());
    image.extend_from_slice(&0u16.to_le_bytes());
    image.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut covered = image.clone();
    covered.extend_from_slice(payload);
    image.extend_from_slice(&crc32fast::hash(&covered).to_le_bytes());
    image.extend_from_slice(payload);
    image
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn uarea_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = UArea::decode(&bytes);
    }

    #[test]
    fn sealed_garbage_payload_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = UArea::decode(&seal(&payload));
    }

    #[test]
    fn manifest_decode_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..96), seal_it: bool) {
        if seal_it && bytes.len() >= MANIFEST_LEN {
            bytes[0..4].copy_from_slice(b"TMIG");
            bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
            let check = crc32fast::hash(&bytes[..44]);
            bytes[44..48].copy_from_slice(&check.to_le_bytes());
        }
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn image_body_reader_never_panics(
        uarea_len in 0u32..4096,
        page_count in 0u32..4,
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5000), 0..4),
        crc: u32,
        direct: bool,
    ) {
        let manifest = Manifest {
            pid: Pid::new(ClusterId(0), 1).unwrap(),
            source: ClusterId(0),
            destination: ClusterId(1),
            uarea_len,
            page_count,
            sequence: 0,
            transport: if direct { PageTransport::Direct } else { PageTransport::Inline },
        };
        let mut reader = ImageReader::new(manifest);
        for chunk in &chunks {
            if reader.feed(chunk, |_, _, _| Ok(())).is_err() {
                return Ok(());
            }
        }
        let _ = reader.finish(crc);
    }
}
