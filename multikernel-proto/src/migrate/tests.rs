//! Host tests of the two machines on a perfect link, and with replays of old messages.

use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::vec::Vec;

const SRC: ClusterId = ClusterId(0);
const DST: ClusterId = ClusterId(1);

fn pid() -> Pid {
    Pid::new(SRC, 7).unwrap()
}

/// One source, one destination, a FIFO link, a driver that always succeeds; `replays`
/// re-delivers old messages (by index into the history) between the real deliveries.
struct Pair {
    source: Source,
    destination: Destination,
    link: VecDeque<(ClusterId, ClusterId, Message)>,
    history: Vec<(ClusterId, ClusterId, Message)>,
    done: Vec<(ClusterId, Action)>,
    now: u64,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            source: Source::new(SRC, Config::default()),
            destination: Destination::new(Config::default()),
            link: VecDeque::new(),
            history: Vec::new(),
            done: Vec::new(),
            now: 0,
        }
    }

    fn perform(&mut self, at: ClusterId, actions: Vec<Action>) {
        let mut work: VecDeque<Action> = actions.into();
        while let Some(action) = work.pop_front() {
            let now = self.now;
            let more = match &action {
                Action::Send { to, message } => {
                    self.link.push_back((*to, at, message.clone()));
                    Vec::new()
                }
                Action::Freeze { pid, to, sequence } => {
                    let manifest = Manifest {
                        pid: *pid,
                        source: at,
                        destination: *to,
                        uarea_len: 16,
                        page_count: 0,
                        sequence: *sequence,
                        transport: uarea::image::PageTransport::Inline,
                    };
                    self.source.on_frozen(*sequence, Ok(manifest), now)
                }
                Action::StartTransfer { sequence, .. } => {
                    let mut more = self.destination.on_image(at, *sequence, Ok(()), now);
                    more.extend(self.source.on_transfer_done(*sequence, Ok(42), now));
                    more
                }
                Action::Admit { from, sequence, .. } => {
                    self.destination.on_admitted(*from, *sequence, Ok(()), now)
                }
                Action::Restore { from, sequence, .. } => {
                    self.destination.on_restored(*from, *sequence, Ok(()), now)
                }
                _ => Vec::new(),
            };
            self.done.push((at, action));
            work.extend(more);
        }
    }

    fn deliver(&mut self, to: ClusterId, from: ClusterId, message: &Message) {
        self.now += 1_000_000;
        let now = self.now;
        let actions = match role(message) {
            Some(Role::Source) => self.source.on_message(from, message, now),
            Some(Role::Destination) => self.destination.on_message(from, message, now),
            None => Vec::new(),
        };
        self.perform(to, actions);
    }

    fn run(&mut self, replays: &[(usize, usize)]) {
        let (_, actions) = self.source.request(pid(), DST, 0);
        self.perform(SRC, actions);
        let mut step = 0;
        while let Some((to, from, message)) = self.link.pop_front() {
            for &(_, index) in replays.iter().filter(|(at, _)| *at == step) {
                if let Some((to, from, old)) =
                    self.history.get(index % self.history.len().max(1)).cloned()
                {
                    self.deliver(to, from, &old);
                }
            }
            self.history.push((to, from, message.clone()));
            self.deliver(to, from, &message);
            step += 1;
        }
    }

    fn count(&self, what: impl Fn(&Action) -> bool) -> usize {
        self.done.iter().filter(|(_, a)| what(a)).count()
    }
}

#[test]
fn a_migration_on_a_perfect_link_commits_once() {
    let mut pair = Pair::new();
    pair.run(&[]);
    assert_eq!(pair.count(|a| matches!(a, Action::Resume { .. })), 1);
    assert_eq!(pair.count(|a| matches!(a, Action::Free { .. })), 1);
    assert_eq!(pair.count(|a| matches!(a, Action::Thaw { .. })), 0);
    assert_eq!(
        pair.count(|a| matches!(
            a,
            Action::Report {
                outcome: Ok(DST),
                ..
            }
        )),
        1
    );
    // Resume comes after the source's decision (Free), never before.
    let free = pair
        .done
        .iter()
        .position(|(_, a)| matches!(a, Action::Free { .. }));
    let resume = pair
        .done
        .iter()
        .position(|(_, a)| matches!(a, Action::Resume { .. }));
    assert!(free < resume);
    assert!(pair.source.is_idle() && pair.destination.is_idle());
}

#[test]
fn the_destination_never_resumes_without_commit() {
    // Everything but the Commit: the copy is prepared, never resumed.
    let mut fresh = Pair::new();
    let (_, actions) = fresh.source.request(pid(), DST, 0);
    fresh.perform(SRC, actions);
    while let Some((to, from, message)) = fresh.link.pop_front() {
        if !matches!(message, Message::Commit { .. }) {
            fresh.deliver(to, from, &message);
        }
    }
    assert_eq!(fresh.count(|a| matches!(a, Action::Resume { .. })), 0);
    assert!(
        !fresh.destination.is_idle(),
        "the prepared copy waits for the decision"
    );
}

#[test]
fn an_unknown_sequence_is_answered_abort_but_a_commit_is_never_forgotten() {
    let mut source = Source::new(SRC, Config::default());
    let actions = source.on_message(DST, &Message::Prepared { sequence: 9 }, 0);
    assert_eq!(
        actions,
        [Action::Send {
            to: DST,
            message: Message::Abort { sequence: 9 }
        }]
    );
    let mut pair = Pair::new();
    let (_, actions) = pair.source.request(pid(), DST, 0);
    pair.perform(SRC, actions);
    // Deliver until the source decided, dropping every Commit.
    while let Some((to, from, message)) = pair.link.pop_front() {
        if !matches!(message, Message::Commit { .. }) {
            pair.deliver(to, from, &message);
        }
    }
    let again = pair.source.on_tick(10_000_000_000);
    assert!(again.iter().any(|a| matches!(
        a,
        Action::Send {
            message: Message::Commit { .. },
            ..
        }
    )));
    assert_eq!(pair.count(|a| matches!(a, Action::Thaw { .. })), 0);
}

proptest! {
    /// Re-delivering any earlier message at any point changes nothing: one Free, one
    /// Resume, one Ok report, no Thaw.
    #[test]
    fn replayed_messages_are_harmless(replays in proptest::collection::vec((0usize..12, 0usize..12), 0..8)) {
        let mut pair = Pair::new();
        pair.run(&replays);
        prop_assert_eq!(pair.count(|a| matches!(a, Action::Resume { .. })), 1);
        prop_assert_eq!(pair.count(|a| matches!(a, Action::Free { .. })), 1);
        prop_assert_eq!(pair.count(|a| matches!(a, Action::Thaw { .. } | Action::Discard { .. })), 0);
        prop_assert_eq!(pair.count(|a| matches!(a, Action::Report { .. })), 1);
        prop_assert!(pair.source.is_idle() && pair.destination.is_idle());
    }
}
