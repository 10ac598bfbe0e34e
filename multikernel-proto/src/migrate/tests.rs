//! Host tests of the two machines on a perfect link, and with replays of old messages.

use super::*;
use abi::Strategy;
use proptest::prelude::{prop_assert, prop_assert_eq, proptest};
use std::collections::VecDeque;
use std::vec::Vec;

const SRC: ClusterId = ClusterId(0);
const DST: ClusterId = ClusterId(1);

fn pid() -> Pid {
    Pid::new(SRC, 7).unwrap()
}

fn manifest(pid: Pid, source: ClusterId, destination: ClusterId, sequence: u32) -> Manifest {
    Manifest {
        pid,
        source,
        destination,
        uarea_len: 16,
        page_count: 0,
        sequence,
        transport: uarea::image::PageTransport::Inline,
    }
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
    strategy: Strategy,
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
            strategy: Strategy::StopAndCopy,
        }
    }

    fn live() -> Pair {
        Pair {
            strategy: Strategy::PreCopy,
            ..Pair::new()
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
                Action::Survey { pid, to, sequence } => {
                    let manifest = manifest(*pid, at, *to, *sequence);
                    self.source.on_surveyed(*sequence, Ok(manifest), now)
                }
                Action::StartPreCopy { sequence, .. } => {
                    self.source.on_precopy_done(*sequence, Ok(()), now)
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

    fn request(&mut self) {
        let (_, actions) = self.source.request(pid(), DST, self.strategy, 0);
        self.perform(SRC, actions);
    }

    fn run(&mut self, replays: &[(usize, usize)]) {
        let (_, actions) = self.source.request(pid(), DST, self.strategy, 0);
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
    fresh.request();
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
    pair.request();
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

#[test]
fn a_live_migration_freezes_only_after_the_precopy_and_commits_once() {
    let mut pair = Pair::live();
    pair.run(&[]);
    let at = |what: fn(&Action) -> bool| pair.done.iter().position(|(_, a)| what(a));
    let offer = at(|a| {
        matches!(
            a,
            Action::Send {
                message: Message::Offer { .. },
                ..
            }
        )
    });
    let precopy = at(|a| matches!(a, Action::StartPreCopy { .. }));
    let freeze = at(|a| matches!(a, Action::Freeze { .. }));
    let transfer = at(|a| matches!(a, Action::StartTransfer { .. }));
    assert!(offer.is_some() && offer < precopy && precopy < freeze && freeze < transfer);
    // One Offer only: the final image goes without a second one.
    assert_eq!(
        pair.count(|a| matches!(
            a,
            Action::Send {
                message: Message::Offer { .. },
                ..
            }
        )),
        1
    );
    assert_eq!(pair.count(|a| matches!(a, Action::Resume { .. })), 1);
    assert_eq!(pair.count(|a| matches!(a, Action::Free { .. })), 1);
    assert!(pair.source.is_idle() && pair.destination.is_idle());
}

#[test]
fn a_live_migration_holds_nothing_before_the_freeze_and_aborts_without_thawing() {
    let mut source = Source::new(SRC, Config::default());
    let (_, actions) = source.request(pid(), DST, Strategy::PreCopy, 0);
    assert!(matches!(actions[..], [Action::Survey { sequence: 1, .. }]));
    let offer = source.on_surveyed(1, Ok(manifest(pid(), SRC, DST, 1)), 0);
    assert_eq!(offer.len(), 1);
    // Running: a kill is the driver's to apply, mail is delivered.
    assert!(source.is_migrating(pid()) && !source.holds(pid()));
    assert!(!source.hold_kill(pid(), 9));
    assert!(!source.hold_mail(pid(), MailToken(1)));
    let precopy = source.on_message(DST, &Message::Accept { sequence: 1 }, 1);
    assert!(matches!(precopy[..], [Action::StartPreCopy { .. }]));
    // The process ended meanwhile: the migration ends, nothing to thaw, D is told.
    let ended = source.on_precopy_done(1, Err(MigrateError::NoSuchProcess), 2);
    assert!(!ended.iter().any(|a| matches!(a, Action::Thaw { .. })));
    assert!(ended.contains(&Action::Send {
        to: DST,
        message: Message::Abort { sequence: 1 }
    }));
    assert!(ended.iter().any(|a| matches!(
        a,
        Action::Report {
            outcome: Err(MigrateError::NoSuchProcess),
            ..
        }
    )));
    assert!(source.is_idle());
}

#[test]
fn a_live_migration_frozen_for_the_final_copy_thaws_on_abort() {
    let mut source = Source::new(SRC, Config::default());
    source.request(pid(), DST, Strategy::PreCopy, 0);
    source.on_surveyed(1, Ok(manifest(pid(), SRC, DST, 1)), 0);
    source.on_message(DST, &Message::Accept { sequence: 1 }, 1);
    let freeze = source.on_precopy_done(1, Ok(()), 2);
    assert!(matches!(freeze[..], [Action::Freeze { .. }]));
    let transfer = source.on_frozen(1, Ok(manifest(pid(), SRC, DST, 1)), 3);
    assert!(matches!(transfer[..], [Action::StartTransfer { .. }]));
    // Frozen now: kills are held until the outcome.
    assert!(source.holds(pid()) && source.hold_kill(pid(), 9));
    let gone = source.on_peer_gone(DST, 4);
    assert!(gone.contains(&Action::Thaw { pid: pid() }));
    assert!(gone.contains(&Action::ApplyKill {
        pid: pid(),
        code: 9
    }));
}

#[test]
fn a_live_freeze_that_fails_still_tells_the_destination() {
    let mut source = Source::new(SRC, Config::default());
    source.request(pid(), DST, Strategy::PreCopy, 0);
    source.on_surveyed(1, Ok(manifest(pid(), SRC, DST, 1)), 0);
    source.on_message(DST, &Message::Accept { sequence: 1 }, 1);
    source.on_precopy_done(1, Ok(()), 2);
    let failed = source.on_frozen(1, Err(MigrateError::NoSuchProcess), 3);
    assert!(!failed.iter().any(|a| matches!(a, Action::Thaw { .. })));
    assert!(failed.contains(&Action::Send {
        to: DST,
        message: Message::Abort { sequence: 1 }
    }));
}

proptest! {
    /// Re-delivering any earlier message at any point changes nothing: one Free, one
    /// Resume, one Ok report, no Thaw.
    #[test]
    fn replayed_messages_are_harmless(replays in proptest::collection::vec((0usize..12, 0usize..12), 0..8), live: bool) {
        let mut pair = if live { Pair::live() } else { Pair::new() };
        pair.run(&replays);
        prop_assert_eq!(pair.count(|a| matches!(a, Action::Resume { .. })), 1);
        prop_assert_eq!(pair.count(|a| matches!(a, Action::Free { .. })), 1);
        prop_assert_eq!(pair.count(|a| matches!(a, Action::Thaw { .. } | Action::Discard { .. })), 0);
        prop_assert_eq!(pair.count(|a| matches!(a, Action::Report { .. })), 1);
        prop_assert!(pair.source.is_idle() && pair.destination.is_idle());
    }
}
