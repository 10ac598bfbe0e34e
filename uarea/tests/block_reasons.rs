//! Format 3's block reasons: a portal write the DMA engine carries out (`PortalDma`) and a
//! process waiting for its own migration (`Migrating`) round-trip, are checked like every
//! other blocked state, and cannot hide in a version-2 image.

use abi::{ClusterId, Pid, PortId, Tid};
use crc32fast::hash as crc32;
use uarea::*;

const TEXT: u64 = 0x40_0000;
const STACK_BASE: u64 = 0x7fff_fff0_0000;

/// A two-thread process on cluster 3 with one portal sender (descriptor 0) and one mailbox
/// receiver (descriptor 1); thread 1 is in `state`.
fn process_with(state: ThreadState) -> UArea {
    let mut memory = MemoryMap::default();
    for (start, len, perms, kind) in [
        (TEXT, 0x1000, Perms::RX, SegmentKind::Text),
        (STACK_BASE, 0x2000, Perms::RW, SegmentKind::Stack),
        (
            STACK_BASE - 0x10_0000,
            0x2000,
            Perms::RW,
            SegmentKind::Stack,
        ),
    ] {
        memory.insert(Segment {
            start,
            len,
            perms,
            kind,
            backing: Backing::Anonymous,
        });
    }
    memory.mmap_cursor = 0x1000_0000;
    let header = Header {
        flags: UAreaFlags::EMPTY,
        pid: Pid::new(ClusterId(3), 7).unwrap(),
        parent: None,
        name: "writer".into(),
        birth_cluster: ClusterId(3),
        current_cluster: ClusterId(3),
    };
    let mut u = UArea::new(header, memory);
    for base in [STACK_BASE, STACK_BASE - 0x10_0000] {
        let stack = StackExtent {
            base,
            size: 0x2000,
            guard: 0x1000,
        };
        u.add_thread(Context::new_user(TEXT + 0x10, 0, stack.top()), stack);
    }
    u.endpoints.push(Endpoint {
        descriptor: 0,
        kind: EndpointKind::Portal,
        role: Role::Sender,
        local_port: PortId(8),
        peer: Peer::Process {
            pid: Pid::new(ClusterId(1), 2).unwrap(),
            port: PortId(9),
        },
        flags: EndpointFlags::EMPTY,
        tx_seq: 0,
        rx_seq: 0,
    });
    u.endpoints.push(Endpoint {
        descriptor: 1,
        kind: EndpointKind::Mailbox,
        role: Role::Receiver,
        local_port: PortId(3),
        peer: Peer::None,
        flags: EndpointFlags::EMPTY,
        tx_seq: 0,
        rx_seq: 0,
    });
    let thread = u.thread_mut(Tid(1)).unwrap();
    thread.state = state;
    u.sched.run_queue.retain(|t| *t != Tid(1));
    if state == ThreadState::Ready {
        u.sched.run_queue.push(Tid(1));
    }
    u
}

fn blocked(reason: BlockReason) -> UArea {
    process_with(ThreadState::Blocked(reason))
}

fn invariant(u: &UArea) -> Option<Invariant> {
    u.validate().err()
}

/// The image of `u` relabelled as format `version` (CRC recomputed).
fn as_version(u: &UArea, version: u16) -> Vec<u8> {
    let mut image = u.encode();
    image[8..10].copy_from_slice(&version.to_le_bytes());
    let mut covered = image[..16].to_vec();
    covered.extend_from_slice(&image[HEADER_LEN..]);
    let crc = crc32(&covered);
    image[16..20].copy_from_slice(&crc.to_le_bytes());
    image
}

#[test]
fn format_is_version_3_and_still_reads_2() {
    assert_eq!(FORMAT_VERSION, 3);
    assert_eq!(OLDEST_SUPPORTED_VERSION, 2);
}

#[test]
fn both_new_reasons_round_trip() {
    for reason in [
        BlockReason::PortalDma { descriptor: 0 },
        BlockReason::Migrating {
            destination: ClusterId(5),
        },
    ] {
        let u = blocked(reason);
        assert_eq!(invariant(&u), None, "{reason:?}");
        let image = u.encode();
        assert_eq!(UArea::decode(&image).unwrap(), u);
        let mut block = vec![0u8; u.block_len()];
        u.encode_into(&mut block).unwrap();
        assert_eq!(UArea::decode(&block).unwrap(), u);
    }
}

#[test]
fn portal_dma_must_name_a_portal_sender() {
    for descriptor in [1, 2, u32::MAX] {
        let u = blocked(BlockReason::PortalDma { descriptor });
        assert_eq!(
            invariant(&u),
            Some(Invariant::BadBlockedEndpoint {
                tid: Tid(1),
                descriptor
            })
        );
        assert!(UArea::decode(&u.encode()).is_err());
    }
}

#[test]
fn a_write_in_flight_never_travels_frozen() {
    let mut u = blocked(BlockReason::PortalDma { descriptor: 0 });
    u.header.flags.set(UAreaFlags::FROZEN, true);
    assert_eq!(
        invariant(&u),
        Some(Invariant::WriteInFlightWhileFrozen(Tid(1)))
    );
    // A migration waited for is the one blocked state a frozen image keeps.
    let mut waiting = blocked(BlockReason::Migrating {
        destination: ClusterId(0),
    });
    waiting.header.flags.set(UAreaFlags::FROZEN, true);
    assert_eq!(invariant(&waiting), None);
}

#[test]
fn migrating_must_name_a_real_cluster() {
    for destination in [ClusterId(ClusterId::MAX_CLUSTERS), ClusterId(u16::MAX)] {
        let u = blocked(BlockReason::Migrating { destination });
        assert_eq!(
            invariant(&u),
            Some(Invariant::BadMigrationDestination {
                tid: Tid(1),
                destination
            })
        );
        assert!(UArea::decode(&u.encode()).is_err());
    }
}

#[test]
fn version_2_images_decode_unless_they_name_a_version_3_reason() {
    let old = process_with(ThreadState::Blocked(BlockReason::PortalWrite {
        descriptor: 0,
    }));
    assert_eq!(UArea::decode(&as_version(&old, 2)).unwrap(), old);
    for reason in [
        BlockReason::PortalDma { descriptor: 0 },
        BlockReason::Migrating {
            destination: ClusterId(1),
        },
    ] {
        let new = blocked(reason);
        assert_eq!(
            UArea::decode(&as_version(&new, 2)),
            Err(UAreaError::Invalid(Invariant::NewerThanItsVersion {
                version: 2
            }))
        );
        assert_eq!(UArea::decode(&as_version(&new, 3)).unwrap(), new);
    }
}
