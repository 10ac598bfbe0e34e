//! Post-copy across a partition that heals, with the drivers' credit scheme around the
//! pusher and the puller (`multikernel/src/migration/page_{client,server}.rs`): the new
//! cluster keeps two landings granted and announces each (an allowance message), announces
//! an unused one again after a while, and gives a failed one back; the old cluster writes a
//! piece with the oldest allowance it holds. While the link is partitioned every message and
//! every write between the two is lost (a write fails on both sides, as noc-sim's `LinkDown`
//! does); a stale or duplicate allowance is refused. Each piece names its own pages, as the
//! drivers' header frame does. Whatever the schedule, once the link heals every page arrives
//! exactly once and every waiting thread is served — no timer gives up.

use super::tests::Rng;
use super::*;
use std::collections::{BTreeMap as Map, BTreeSet as Set};

const LANDINGS: usize = 2;
const REALLOW: u64 = 250;
const PIECE: usize = 255;

enum Up {
    Allow(u32),
    Request(u64),
}

/// What one schedule lost to the partition.
#[derive(Default)]
struct Lost {
    messages: u64,
    writes: u64,
}

fn schedule(seed: u64) -> Lost {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let count = 1 + rng.below(4000);
    let pages: Vec<u64> = (0..count).map(|i| 0x40_0000 + i * 4096).collect();
    let mut pusher = Pusher::new(pages.iter().copied());
    let mut puller = Puller::new(pages.iter().copied(), 50);
    // The partition: from early on (often before the first write), for 0.5 to 3 s.
    let cut_from = rng.below(300);
    let cut = cut_from..cut_from + 500 + rng.below(2500);
    let mut lost = Lost::default();
    let (mut landings, mut next_id): (Map<u32, u64>, u32) = (Map::new(), 1);
    let mut allowances: VecDeque<u32> = VecDeque::new();
    // Messages to the old cluster in flight: (delivery time, message).
    let mut link: Vec<(u64, Up)> = Vec::new();
    let (mut arrived, mut waiting) = (Set::new(), Set::new());
    let mut now = 0u64;
    while !puller.is_complete() {
        now += 1;
        assert!(now < 1_000_000, "seed {seed}: never completed");
        let cut_now = cut.contains(&now);
        let mut send = |link: &mut Vec<(u64, Up)>, rng: &mut Rng, message: Up| {
            if cut_now {
                lost.messages += 1;
            } else {
                link.push((now + 1 + rng.below(20), message));
            }
        };
        // The new cluster: landings granted and announced, again when unused for a while.
        while landings.len() < LANDINGS {
            landings.insert(next_id, now);
            send(&mut link, &mut rng, Up::Allow(next_id));
            next_id += 1;
        }
        for (&id, announced) in landings.iter_mut() {
            if now - *announced >= REALLOW {
                *announced = now;
                send(&mut link, &mut rng, Up::Allow(id));
            }
        }
        if rng.below(8) == 0 {
            let page = pages[rng.below(count) as usize];
            if !arrived.contains(&page) {
                waiting.insert(page);
                if let Some(ask) = puller.on_fault(page, now) {
                    send(&mut link, &mut rng, Up::Request(ask));
                }
            }
        }
        for ask in puller.on_tick(now) {
            send(&mut link, &mut rng, Up::Request(ask));
        }
        // The old cluster: what reached it, then one write per allowance it holds.
        let (due, later): (Vec<_>, Vec<_>) = link.into_iter().partition(|(at, _)| *at <= now);
        link = later;
        for (_, message) in due {
            match message {
                Up::Allow(id) => allowances.push_back(id),
                Up::Request(page) => pusher.on_request(page),
            }
        }
        while !pusher.is_done() {
            let Some(id) = allowances.pop_front() else {
                break;
            };
            let piece = pusher.next(PIECE);
            if cut.contains(&now) {
                // Fails on both sides: the grant is used up, the pages go again.
                lost.writes += 1;
                landings.remove(&id);
                pusher.resend(piece);
            } else if landings.remove(&id).is_some() {
                for page in piece {
                    assert!(arrived.insert(page), "seed {seed}: {page:#x} twice");
                    assert!(puller.on_arrived(page), "seed {seed}: {page:#x} not away");
                    waiting.remove(&page);
                }
            } else {
                // A stale or repeated allowance: refused, nothing landed.
                pusher.resend(piece);
            }
        }
    }
    assert!(
        pusher.is_done(),
        "seed {seed}: pages left at the old cluster"
    );
    assert_eq!(arrived.len() as u64, count, "seed {seed}");
    assert!(waiting.is_empty(), "seed {seed}: a thread still waits");
    lost
}

#[test]
fn a_partition_that_heals_loses_no_page_and_sends_none_twice() {
    let (mut messages, mut writes) = (0, 0);
    for seed in 0..200 {
        let lost = schedule(seed);
        messages += lost.messages;
        writes += lost.writes;
    }
    // The partition really cut both the messages and the writes.
    assert!(
        messages > 0 && writes > 0,
        "{messages} messages, {writes} writes"
    );
}
