extern crate std;
use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

/// A ring over heap memory, 64-aligned.
struct HeapRing {
    _mem: Vec<u64>,
    ring: Ring,
}

fn heap_ring(capacity: usize) -> HeapRing {
    let words = (RING_HEADER_SIZE + capacity + 64) / 8;
    let mut mem = vec![0u64; words];
    let base = mem.as_mut_ptr() as *mut u8;
    let aligned = base.wrapping_add(base.align_offset(64));
    // SAFETY: `aligned..aligned+128+capacity` lies inside `mem`, which the
    // HeapRing keeps alive for as long as the ring is used.
    let ring = unsafe { Ring::new(aligned, aligned.add(RING_HEADER_SIZE), capacity) };
    ring.init();
    HeapRing { _mem: mem, ring }
}

fn pop_vec(r: &Ring) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; r.capacity()];
    r.pop_into(&mut buf).unwrap().map(|n| buf[..n].to_vec())
}

#[test]
fn fifo_and_wraparound() {
    let h = heap_ring(256);
    let r = &h.ring;
    assert_eq!(pop_vec(r), None);
    for round in 0..200u32 {
        let len = (round as usize * 7) % 100;
        let rec: Vec<u8> = (0..len).map(|i| (i as u32 + round) as u8).collect();
        r.try_push_record(&rec).unwrap();
        r.try_push_record(&round.to_le_bytes()).unwrap();
        assert_eq!(pop_vec(r).unwrap(), rec);
        assert_eq!(pop_vec(r).unwrap(), round.to_le_bytes());
    }
    assert!(r.is_empty());
}

#[test]
fn full_ring_is_backpressure_not_overwrite() {
    let h = heap_ring(256);
    let r = &h.ring;
    let mut pushed = 0u8;
    loop {
        match r.try_push_record(&[pushed; 24]) {
            Ok(()) => pushed += 1,
            Err(RingError::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(pushed as usize, 256 / 32);
    assert_eq!(r.try_push_record(&[0xFF; 24]), Err(RingError::Full));
    for i in 0..pushed {
        assert_eq!(pop_vec(r).unwrap(), [i; 24]);
    }
    assert_eq!(pop_vec(r), None);
    assert_eq!(r.try_push_record(&[0u8; 200]), Err(RingError::TooLarge));
}

#[test]
fn forward_moves_records() {
    let a = heap_ring(512);
    let b = heap_ring(120);
    a.ring.try_push_record(b"one").unwrap();
    a.ring.try_push_record(&[7u8; 48]).unwrap();
    a.ring.try_push_record(&[8u8; 48]).unwrap();
    assert_eq!(a.ring.forward_to(&b.ring), Ok(Some(3)));
    assert_eq!(a.ring.forward_to(&b.ring), Ok(Some(48)));
    assert_eq!(a.ring.forward_to(&b.ring), Err(RingError::Full));
    assert_eq!(pop_vec(&b.ring).unwrap(), b"one");
    // Still full: the next frame would have to wrap (pad + frame).
    assert_eq!(a.ring.forward_to(&b.ring), Err(RingError::Full));
    assert_eq!(pop_vec(&b.ring).unwrap(), [7u8; 48]);
    assert_eq!(a.ring.forward_to(&b.ring), Ok(Some(48)));
    assert_eq!(pop_vec(&b.ring).unwrap(), [8u8; 48]);
    assert_eq!(a.ring.forward_to(&b.ring), Ok(None));
}

#[test]
fn corrupt_indices_are_detected() {
    let h = heap_ring(256);
    h.ring.try_push_record(b"hello").unwrap();
    h.ring.head().store(10_000, Ordering::Relaxed);
    assert_eq!(h.ring.peek().err(), Some(RingError::Corrupt));
    assert_eq!(h.ring.try_push_record(b"x"), Err(RingError::Corrupt));
    h.ring.head().store(16, Ordering::Relaxed);
    // Frame tag garbage.
    // SAFETY: offset 4..8 is inside the data area.
    unsafe { h.ring.data.add(4).write(0x55) };
    assert_eq!(h.ring.peek().err(), Some(RingError::Corrupt));
    h.ring.reset_consumer();
    assert_eq!(h.ring.peek().unwrap().map(|r| r.len()), None);
}

#[test]
fn recv_message_validates_and_drops() {
    use crate::wire::{ClusterId, Kind, PortId, MAX_MESSAGE};
    let h = heap_ring(4096);
    let hdr = Header::mailbox(ClusterId(0), ClusterId(1), PortId(3), 1);
    h.ring.try_push(&hdr, &[9u8; 120]).unwrap();
    h.ring
        .try_push_record(b"garbage that is not a message")
        .unwrap();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (got, payload) = h.ring.recv_message(&mut buf, 4).unwrap().unwrap();
    assert_eq!(got, hdr);
    assert_eq!(payload, &[9u8; 120][..]);
    assert!(matches!(
        h.ring.recv_message(&mut buf, 4),
        Err(RecvError::Wire(_))
    ));
    assert_eq!(h.ring.recv_message(&mut buf, 4).unwrap(), None);
    let bad = Header::new(Kind::Mailbox, ClusterId(0), ClusterId(1), PortId(0), 3);
    assert_eq!(h.ring.try_push(&bad, &[1, 2]), Err(RingError::Corrupt));
}

/// Two threads: the producer pushes records whose content is a function of
/// their sequence number; the consumer checks every byte. A torn read or a
/// lost/duplicated record fails the test.
#[test]
fn two_thread_stress_never_tears() {
    let h = std::sync::Arc::new(heap_ring(4096));
    const N: u32 = 50_000;
    let prod = {
        let h = h.clone();
        std::thread::spawn(move || {
            let mut seq = 0u32;
            while seq < N {
                let len = 4 + (seq as usize * 13) % 600;
                let mut rec = vec![0u8; len];
                rec[..4].copy_from_slice(&seq.to_le_bytes());
                for (i, b) in rec[4..].iter_mut().enumerate() {
                    *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
                }
                match h.ring.try_push_record(&rec) {
                    Ok(()) => seq += 1,
                    Err(RingError::Full) => std::thread::yield_now(),
                    Err(e) => panic!("push: {e}"),
                }
            }
        })
    };
    let mut buf = vec![0u8; 4096];
    let mut expect = 0u32;
    while expect < N {
        match h.ring.pop_into(&mut buf).unwrap() {
            None => std::thread::yield_now(),
            Some(n) => {
                let seq = u32::from_le_bytes(buf[..4].try_into().unwrap());
                assert_eq!(seq, expect);
                assert_eq!(n, 4 + (seq as usize * 13) % 600);
                for (i, b) in buf[4..n].iter().enumerate() {
                    assert_eq!(*b, (seq as usize).wrapping_mul(31).wrapping_add(i) as u8);
                }
                expect += 1;
            }
        }
    }
    prod.join().unwrap();
    assert!(h.ring.is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Push(usize),
    Pop,
}

proptest! {
    /// Random push/pop sequences behave like a bounded FIFO: a push fails
    /// only with `Full` and only when the model says the bytes don't fit.
    #[test]
    fn matches_vecdeque_model(cap_words in 8usize..64,
                              ops in proptest::collection::vec(
                                  prop_oneof![(0usize..120).prop_map(Op::Push), Just(Op::Pop)], 1..300)) {
        let cap = cap_words * 8;
        let h = heap_ring(cap);
        let r = &h.ring;
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut counter = 0u8;
        for op in ops {
            match op {
                Op::Push(len) => {
                    let rec: Vec<u8> = (0..len).map(|i| counter.wrapping_add(i as u8)).collect();
                    counter = counter.wrapping_add(1);
                    let used: usize = r.used_bytes().unwrap();
                    match r.try_push_record(&rec) {
                        Ok(()) => model.push_back(rec),
                        Err(RingError::TooLarge) => prop_assert!(len > r.max_record()),
                        // An empty ring always accepts a record that is not
                        // TooLarge, wherever the wrap point is.
                        Err(RingError::Full) => prop_assert!(used > 0),
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    }
                }
                Op::Pop => {
                    prop_assert_eq!(pop_vec(r), model.pop_front());
                }
            }
        }
        while let Some(expected) = model.pop_front() {
            prop_assert_eq!(pop_vec(r).unwrap(), expected);
        }
        prop_assert!(r.is_empty());
    }
}
