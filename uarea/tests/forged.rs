//! Forged images that decode and check out by every older rule but would hurt the kernel
//! later: code where a `syscall` returns to a non-canonical address (a #GP in ring 0 on
//! `sysret`), and descriptors whose successor overflows. Each must be rejected.

use abi::{ClusterId, Pid, PortId};
use uarea::validate::{DESCRIPTOR_LIMIT, EXEC_TOP_GAP};
use uarea::*;

const USER_END: u64 = abi::types::USER_END;

/// A one-thread process whose text is `[text, text + text_len)`, entered at `rip`.
fn process(text: u64, text_len: u64, rip: u64) -> UArea {
    let stack_base = 0x7000_0000_0000;
    let mut memory = MemoryMap::default();
    memory.insert(Segment {
        start: text,
        len: text_len,
        perms: Perms::RX,
        kind: SegmentKind::Text,
        backing: Backing::Anonymous,
    });
    memory.insert(Segment {
        start: stack_base,
        len: 0x2000,
        perms: Perms::RW,
        kind: SegmentKind::Stack,
        backing: Backing::Anonymous,
    });
    memory.mmap_cursor = 0x1000_0000_0000;
    let header = Header {
        flags: UAreaFlags::EMPTY,
        pid: Pid::new(ClusterId(1), 7).unwrap(),
        parent: None,
        name: "forged".into(),
        birth_cluster: ClusterId(1),
        current_cluster: ClusterId(1),
    };
    let mut u = UArea::new(header, memory);
    let stack = StackExtent {
        base: stack_base,
        size: 0x2000,
        guard: 0x1000,
    };
    u.add_thread(Context::new_user(rip, 0, stack.top()), stack);
    u
}

fn mailbox(descriptor: u32) -> Endpoint {
    Endpoint {
        descriptor,
        kind: EndpointKind::Mailbox,
        role: Role::Receiver,
        local_port: PortId(9),
        peer: Peer::None,
        flags: EndpointFlags::EMPTY,
        tx_seq: 0,
        rx_seq: 0,
    }
}

fn invariant(u: &UArea) -> Option<Invariant> {
    match UArea::decode(&u.encode()) {
        Ok(_) => None,
        Err(UAreaError::Invalid(invariant)) => Some(invariant),
        Err(other) => panic!("not a semantic rejection: {other:?}"),
    }
}

#[test]
fn an_ordinary_process_is_accepted() {
    assert_eq!(invariant(&process(0x40_0000, 0x1000, 0x40_0010)), None);
}

#[test]
fn rip_whose_syscall_returns_non_canonical_is_rejected() {
    // Text ending at the top of the user half, RIP on its last two bytes (a `syscall` there
    // returns to 0x8000_0000_0000).
    let top = USER_END - 0x1000;
    let u = process(top, 0x1000, USER_END - 2);
    assert!(matches!(
        invariant(&u),
        Some(Invariant::ExecutableAtUserTop { start }) if start == top
    ));
}

#[test]
fn executable_segment_in_the_last_page_is_rejected_wherever_rip_is() {
    let u = process(USER_END - 0x3000, 0x3000, USER_END - 0x3000);
    assert!(matches!(
        invariant(&u),
        Some(Invariant::ExecutableAtUserTop { .. })
    ));
    // Just below the gap is fine.
    let end = USER_END - EXEC_TOP_GAP;
    assert_eq!(invariant(&process(end - 0x1000, 0x1000, end - 2)), None);
}

#[test]
fn descriptor_u32_max_is_rejected() {
    let mut u = process(0x40_0000, 0x1000, 0x40_0010);
    u.endpoints.push(mailbox(u32::MAX));
    assert_eq!(
        invariant(&u),
        Some(Invariant::DescriptorOutOfRange(u32::MAX))
    );
}

#[test]
fn descriptors_up_to_the_limit_are_accepted_and_beyond_rejected() {
    let mut u = process(0x40_0000, 0x1000, 0x40_0010);
    u.endpoints.push(mailbox(DESCRIPTOR_LIMIT - 1));
    assert_eq!(invariant(&u), None);
    u.endpoints[0].descriptor = DESCRIPTOR_LIMIT;
    assert_eq!(
        invariant(&u),
        Some(Invariant::DescriptorOutOfRange(DESCRIPTOR_LIMIT))
    );
}
