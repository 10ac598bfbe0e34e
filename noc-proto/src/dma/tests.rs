//! Validation properties: whatever a guest puts in a grant or a descriptor, a plan never
//! writes outside the granted ranges, never reads outside the sender's RAM, and nothing
//! overflows or panics.

extern crate std;
use std::vec::Vec;

use super::*;
use proptest::prelude::*;

fn arb_range(ram: u64) -> impl Strategy<Value = Range> {
    prop_oneof![
        // Mostly plausible ranges inside (or just past) RAM...
        (0..ram + 8192, 0u32..70_000).prop_map(|(addr, len)| Range { addr, len }),
        // ...and some hostile ones near the top of the address space.
        (u64::MAX - 100_000..=u64::MAX, any::<u32>()).prop_map(|(addr, len)| Range { addr, len }),
    ]
}

fn inside(ranges: &[Range], addr: u64, len: u64) -> bool {
    ranges
        .iter()
        .any(|r| addr >= r.addr && addr + len <= r.addr.saturating_add(r.len as u64))
}

proptest! {
    #[test]
    fn plans_stay_inside_grant_and_ram(
        source in proptest::collection::vec(arb_range(1 << 20), 0..8),
        target in proptest::collection::vec(arb_range(1 << 20), 0..8),
        sender_ram in 0u64..(1 << 20),
        receiver_ram in 0u64..(1 << 20),
        limit in any::<u32>(),
        fudge in -2i64..2,
    ) {
        let sum: u64 = source.iter().map(|r| r.len as u64).sum();
        let declared = (sum as i64 + fudge).clamp(0, u32::MAX as i64) as u32;
        let Ok(plan) = plan(&source, sender_ram, declared, &target, receiver_ram, limit) else {
            return Ok(());
        };
        prop_assert!(plan.total <= MAX_DMA_TRANSFER && plan.total <= limit as u64);
        prop_assert_eq!(plan.total, declared as u64);
        let mut moved = 0;
        for step in plan.steps() {
            prop_assert!(step.len > 0);
            prop_assert!(inside(&source, step.src, step.len), "read outside the source list");
            prop_assert!(step.src + step.len <= sender_ram, "read outside the sender's RAM");
            prop_assert!(inside(&target, step.dst, step.len), "write outside the grant");
            prop_assert!(step.dst + step.len <= receiver_ram, "write outside the receiver's RAM");
            moved += step.len;
        }
        prop_assert_eq!(moved, plan.total);
    }

    #[test]
    fn every_destination_byte_is_written_once(
        lens in proptest::collection::vec(1u32..5000, 1..6),
        tlens in proptest::collection::vec(1u32..5000, 1..6),
    ) {
        let mut at = 0;
        let source: Vec<Range> = lens.iter().map(|&len| { let r = Range { addr: at, len }; at += len as u64 + 7; r }).collect();
        let mut at = 0;
        let target: Vec<Range> = tlens.iter().map(|&len| { let r = Range { addr: at, len }; at += len as u64 + 3; r }).collect();
        let total: u64 = source.iter().map(|r| r.len as u64).sum();
        let capacity: u64 = target.iter().map(|r| r.len as u64).sum();
        let result = plan(&source, 1 << 20, total as u32, &target, 1 << 20, u32::MAX);
        if total > capacity {
            prop_assert_eq!(result.err(), Some(Status::OutOfGrant));
            return Ok(());
        }
        let plan = result.unwrap();
        let mut written = std::collections::BTreeSet::new();
        for step in plan.steps() {
            for b in step.dst..step.dst + step.len {
                prop_assert!(written.insert(b), "byte {} written twice", b);
            }
        }
        prop_assert_eq!(written.len() as u64, total);
    }

    #[test]
    fn list_refs_never_overflow(addr in any::<u64>(), count in any::<u32>(), ram in any::<u64>()) {
        if let Ok((at, len)) = (ListRef { addr, count }).bytes_in(ram) {
            prop_assert!(at + len as u64 <= ram);
            prop_assert!(len <= MAX_RANGES * RANGE_LEN);
        }
    }

    #[test]
    fn messages_round_trip(sender in any::<u16>(), transfer in any::<u32>(), addr in any::<u64>(),
                           count in any::<u32>(), limit in any::<u32>()) {
        let grant = Grant { sender, transfer, list: ListRef { addr, count }, limit };
        prop_assert_eq!(Grant::decode(&grant.encode()), Ok(grant));
        let d = Descriptor { destination: sender, transfer, list: ListRef { addr, count }, total: limit };
        prop_assert_eq!(Descriptor::decode(&d.encode()), Ok(d));
    }

    #[test]
    fn junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = Grant::decode(&bytes);
        let _ = Descriptor::decode(&bytes);
        let _ = Completion::decode(&bytes);
        for i in 0..4 {
            let _ = Range::decode_at(&bytes, i);
        }
    }
}

#[test]
fn rejections_are_precise() {
    let ram = 1 << 20;
    let one = [Range {
        addr: 0x1000,
        len: 0x1000,
    }];
    let two = [Range {
        addr: 0x1000,
        len: 0x2000,
    }];
    assert_eq!(
        plan(&one, ram, 0x1000, &[], ram, u32::MAX).err(),
        Some(Status::OutOfGrant)
    );
    assert_eq!(
        plan(&[], ram, 0, &[], ram, u32::MAX).map(|p| p.total),
        Ok(0)
    );
    assert_eq!(
        plan(&two, ram, 0x2000, &one, ram, u32::MAX).err(),
        Some(Status::OutOfGrant)
    );
    assert_eq!(
        plan(&two, ram, 0x2000, &two, ram, 0x1000).err(),
        Some(Status::TooLarge)
    );
    assert_eq!(
        plan(&two, ram, 0x1fff, &two, ram, u32::MAX).err(),
        Some(Status::BadList)
    );
    let outside = [Range {
        addr: ram - 10,
        len: 20,
    }];
    assert_eq!(
        plan(&outside, ram, 20, &two, ram, u32::MAX).err(),
        Some(Status::BadSource)
    );
    let wrap = [Range {
        addr: u64::MAX - 5,
        len: 20,
    }];
    assert_eq!(
        plan(&wrap, ram, 20, &two, ram, u32::MAX).err(),
        Some(Status::BadSource)
    );
    assert_eq!(
        plan(&one, ram, 0x1000, &outside, ram, u32::MAX).err(),
        Some(Status::BadList)
    );
    let big = [Range {
        addr: 0,
        len: (MAX_DMA_TRANSFER + 1) as u32,
    }];
    let room = [Range {
        addr: 0,
        len: u32::MAX,
    }];
    assert_eq!(
        plan(&big, u64::MAX, big[0].len, &room, u64::MAX, u32::MAX).err(),
        Some(Status::TooLarge)
    );
}

#[test]
fn coalescing_merges_adjacent_frames() {
    let mut out = [Range::default(); 4];
    let pieces = [
        (0x1000, 0x1000),
        (0x2000, 0x1000),
        (0x5000, 0x800),
        (0x5800, 0x800),
    ];
    assert_eq!(coalesce(pieces.into_iter(), &mut out), Some(2));
    assert_eq!(
        out[0],
        Range {
            addr: 0x1000,
            len: 0x2000
        }
    );
    assert_eq!(
        out[1],
        Range {
            addr: 0x5000,
            len: 0x1000
        }
    );
    let scattered = [
        (0x1000, 1),
        (0x3000, 1),
        (0x5000, 1),
        (0x7000, 1),
        (0x9000, 1),
    ];
    assert_eq!(coalesce(scattered.into_iter(), &mut out), None);
}

#[test]
fn completion_round_trips() {
    let c = Completion {
        peer: 3,
        transfer: 9,
        role: Role::Receiver,
        status: Status::Corrupt,
        bytes: 77,
        crc: 0xdead_beef,
    };
    assert_eq!(Completion::decode(&c.encode()), Ok(c));
    let mut bad = c.encode();
    bad[9] = 200;
    assert_eq!(Completion::decode(&bad), Err(Status::BadMessage));
}
