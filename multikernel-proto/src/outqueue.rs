//! The daemons' outgoing messages, one queue per destination cluster.
//!
//! Why per destination: the NoC pushes back per destination (a cluster that does not drain its
//! inbox fills only its own ring), so one slow or stuck cluster must delay only what goes to
//! it, never the messages to every other cluster behind it. Why a bound: every message queued
//! costs kernel heap, and user requests (names linked, remote spawns, kills) make messages, so
//! past [`OutQueue::CONGESTED`] the daemons take no new user requests — their callers get
//! `EAGAIN` from the kernel's full request queue — until the NoC drains. Messages to one
//! cluster still leave in the order they were queued.

use abi::ClusterId;
use alloc::collections::{BTreeMap, VecDeque};

/// What the NoC did with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// It left.
    Yes,
    /// The destination's ring is full: try again later, in order.
    Full,
    /// The destination cannot be reached (gone, out of range): nobody is left to read it.
    Unreachable,
}

/// Messages waiting for room on the NoC.
#[derive(Debug)]
pub struct OutQueue<M> {
    queues: BTreeMap<ClusterId, VecDeque<M>>,
    len: usize,
    /// Messages dropped because their destination was unreachable.
    pub unreachable: u64,
}

impl<M> Default for OutQueue<M> {
    fn default() -> Self {
        OutQueue {
            queues: BTreeMap::new(),
            len: 0,
            unreachable: 0,
        }
    }
}

impl<M> OutQueue<M> {
    /// Queued messages past which the daemons take no new user requests.
    pub const CONGESTED: usize = 4096;

    /// Queues `message` for `to`, behind what already waits for it.
    pub fn push(&mut self, to: ClusterId, message: M) {
        self.queues.entry(to).or_default().push_back(message);
        self.len += 1;
    }

    /// Messages waiting, to every destination.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True while so much waits that no new user work should be taken.
    pub fn is_congested(&self) -> bool {
        self.len >= Self::CONGESTED
    }

    /// Offers each destination's messages, oldest first, to `send` until it says `Full` for
    /// that destination; a destination's full ring holds back only its own messages.
    pub fn flush(&mut self, mut send: impl FnMut(ClusterId, &M) -> Sent) {
        for (&to, queue) in self.queues.iter_mut() {
            while let Some(message) = queue.front() {
                match send(to, message) {
                    Sent::Full => break,
                    Sent::Yes => {}
                    Sent::Unreachable => self.unreachable += 1,
                }
                queue.pop_front();
                self.len -= 1;
            }
        }
        self.queues.retain(|_, queue| !queue.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn a_full_destination_holds_back_only_its_own_messages() {
        let mut out = OutQueue::default();
        for n in 0..3u32 {
            out.push(ClusterId(1), n);
            out.push(ClusterId(2), 10 + n);
        }
        let mut sent = Vec::new();
        out.flush(|to, &m| match to {
            ClusterId(1) => Sent::Full,
            _ => {
                sent.push((to.0, m));
                Sent::Yes
            }
        });
        assert_eq!(sent, [(2, 10), (2, 11), (2, 12)]);
        assert_eq!(out.len(), 3);
        let mut later = Vec::new();
        out.flush(|to, &m| {
            later.push((to.0, m));
            Sent::Yes
        });
        assert_eq!(later, [(1, 0), (1, 1), (1, 2)], "in order, once");
        assert!(out.is_empty());
    }

    #[test]
    fn a_ring_with_room_for_one_takes_them_in_order() {
        let mut out = OutQueue::default();
        for n in 0..5u32 {
            out.push(ClusterId(3), n);
        }
        let mut got = Vec::new();
        while !out.is_empty() {
            let mut room = 1;
            out.flush(|_, &m| {
                if room == 0 {
                    return Sent::Full;
                }
                room -= 1;
                got.push(m);
                Sent::Yes
            });
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn unreachable_destinations_are_counted_and_forgotten() {
        let mut out = OutQueue::default();
        out.push(ClusterId(9), 1u8);
        out.push(ClusterId(9), 2u8);
        out.flush(|_, _| Sent::Unreachable);
        assert!(out.is_empty());
        assert_eq!(out.unreachable, 2);
    }

    #[test]
    fn congestion_starts_at_the_bound_and_ends_when_it_drains() {
        let mut out = OutQueue::default();
        for n in 0..OutQueue::<u32>::CONGESTED as u32 - 1 {
            out.push(ClusterId(1), n);
        }
        assert!(!out.is_congested());
        out.push(ClusterId(2), 0);
        assert!(out.is_congested());
        out.flush(|to, _| {
            if to == ClusterId(1) {
                Sent::Yes
            } else {
                Sent::Full
            }
        });
        assert!(!out.is_congested());
        assert_eq!(out.len(), 1);
    }
}
