//! The deterministic simulation of the migration protocol (BRIEF §8): N clusters, each with
//! a [`Source`](multikernel_proto::migrate::Source), a
//! [`Destination`](multikernel_proto::migrate::Destination) and a model process table, over
//! a NoC that drops, duplicates, reorders and delays daemon messages, slow or failing bulk
//! transfers, stalls (a cluster that does nothing for seconds, as TCG does on a loaded host)
//! and crashes. A schedule is a chaotic phase followed by a calm one that must reach
//! quiescence; the invariants (`check.rs`) run after every step and at the end.

mod check;
mod crash;
mod driver;
pub mod model;
mod rng;

use std::collections::BTreeMap;

use abi::{ClusterId, Pid, Strategy};
use model::*;
use rng::Rng;

/// Variants of the protocol the simulation must be able to catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// The old behaviour: the destination resumes the process as soon as it has restored it,
    /// before the source decided.
    pub bug_resume_before_decision: bool,
    /// Print every step.
    pub trace: bool,
}

/// The result of one schedule.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub faults: u64,
    pub committed: u64,
    /// Of which pre-copy.
    pub committed_live: u64,
    pub failed: u64,
    pub crashes: u64,
    pub lost: u64,
    pub killed: u64,
    pub mails: u64,
    pub mails_delivered: u64,
}

impl Outcome {
    pub fn add(&mut self, other: &Outcome) {
        self.faults += other.faults;
        self.committed += other.committed;
        self.committed_live += other.committed_live;
        self.failed += other.failed;
        self.crashes += other.crashes;
        self.lost += other.lost;
        self.killed += other.killed;
        self.mails += other.mails;
        self.mails_delivered += other.mails_delivered;
    }
}

const STEP_NS: u64 = 50 * MS;
const CHAOS_STEPS: u64 = 140;
const CALM_LIMIT_NS: u64 = 120_000 * MS;

/// Per-schedule fault rates, drawn from the seed.
struct Rates {
    drop: f64,
    duplicate: f64,
    max_delay_ns: u64,
    request: f64,
    mail: f64,
    stall: f64,
}

pub struct World {
    pub rng: Rng,
    pub options: Options,
    pub now: u64,
    pub clusters: Vec<Cluster>,
    events: Vec<(u64, u64, Event)>,
    next_event: u64,
    pub processes: BTreeMap<Pid, Process>,
    pub mails: BTreeMap<u64, (Pid, Whereabouts)>,
    pub kills: BTreeMap<i32, (Pid, Whereabouts)>,
    pub requests: BTreeMap<RequestKey, Request>,
    pub faults: u64,
    pub stats: Outcome,
    calm: bool,
    rates: Rates,
}

macro_rules! trace {
    ($world:expr, $($arg:tt)*) => {
        if $world.options.trace {
            println!("{:>8.3}s  {}", $world.now as f64 / 1e9, format!($($arg)*));
        }
    };
}
pub(crate) use trace;

/// Runs the schedule of `seed`; `Err` names the violated invariant.
pub fn run(seed: u64, options: Options) -> Result<Outcome, String> {
    let mut world = World::new(seed, options);
    world.run()?;
    let mut outcome = world.stats;
    outcome.faults = world.faults;
    outcome.crashes = world.clusters.iter().filter(|c| !c.alive).count() as u64;
    outcome.killed = world.processes.values().filter(|p| p.ended).count() as u64;
    outcome.lost = world.processes.values().filter(|p| !p.ended).count() as u64
        - world
            .clusters
            .iter()
            .filter(|c| c.alive)
            .map(|c| c.processes.len() as u64)
            .sum::<u64>();
    outcome.mails = world.mails.len() as u64;
    outcome.mails_delivered = world
        .mails
        .values()
        .filter(|(_, w)| *w == Whereabouts::Delivered)
        .count() as u64;
    Ok(outcome)
}

impl World {
    fn new(seed: u64, options: Options) -> World {
        let mut rng = Rng::new(seed);
        let count = rng.range(2, 5) as u16;
        let clusters: Vec<Cluster> = (0..count).map(|c| Cluster::new(ClusterId(c))).collect();
        let rates = Rates {
            drop: [0.0, 0.05, 0.2, 0.4][rng.below(4) as usize],
            duplicate: [0.0, 0.05, 0.2][rng.below(3) as usize],
            max_delay_ns: [5, 100, 400, 1500][rng.below(4) as usize] * MS,
            request: [0.03, 0.1, 0.3][rng.below(3) as usize],
            mail: [0.0, 0.05, 0.2][rng.below(3) as usize],
            stall: [0.0, 0.005, 0.02][rng.below(3) as usize],
        };
        let mut world = World {
            rng,
            options,
            now: 0,
            clusters,
            events: Vec::new(),
            next_event: 0,
            processes: BTreeMap::new(),
            mails: BTreeMap::new(),
            kills: BTreeMap::new(),
            requests: BTreeMap::new(),
            faults: 0,
            stats: Outcome::default(),
            calm: false,
            rates,
        };
        for local in 1..=world.rng.range(1, 4) as u32 {
            let birth = ClusterId(world.rng.below(count as u64) as u16);
            let pid = Pid::new(birth, local).expect("valid pid");
            world.cluster(birth).processes.insert(
                pid,
                Copy {
                    state: State::Running,
                    mail: Vec::new(),
                },
            );
            world.processes.insert(
                pid,
                Process {
                    owner: birth,
                    committed_by: None,
                    believed: birth,
                    believed_before: birth,
                    ended: false,
                    kills_applied: 0,
                    excuse: None,
                },
            );
        }
        trace!(
            world,
            "{count} clusters, processes {:?}",
            world.processes.keys().collect::<Vec<_>>()
        );
        world
    }

    pub fn cluster(&mut self, id: ClusterId) -> &mut Cluster {
        &mut self.clusters[id.0 as usize]
    }

    pub fn alive(&self, id: ClusterId) -> bool {
        self.clusters.get(id.0 as usize).is_some_and(|c| c.alive)
    }

    pub fn schedule(&mut self, delay_ns: u64, event: Event) {
        self.next_event += 1;
        self.events
            .push((self.now + delay_ns, self.next_event, event));
    }

    /// A daemon message on the lossy channel.
    pub fn send_daemon(&mut self, from: ClusterId, to: ClusterId, bytes: [u8; 120]) {
        let copies = if !self.calm && self.rng.chance(self.rates.drop) {
            0
        } else if !self.calm && self.rng.chance(self.rates.duplicate) {
            2
        } else {
            1
        };
        if copies != 1 {
            self.faults += 1;
        }
        for _ in 0..copies {
            let delay = self.delay();
            self.schedule(delay, Event::Daemon { to, from, bytes });
        }
    }

    pub fn delay(&mut self) -> u64 {
        self.rng.below(self.rates.max_delay_ns.max(1))
    }

    fn run(&mut self) -> Result<(), String> {
        let crashes = self.plan_crashes();
        let kill_step = self.rng.chance(0.4).then(|| self.rng.below(CHAOS_STEPS));
        let mut step = 0u64;
        while step < CHAOS_STEPS {
            if crashes.contains(&step) {
                self.crash_one()?;
            }
            if kill_step == Some(step) {
                self.inject_kill()?;
            }
            self.inject(step)?;
            self.step()?;
            step += 1;
        }
        self.calm = true;
        trace!(self, "--- calm: no more faults");
        let deadline = self.now + CALM_LIMIT_NS;
        while !self.quiescent() {
            if self.now > deadline {
                let busy: Vec<String> = self
                    .clusters
                    .iter()
                    .filter(|c| c.alive)
                    .map(|c| format!("c{}: {:?} {:?}", c.id.0, c.source, c.destination))
                    .collect();
                return Err(format!(
                    "no quiescence {} s after the faults stopped (events pending: {:?}; {busy:?})",
                    CALM_LIMIT_NS / 1_000_000_000,
                    self.events.iter().take(3).collect::<Vec<_>>()
                ));
            }
            self.step()?;
        }
        check::at_quiescence(self)
    }

    fn plan_crashes(&mut self) -> Vec<u64> {
        let most = self.clusters.len() as u64 - 1;
        let count = [0, 0, 1, 1, 2][self.rng.below(5) as usize].min(most);
        (0..count).map(|_| self.rng.below(CHAOS_STEPS)).collect()
    }

    fn step(&mut self) -> Result<(), String> {
        self.now += STEP_NS;
        // Everything due, in a random order (reordering beyond the delays).
        let mut due = Vec::new();
        let mut index = 0;
        while index < self.events.len() {
            if self.events[index].0 <= self.now {
                due.push(self.events.swap_remove(index));
            } else {
                index += 1;
            }
        }
        due.sort_by_key(|(at, order, _)| (*at, *order));
        while !due.is_empty() {
            let pick = self.rng.below(due.len() as u64) as usize;
            let (_, _, event) = due.swap_remove(pick);
            let target = event.target();
            if self.alive(target) && self.clusters[target.0 as usize].stalled_until > self.now {
                let wait = self.clusters[target.0 as usize].stalled_until - self.now;
                let jitter = self.rng.below(20 * MS);
                self.schedule(wait + jitter, event);
                continue;
            }
            self.deliver(event)?;
            check::every_step(self)?;
        }
        for c in 0..self.clusters.len() {
            let cluster = &self.clusters[c];
            if !cluster.alive || cluster.stalled_until > self.now {
                continue;
            }
            let id = cluster.id;
            let now = self.now;
            let mut actions = self.clusters[c].source.on_tick(now);
            actions.extend(self.clusters[c].destination.on_tick(now));
            self.perform(id, actions)?;
            check::every_step(self)?;
        }
        Ok(())
    }

    fn quiescent(&self) -> bool {
        self.events.is_empty()
            && self.clusters.iter().all(|c| {
                !c.alive
                    || (c.source.is_idle()
                        && c.destination.is_idle()
                        && c.stalled_until <= self.now)
            })
    }

    fn live_cluster(&mut self) -> Option<ClusterId> {
        let live: Vec<ClusterId> = self
            .clusters
            .iter()
            .filter(|c| c.alive)
            .map(|c| c.id)
            .collect();
        (!live.is_empty()).then(|| live[self.rng.below(live.len() as u64) as usize])
    }

    fn pick_pid(&mut self) -> Pid {
        let pids: Vec<Pid> = self.processes.keys().copied().collect();
        pids[self.rng.below(pids.len() as u64) as usize]
    }

    /// Random requests, mails and stalls.
    fn inject(&mut self, _step: u64) -> Result<(), String> {
        if self.rng.chance(self.rates.request) {
            let pid = self.pick_pid();
            let owner = self.processes[&pid].owner;
            let at = if self.alive(owner) && self.rng.chance(0.85) {
                owner
            } else {
                match self.live_cluster() {
                    Some(c) => c,
                    None => return Ok(()),
                }
            };
            let n = self.clusters.len() as u64;
            let times = if self.rng.chance(0.2) { 2 } else { 1 };
            for _ in 0..times {
                let to = ClusterId(((at.0 as u64 + self.rng.range(1, n + 1)) % n) as u16);
                let now = self.now;
                let strategy = if self.rng.chance(0.5) {
                    Strategy::PreCopy
                } else {
                    Strategy::StopAndCopy
                };
                let (id, actions) = self.cluster(at).source.request(pid, to, strategy, now);
                trace!(
                    self,
                    "c{} request #{} {pid} -> c{} ({})",
                    at.0,
                    id.0,
                    to.0,
                    strategy.name()
                );
                self.requests.insert(
                    (at, id),
                    Request {
                        pid,
                        reports: 0,
                        live: strategy == Strategy::PreCopy,
                    },
                );
                self.perform(at, actions)?;
            }
        }
        if self.rng.chance(self.rates.mail) {
            let pid = self.pick_pid();
            let info = &self.processes[&pid];
            let to = if self.rng.chance(0.8) {
                info.believed
            } else {
                info.believed_before
            };
            if self.alive(to) {
                let id = self.mails.len() as u64 + 1;
                self.mails.insert(id, (pid, Whereabouts::InFlight(to)));
                trace!(self, "mail m{id} for {pid} arrives at c{}", to.0);
                self.route(to, User::Mail { pid, id })?;
            }
        }
        if self.rng.chance(self.rates.stall) {
            if let Some(c) = self.live_cluster() {
                let length = self.rng.range(300, 4000) * MS;
                trace!(self, "c{} stalls for {} ms", c.0, length / MS);
                self.faults += 1;
                let until = self.now + length;
                self.cluster(c).stalled_until = until;
            }
        }
        Ok(())
    }

    fn inject_kill(&mut self) -> Result<(), String> {
        let pid = self.pick_pid();
        let info = &self.processes[&pid];
        let to = if self.rng.chance(0.8) {
            info.believed
        } else {
            info.believed_before
        };
        if self.alive(to) {
            let id = self.kills.len() as i32 + 1;
            self.kills.insert(id, (pid, Whereabouts::InFlight(to)));
            trace!(self, "kill k{id} for {pid} arrives at c{}", to.0);
            self.route(to, User::Kill { pid, id })?;
        }
        Ok(())
    }
}
