//! The migration image: a streamed UArea plus page records, checked as it arrives.

use abi::{ClusterId, Pid};
use proptest::prelude::*;
use uarea::image::*;
use uarea::*;

const TEXT: u64 = 0x40_0000;
const DATA: u64 = 0x40_4000;
const STACK: u64 = 0x7fff_fff0_0000;

fn process() -> UArea {
    let mut memory = MemoryMap::default();
    memory.insert(Segment {
        start: TEXT,
        len: 0x4000,
        perms: Perms::RX,
        kind: SegmentKind::Text,
        backing: Backing::Image {
            offset: 0,
            len: 0x4000,
        },
    });
    memory.insert(Segment {
        start: DATA,
        len: 0x4000,
        perms: Perms::RW,
        kind: SegmentKind::Bss,
        backing: Backing::Anonymous,
    });
    memory.insert(Segment {
        start: STACK,
        len: 0x4000,
        perms: Perms::RW,
        kind: SegmentKind::Stack,
        backing: Backing::Anonymous,
    });
    let pid = Pid::new(ClusterId(1), 7).unwrap();
    let header = Header {
        flags: UAreaFlags::FROZEN,
        pid,
        parent: None,
        name: "img".into(),
        birth_cluster: ClusterId(1),
        current_cluster: ClusterId(1),
    };
    let mut u = UArea::new(header, memory);
    let stack = StackExtent {
        base: STACK,
        size: 0x4000,
        guard: 0x1000,
    };
    u.add_thread(Context::new_user(TEXT + 0x10, 0, stack.top() - 8), stack);
    u
}

fn pages() -> Vec<(u64, [u8; 4096])> {
    [TEXT, TEXT + 0x1000, DATA + 0x2000, STACK + 0x3000]
        .iter()
        .map(|&a| (a, [(a >> 12) as u8; 4096]))
        .collect()
}

/// Builds manifest + body the way a source does.
fn image(u: &UArea, pages: &[(u64, [u8; 4096])]) -> (Manifest, Vec<u8>, u32) {
    let uarea = u.encode();
    let mut body = uarea.clone();
    for (vaddr, data) in pages {
        encode_page(*vaddr, data, &mut body);
    }
    let mut crc = ImageCrc::new();
    crc.update(&body);
    let manifest = Manifest {
        pid: u.header.pid,
        source: ClusterId(1),
        destination: ClusterId(2),
        uarea_len: uarea.len() as u32,
        page_count: pages.len() as u32,
        sequence: 9,
        transport: PageTransport::Inline,
    };
    (manifest, body, crc.finish())
}

/// The pages a receiver mapped: (user address, contents).
type Pages = Vec<(u64, [u8; 4096])>;

/// Feeds the body in chunks of `chunk` bytes; returns the UArea and the pages seen.
fn receive(
    manifest: Manifest,
    body: &[u8],
    crc: u32,
    chunk: usize,
) -> Result<(UArea, Pages), ImageError> {
    let mut reader = ImageReader::new(Manifest::decode(&manifest.encode())?);
    let mut got = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        reader.feed(piece, |_, vaddr, data| {
            let PageBytes::Inline(data) = data else {
                return Err(ImageError::Truncated);
            };
            got.push((vaddr, *data));
            Ok(())
        })?;
    }
    Ok((reader.finish(crc)?, got))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_round_trips(chunk in 1usize..20_000) {
        let (u, pages) = (process(), pages());
        let (manifest, body, crc) = image(&u, &pages);
        let (back, got) = receive(manifest, &body, crc, chunk).unwrap();
        prop_assert_eq!(back, u);
        prop_assert_eq!(got, pages);
    }

    #[test]
    fn any_flipped_body_byte_is_rejected(at in 0usize..(1 << 20), mask in 1u8..) {
        let (manifest, mut body, crc) = image(&process(), &pages());
        let at = at % body.len();
        body[at] ^= mask;
        prop_assert!(receive(manifest, &body, crc, 4096).is_err());
    }
}

#[test]
fn manifest_round_trips_and_rejects_damage() {
    let (manifest, _, _) = image(&process(), &pages());
    let bytes = manifest.encode();
    assert_eq!(Manifest::decode(&bytes), Ok(manifest));
    for i in 0..MANIFEST_LEN {
        let mut bad = bytes;
        bad[i] ^= 0x40;
        assert!(Manifest::decode(&bad).is_err(), "flip at {i} accepted");
    }
    assert_eq!(Manifest::decode(&bytes[..10]), Err(ImageError::Truncated));
}

#[test]
fn truncated_body_is_rejected() {
    let (manifest, body, crc) = image(&process(), &pages());
    for cut in [0, 10, manifest.uarea_len as usize, body.len() - 1] {
        assert!(
            receive(manifest, &body[..cut], crc, 4096).is_err(),
            "cut at {cut} accepted"
        );
    }
}

#[test]
fn extra_bytes_are_rejected() {
    let (manifest, mut body, crc) = image(&process(), &pages());
    body.push(0);
    assert_eq!(
        receive(manifest, &body, crc, 4096).err(),
        Some(ImageError::LengthMismatch)
    );
}

#[test]
fn a_page_outside_the_segments_is_rejected() {
    let mut pages = pages();
    pages.push((0x1000_0000, [1; 4096]));
    let (manifest, body, crc) = image(&process(), &pages);
    assert_eq!(
        receive(manifest, &body, crc, 4096).err(),
        Some(ImageError::PageOutsideSegments(0x1000_0000))
    );
}

#[test]
fn a_duplicate_page_is_rejected() {
    let mut pages = pages();
    pages.push(pages[0]);
    let (manifest, body, crc) = image(&process(), &pages);
    assert_eq!(
        receive(manifest, &body, crc, 4096).err(),
        Some(ImageError::DuplicatePage(TEXT))
    );
}

#[test]
fn a_uarea_of_another_pid_is_rejected() {
    let (mut manifest, body, crc) = image(&process(), &pages());
    manifest.pid = Pid::new(ClusterId(1), 8).unwrap();
    assert_eq!(
        receive(manifest, &body, crc, 4096).err(),
        Some(ImageError::PidMismatch)
    );
}

/// With the direct transport the stream is an index: addresses only, every one checked as
/// with inline pages, and the bytes left to the DMA engine.
#[test]
fn a_direct_image_carries_only_checked_addresses() {
    let u = process();
    let addresses: Vec<u64> = pages().iter().map(|(a, _)| *a).collect();
    let encoded = u.encode();
    let mut body = encoded.clone();
    for address in &addresses {
        body.extend_from_slice(&address.to_le_bytes());
    }
    let manifest = Manifest {
        pid: u.header.pid,
        source: ClusterId(1),
        destination: ClusterId(2),
        uarea_len: encoded.len() as u32,
        page_count: addresses.len() as u32,
        sequence: 3,
        transport: PageTransport::Direct,
    };
    assert_eq!(
        manifest.body_len(),
        (encoded.len() + 8 * addresses.len()) as u64
    );
    let decoded = Manifest::decode(&manifest.encode()).unwrap();
    assert_eq!(decoded, manifest);
    let mut crc = ImageCrc::new();
    crc.update(&body);
    let mut reader = ImageReader::new(decoded);
    let mut seen = Vec::new();
    for piece in body.chunks(5) {
        reader
            .feed(piece, |_, vaddr, data| {
                assert_eq!(data, PageBytes::Dma, "a direct image carries no page bytes");
                seen.push(vaddr);
                Ok(())
            })
            .unwrap();
    }
    assert_eq!(seen, addresses);
    assert!(reader.finish(crc.finish()).is_ok());
    // An address outside the segments is refused as with inline pages.
    let mut bad = encoded.clone();
    bad.extend_from_slice(&0x1000_0000u64.to_le_bytes());
    let one = Manifest {
        page_count: 1,
        ..manifest
    };
    let mut reader = ImageReader::new(one);
    assert_eq!(
        reader.feed(&bad, |_, _, _| Ok(())),
        Err(ImageError::PageOutsideSegments(0x1000_0000))
    );
    // An unknown transport is refused.
    let mut raw = manifest.encode();
    raw[6] = 7;
    let check = crc32fast::hash(&raw[..44]);
    raw[44..48].copy_from_slice(&check.to_le_bytes());
    assert_eq!(Manifest::decode(&raw), Err(ImageError::UnknownTransport(7)));
}

/// A delta image (the final image of a pre-copy) names each page once, flagged CARRIED when
/// the destination already holds it; any other low bit makes the address unaligned.
#[test]
fn a_delta_image_says_which_pages_are_carried() {
    let u = process();
    let addresses: Vec<u64> = pages().iter().map(|(a, _)| *a).collect();
    assert!(addresses.len() >= 2);
    let encoded = u.encode();
    let mut body = encoded.clone();
    for (i, address) in addresses.iter().enumerate() {
        let record = if i % 2 == 0 {
            address | CARRIED
        } else {
            *address
        };
        body.extend_from_slice(&record.to_le_bytes());
    }
    let manifest = Manifest {
        pid: u.header.pid,
        source: ClusterId(1),
        destination: ClusterId(2),
        uarea_len: encoded.len() as u32,
        page_count: addresses.len() as u32,
        sequence: 4,
        transport: PageTransport::Delta,
    };
    let decoded = Manifest::decode(&manifest.encode()).unwrap();
    assert_eq!(decoded, manifest);
    let mut crc = ImageCrc::new();
    crc.update(&body);
    let mut reader = ImageReader::new(decoded);
    let mut seen = Vec::new();
    for piece in body.chunks(7) {
        reader
            .feed(piece, |_, vaddr, data| {
                seen.push((vaddr, data == PageBytes::Carried));
                assert_ne!(data, PageBytes::Inline(&[0; 4096]));
                Ok(())
            })
            .unwrap();
    }
    let expected: Vec<(u64, bool)> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, i % 2 == 0))
        .collect();
    assert_eq!(seen, expected);
    assert!(reader.finish(crc.finish()).is_ok());
    // Bit 1 is no flag: the address is unaligned.
    let mut bad = encoded.clone();
    bad.extend_from_slice(&(addresses[0] | 2).to_le_bytes());
    let one = Manifest {
        page_count: 1,
        ..manifest
    };
    let mut reader = ImageReader::new(one);
    assert_eq!(
        reader.feed(&bad, |_, _, _| Ok(())),
        Err(ImageError::PageOutsideSegments(addresses[0] | 2))
    );
}
