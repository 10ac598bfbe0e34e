//! Property tests of the UArea image: every valid UArea round-trips, and
//! every damaged, foreign, out-of-version or semantically invalid image is
//! rejected with the right error.

mod strategy;

use abi::{ClusterId, Pid, Tid};
use crc32fast::hash as crc32;
use proptest::prelude::*;
use uarea::thread::RFLAGS_IF;
use uarea::*;

/// Wrap `payload` in a well-formed envelope (correct length and CRC), so a
/// test can reach the checks behind the checksum.
fn seal(version: u16, payload: &[u8]) -> Vec<u8> {
    let mut image = Vec::with_capacity(HEADER_LEN + payload.len());
    image.extend_from_slice(&MAGIC);
    image.extend_from_slice(&version.to_le_bytes());
    image.extend_from_slice(&0u16.to_le_bytes());
    image.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut covered = image.clone();
    covered.extend_from_slice(payload);
    image.extend_from_slice(&crc32(&covered).to_le_bytes());
    image.extend_from_slice(payload);
    image
}

fn payload(image: &[u8]) -> &[u8] {
    &image[HEADER_LEN..]
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Ways to break one invariant of a valid UArea, with the error expected.
fn break_invariant(u: &mut UArea, which: u8, pick: usize) -> fn(&Invariant) -> bool {
    let n = u.threads.len();
    let t = pick % n;
    match which % 16 {
        0 => {
            let dup = u.threads[t].clone();
            u.threads.push(dup);
            u.thread_count += 1;
            |e| matches!(e, Invariant::DuplicateTid(_) | Invariant::StacksOverlap(..))
        }
        1 => {
            u.thread_count += 1 + pick as u32 % 5;
            |e| matches!(e, Invariant::ThreadCountMismatch { .. })
        }
        2 => {
            // Grow the text segment into the next one.
            u.memory.segments[0].len += 4096;
            |e| matches!(e, Invariant::SegmentsOverlap { .. })
        }
        3 => {
            u.threads[t].context.rip = 0xffff_8000_0000_1000 + (pick as u64 % 0x1000_0000);
            |e| {
                matches!(
                    e,
                    Invariant::BadAddress {
                        fault: AddressFault::KernelHalf,
                        ..
                    }
                )
            }
        }
        4 => {
            u.threads[t].context.rsp = 0x0000_8000_0000_0000 + (pick as u64 % 0x1000_0000);
            |e| {
                matches!(
                    e,
                    Invariant::BadAddress {
                        fault: AddressFault::NonCanonical,
                        ..
                    }
                )
            }
        }
        5 => {
            // Move a live thread's stack where nothing is mapped.
            let thread = &mut u.threads[t];
            thread.state = ThreadState::Running;
            thread.restart_syscall = false;
            u.header.flags.set(UAreaFlags::FROZEN, false);
            u.sched.run_queue.retain(|&tid| tid != thread.tid);
            thread.stack.base = 0x6000_0000_0000;
            |e| matches!(e, Invariant::StackOutsideSegments(_))
        }
        6 => {
            u.threads[t].context.rflags |= 3 << 12; // IOPL 3
            |e| matches!(e, Invariant::BadRflags { .. })
        }
        7 => {
            u.threads[t].context.rflags &= !RFLAGS_IF;
            |e| matches!(e, Invariant::BadRflags { .. })
        }
        8 => {
            u.threads[t].context.fxsave.0[FxSave::MXCSR_OFFSET + 2] = 1;
            |e| matches!(e, Invariant::BadMxcsr { .. })
        }
        9 => {
            u.header.pid = Pid::new(ClusterId((u.header.birth_cluster.0 + 1) % 256), 1).unwrap();
            |e| matches!(e, Invariant::BirthClusterMismatch { .. })
        }
        10 => {
            u.next_tid = Tid(0);
            |e| matches!(e, Invariant::TidNotBelowNextTid { .. })
        }
        11 => {
            u.sched.run_queue.push(Tid(u32::MAX));
            |e| matches!(e, Invariant::RunQueueMismatch { .. })
        }
        12 => {
            u.header.name = "x".repeat(17);
            |e| matches!(e, Invariant::BadName { len: 17 })
        }
        13 => {
            u.memory.segments[0].perms = Perms::ALL;
            |e| matches!(e, Invariant::WriteAndExecute { .. })
        }
        14 => {
            u.header
                .flags
                .set(UAreaFlags::EXITING, u.exit.exit_code.is_none());
            |e| matches!(e, Invariant::ExitStateMismatch)
        }
        _ => {
            u.threads.clear();
            u.thread_count = 0;
            u.sched.run_queue.clear();
            u.exit.joiners.clear();
            |e| matches!(e, Invariant::NoThreads)
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn generated_uareas_are_valid(u in strategy::uarea()) {
        prop_assert_eq!(u.validate(), Ok(()));
    }

    #[test]
    fn decode_inverts_encode(u in strategy::uarea()) {
        let image = u.encode();
        prop_assert_eq!(image.len(), u.encoded_len());
        prop_assert_eq!(UArea::decode(&image), Ok(u.clone()));
        let block = u.encode_block();
        prop_assert_eq!(block.len() % UAREA_BLOCK_SIZE, 0);
        prop_assert!(block.len() >= image.len());
        prop_assert_eq!(UArea::decode(&block), Ok(u));
    }

    #[test]
    fn encode_into_matches_encode(u in strategy::uarea(), slack in 0usize..64) {
        let mut buf = vec![0x5a; u.encoded_len() + slack];
        let len = u.encode_into(&mut buf).unwrap();
        prop_assert_eq!(&buf[..len], &u.encode()[..]);
        prop_assert!(buf[len..].iter().all(|&b| b == 0));
    }

    #[test]
    fn semantic_violations_are_rejected(u in strategy::uarea(), which: u8, pick: usize) {
        let mut broken = u;
        let expected = break_invariant(&mut broken, which, pick);
        match UArea::decode(&broken.encode()) {
            Err(UAreaError::Invalid(invariant)) => {
                prop_assert!(expected(&invariant), "case {}: got {:?}", which % 16, invariant)
            }
            other => prop_assert!(false, "case {}: got {:?}", which % 16, other),
        }
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn every_prefix_is_truncated(u in strategy::uarea()) {
        let image = u.encode();
        for len in 0..image.len() {
            match UArea::decode(&image[..len]) {
                Err(UAreaError::Truncated { got, .. }) => prop_assert_eq!(got, len),
                other => prop_assert!(false, "prefix {}: {:?}", len, other),
            }
        }
    }

    #[test]
    fn any_flipped_byte_is_rejected(u in strategy::uarea(), at: prop::sample::Index, mask in 1u8..) {
        let mut image = u.encode();
        let i = at.index(image.len());
        image[i] ^= mask;
        let result = UArea::decode(&image);
        prop_assert!(result.is_err(), "flip at {} accepted", i);
        if i >= HEADER_LEN {
            // CRC-32 detects every error burst up to 32 bits.
            let is_checksum = matches!(result, Err(UAreaError::ChecksumMismatch { .. }));
            prop_assert!(is_checksum, "{:?}", result);
        }
    }
}

/// The typical single-threaded process used for exhaustive checks.
fn typical() -> UArea {
    let text = 0x40_0000;
    let stack_base = 0x7fff_fff0_0000;
    let mut memory = MemoryMap::default();
    for (start, len, perms, kind, backing) in [
        (
            text,
            0x5_6000,
            Perms::RX,
            SegmentKind::Text,
            Backing::Image {
                offset: 0x1000,
                len: 0x5_5a10,
            },
        ),
        (
            0x45_6000,
            0x2000,
            Perms::RW,
            SegmentKind::Data,
            Backing::Image {
                offset: 0x5_7000,
                len: 0x1234,
            },
        ),
        (
            0x45_8000,
            0x1000,
            Perms::RW,
            SegmentKind::Bss,
            Backing::Anonymous,
        ),
        (
            0x50_0000,
            0x2_0000,
            Perms::RW,
            SegmentKind::Heap,
            Backing::Anonymous,
        ),
        (
            stack_base,
            0x2000,
            Perms::RW,
            SegmentKind::Stack,
            Backing::Anonymous,
        ),
    ] {
        memory.insert(Segment {
            start,
            len,
            perms,
            kind,
            backing,
        });
    }
    memory.heap_break = 0x50_8000;
    memory.mmap_cursor = 0x1000_0000;
    let header = Header {
        flags: UAreaFlags::EMPTY,
        pid: Pid::new(ClusterId(3), 42).unwrap(),
        parent: Pid::new(ClusterId(0), 1),
        name: "hello".into(),
        birth_cluster: ClusterId(3),
        current_cluster: ClusterId(3),
    };
    let mut u = UArea::new(header, memory);
    let stack = StackExtent {
        base: stack_base,
        size: 0x2000,
        guard: 0x1000,
    };
    u.add_thread(Context::new_user(text + 0x120, 0, stack.top()), stack);
    u
}

#[test]
fn typical_size_is_reported() {
    let u = typical();
    println!(
        "typical 1-thread UArea: {} bytes encoded ({} header + {} payload), block {} bytes",
        u.encoded_len(),
        HEADER_LEN,
        u.encoded_len() - HEADER_LEN,
        u.block_len()
    );
    assert!(u.encoded_len() <= 2048);
}

#[test]
fn every_single_byte_flip_of_typical_image_is_rejected() {
    let image = typical().encode();
    for i in 0..image.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut damaged = image.clone();
            damaged[i] ^= mask;
            let result = UArea::decode(&damaged);
            let expected = match i {
                0..8 => matches!(result, Err(UAreaError::BadMagic { .. })),
                // A flip that lands on another version this build reads leaves the checksum
                // to catch it.
                8..10
                    if (OLDEST_SUPPORTED_VERSION..=FORMAT_VERSION)
                        .contains(&u16::from_le_bytes([damaged[8], damaged[9]])) =>
                {
                    matches!(result, Err(UAreaError::ChecksumMismatch { .. }))
                }
                8..10 => matches!(result, Err(UAreaError::UnsupportedVersion { .. })),
                10..12 => matches!(result, Err(UAreaError::ReservedNonZero { .. })),
                12..16 => matches!(
                    result,
                    Err(UAreaError::Truncated { .. }
                        | UAreaError::LengthMismatch { .. }
                        | UAreaError::ChecksumMismatch { .. })
                ),
                _ => matches!(result, Err(UAreaError::ChecksumMismatch { .. })),
            };
            assert!(expected, "byte {i} ^ {mask:#x}: {result:?}");
        }
    }
}

#[test]
fn foreign_image_has_bad_magic() {
    let mut image = typical().encode();
    image[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\0");
    assert_eq!(
        UArea::decode(&image),
        Err(UAreaError::BadMagic {
            found: *b"\x7fELF\x02\x01\x01\0"
        })
    );
    // Even a short foreign buffer is foreign, not truncated.
    assert!(matches!(
        UArea::decode(b"\x7fELF"),
        Err(UAreaError::BadMagic { .. })
    ));
    assert_eq!(
        UArea::decode(&[0u8; 4096]),
        Err(UAreaError::BadMagic { found: [0; 8] })
    );
}

#[test]
fn old_and_new_versions_are_rejected() {
    let image = typical().encode();
    for version in [
        0,
        OLDEST_SUPPORTED_VERSION - 1,
        FORMAT_VERSION + 1,
        u16::MAX,
    ] {
        if (OLDEST_SUPPORTED_VERSION..=FORMAT_VERSION).contains(&version) {
            continue;
        }
        // Correctly sealed, so only the version is wrong.
        let resealed = seal(version, payload(&image));
        assert_eq!(
            UArea::decode(&resealed),
            Err(UAreaError::UnsupportedVersion {
                found: version,
                oldest: OLDEST_SUPPORTED_VERSION,
                newest: FORMAT_VERSION
            })
        );
    }
    assert_eq!(
        UArea::decode(&seal(FORMAT_VERSION, payload(&image))),
        Ok(typical())
    );
}

#[test]
fn garbage_payload_behind_valid_checksum_fails_to_decode() {
    // A thread count varint that never ends.
    let garbage = [0xffu8; 40];
    assert!(matches!(
        UArea::decode(&seal(FORMAT_VERSION, &garbage)),
        Err(UAreaError::Decode(_))
    ));
    // A valid payload cut short, resealed: the checksum passes, postcard fails.
    let image = typical().encode();
    let short = &payload(&image)[..payload(&image).len() - 10];
    assert!(matches!(
        UArea::decode(&seal(FORMAT_VERSION, short)),
        Err(UAreaError::Decode(_))
    ));
}

#[test]
fn unused_payload_bytes_are_a_length_mismatch() {
    let image = typical().encode();
    let mut longer = payload(&image).to_vec();
    longer.push(0);
    assert_eq!(
        UArea::decode(&seal(FORMAT_VERSION, &longer)),
        Err(UAreaError::LengthMismatch {
            declared: longer.len(),
            actual: longer.len() - 1
        })
    );
}

#[test]
fn non_zero_padding_is_a_length_mismatch() {
    let mut block = typical().encode_block();
    *block.last_mut().unwrap() = 1;
    assert!(matches!(
        UArea::decode(&block),
        Err(UAreaError::LengthMismatch { .. })
    ));
}

#[test]
fn oversized_declared_length_is_rejected_before_decoding() {
    let mut image = typical().encode();
    image[12..16].copy_from_slice(&(MAX_PAYLOAD_LEN as u32 + 1).to_le_bytes());
    assert!(matches!(
        UArea::decode(&image),
        Err(UAreaError::LengthMismatch { .. })
    ));
}

#[test]
fn forged_rflags_and_kernel_pointers_are_rejected() {
    let mut u = typical();
    u.threads[0].context.rflags |= 1 << 17; // VM
    assert!(matches!(
        UArea::decode(&u.encode()),
        Err(UAreaError::Invalid(Invariant::BadRflags { .. }))
    ));
    let mut u = typical();
    u.memory.segments[1].start = 0xffff_ffff_8000_0000;
    assert!(matches!(
        UArea::decode(&u.encode()),
        Err(UAreaError::Invalid(Invariant::BadAddress {
            fault: AddressFault::KernelHalf,
            ..
        }))
    ));
}
