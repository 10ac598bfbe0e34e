//! The pusher and the puller over a simulated link that loses and delays requests, goes
//! down for a while and comes back, while threads fault on random pages.

use super::*;
use std::collections::BTreeSet as Set;

/// A tiny deterministic generator (xorshift), so a failing seed can be replayed.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One schedule: every page ends up at the new cluster exactly once, every faulting thread is
/// served, and the residual dependency ends.
fn schedule(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let count = 1 + rng.below(3000);
    let pages: Vec<u64> = (0..count).map(|i| 0x40_0000 + i * 4096).collect();
    let mut pusher = Pusher::new(pages.iter().copied());
    let mut puller = Puller::new(pages.iter().copied(), 200);
    let mut arrived = Set::new();
    let mut waiting: Set<u64> = Set::new();
    // Requests in flight: (delivery time, page).
    let mut link: Vec<(u64, u64)> = Vec::new();
    let (down_from, down_until) = (rng.below(2000), rng.below(2000) + 2000);
    let mut now = 0u64;
    while !puller.is_complete() {
        now += 10;
        assert!(now < 10_000_000, "seed {seed}: never completed");
        let up = !(down_from..down_until).contains(&now);
        // A thread faults on a random page still away.
        if rng.below(4) == 0 {
            let page = pages[rng.below(count) as usize];
            if !arrived.contains(&page) {
                waiting.insert(page);
                if let Some(ask) = puller.on_fault(page, now) {
                    link.push((now + 1 + rng.below(50), ask));
                }
            }
        }
        for ask in puller.on_tick(now) {
            link.push((now + 1 + rng.below(50), ask));
        }
        // Requests reach the old cluster (unless lost, or the link is down).
        let (due, later): (Vec<_>, Vec<_>) = link.iter().partition(|(at, _)| *at <= now);
        link = later;
        for (_, page) in due {
            if up && rng.below(3) != 0 {
                pusher.on_request(page);
            }
        }
        // A pass of pushes, when the link is up (pieces of at most 256 pages).
        if up {
            for page in pusher.next(256) {
                assert!(
                    arrived.insert(page),
                    "seed {seed}: page {page:#x} sent twice"
                );
                assert!(
                    puller.on_arrived(page),
                    "seed {seed}: {page:#x} was not away"
                );
                waiting.remove(&page);
            }
        }
    }
    assert!(
        pusher.is_done(),
        "seed {seed}: pages left at the old cluster"
    );
    assert_eq!(arrived.len() as u64, count, "seed {seed}");
    assert!(waiting.is_empty(), "seed {seed}: a thread still waits");
    assert_eq!(pusher.pulled + pusher.pushed, count);
}

#[test]
fn every_page_arrives_once_and_every_waiter_is_served() {
    for seed in 0..300 {
        schedule(seed);
    }
}

#[test]
fn a_request_jumps_the_queue_and_the_scan_follows_it() {
    let pages: Vec<u64> = (0..100).map(|i| i * 4096).collect();
    let mut pusher = Pusher::new(pages);
    assert_eq!(pusher.next(2), [0, 4096]);
    pusher.on_request(50 * 4096);
    let next = pusher.next(4);
    assert_eq!(next, [50 * 4096, 51 * 4096, 52 * 4096, 53 * 4096]);
    assert_eq!(pusher.pulled, 1);
    // A request for a page already sent is ignored.
    pusher.on_request(0);
    assert_eq!(pusher.next(1), [54 * 4096]);
}

#[test]
fn pushes_grow_while_no_request_comes() {
    let mut pusher = Pusher::new((0..10_000u64).map(|i| i * 4096));
    let sizes: Vec<usize> = (0..8).map(|_| pusher.next(usize::MAX).len()).collect();
    assert_eq!(sizes, [16, 32, 64, 128, 256, 512, 1024, 1024]);
    pusher.on_request(9_999 * 4096);
    assert_eq!(pusher.next(usize::MAX).len(), FIRST_CHUNK);
}

#[test]
fn a_lost_request_is_asked_again_and_a_stale_page_is_ignored() {
    let mut puller = Puller::new([4096, 8192], 100);
    assert_eq!(puller.on_fault(4096, 0), Some(4096));
    assert_eq!(puller.on_fault(4096, 10), None, "asked already");
    assert_eq!(puller.on_fault(12288, 10), None, "not away");
    assert!(puller.on_tick(50).is_empty());
    assert_eq!(puller.on_tick(100), [4096]);
    assert!(puller.on_arrived(4096));
    assert!(!puller.on_arrived(4096), "a second copy is stale");
    puller.forget(8192);
    assert!(puller.is_complete());
}
