//! One clock for the whole chip, checked on the 16-cluster boot (`noc_sync`). Cluster 0
//! drives: it measures every other cluster's clock offset with ping exchanges, and moves a
//! `zdtm clock` process (reading `clock_ns(MONOTONIC)` in a loop) through every cluster and
//! home. The other clusters answer pings and run what arrives until cluster 0 releases them.

use abi::{ClusterId, Pid};
use alloc::string::String;
use alloc::vec::Vec;
use hal::noc::PortId;
use kernel::noc::{self, mailbox, sync};
use kernel::process::{scheduler, with_table};

use crate::{ensure, ensure_eq, tests};

pub const DRIVER: &[crate::framework::Test] = tests![
    clock_is_chip_time,
    clocks_agree_within_100_us,
    monotonic_across_every_cluster,
    release_the_clusters
];
pub const SERVING: &[crate::framework::Test] =
    tests![clock_is_chip_time, answer_pings_until_released];

const PING_PORT: u16 = 0x7200;
const PONG_PORT: u16 = 0x7201;
const RELEASE_PORT: u16 = 0x7202;
/// Ping exchanges per cluster; the one with the smallest round trip is kept.
const SAMPLES: u64 = 32;
/// The chip-wide agreement promised by docs/abi.md.
const AGREEMENT_NS: u64 = 100_000;
const TIMEOUT_NS: u64 = 150_000_000_000;

fn err<E: core::fmt::Debug>(e: E) -> String {
    alloc::format!("{e:?}")
}

fn nodes() -> Vec<hal::noc::ClusterId> {
    (0..noc::cluster_count()).map(hal::noc::ClusterId).collect()
}

fn word(payload: &[u8; 120], i: usize) -> u64 {
    u64::from_le_bytes(payload[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]))
}

fn clock_is_chip_time() -> Result<(), String> {
    ensure!(hal::clock::is_chip_time(), "the clock is not synchronised");
    let (bound, rounds) = hal::noc::timesync::error_bound_ns().unwrap_or((u64::MAX, 0));
    hal::println!(
        "clock c{}: time-sync error <= {bound} ns ({rounds} refinement rounds)",
        noc::cluster().0
    );
    Ok(())
}

/// Cluster 0 sends `(seq, t0)`, the peer answers `(seq, t0, its now)`, received at `t1`. With
/// the smallest round trip of [`SAMPLES`], the peer's offset is `tk - (t0 + t1) / 2`, known to
/// within half the round trip: so `|offset| - rtt/2 <= 100 µs` must hold.
fn clocks_agree_within_100_us() -> Result<(), String> {
    let pongs = mailbox::create(PortId(PONG_PORT)).map_err(err)?;
    let mut failures = Vec::new();
    for peer in 1..noc::cluster_count() {
        let to = mailbox::open(hal::noc::ClusterId(peer), PortId(PING_PORT)).map_err(err)?;
        let mut best: Option<(u64, i64)> = None; // (rtt, offset)
        for seq in 1..=SAMPLES {
            let mut ping = [0u8; 120];
            let t0 = hal::clock::now_ns();
            ping[..8].copy_from_slice(&seq.to_le_bytes());
            ping[8..16].copy_from_slice(&t0.to_le_bytes());
            noc::retry(TIMEOUT_NS, || mailbox::write(&to, &ping)).map_err(err)?;
            let mut theirs = None;
            noc::wait_until(TIMEOUT_NS, || {
                while let Ok(message) = mailbox::try_read(&pongs) {
                    if word(&message.payload, 0) == seq && message.source.0 == peer {
                        theirs = Some(word(&message.payload, 2));
                    }
                }
                theirs.is_some()
            })
            .map_err(|e| alloc::format!("no pong from c{peer}: {e:?}"))?;
            let t1 = hal::clock::now_ns();
            let rtt = t1 - t0;
            let offset = theirs.unwrap_or(0) as i64 - (t0 + rtt / 2) as i64;
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        let (rtt, offset) = best.unwrap_or((u64::MAX, 0));
        let excess = offset.unsigned_abs().saturating_sub(rtt / 2);
        hal::println!("clock c{peer}: offset {offset} ns, best round trip {rtt} ns, beyond rtt/2: {excess} ns");
        if excess > AGREEMENT_NS {
            failures.push(alloc::format!("c{peer} off by {offset} ns (rtt {rtt} ns)"));
        }
    }
    mailbox::unlink(pongs);
    ensure!(
        failures.is_empty(),
        "clocks disagree: {}",
        failures.join(", ")
    );
    Ok(())
}

fn run_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    scheduler::run_until(|| done() || hal::timer::expired(deadline), || {});
    ensure!(done(), "timed out waiting for {what}");
    Ok(())
}

/// A process reading its monotonic clock visits every cluster and comes home; it exits 1 if
/// it ever saw the clock step back.
fn monotonic_across_every_cluster() -> Result<(), String> {
    let count = noc::cluster_count();
    let moves = alloc::format!("{count}");
    let pid: Pid = with_table(|t| t.spawn("zdtm", &["clock", &moves], None)).map_err(err)?;
    run_until("the case to be ready", || {
        kernel::process::console_history(Some(pid))
            .iter()
            .any(|l| l.starts_with("ready"))
    })?;
    for to in (1..count).chain([0]) {
        multikernel::request_migration(pid, ClusterId(to));
        run_until("the migration", || {
            let arrived = if to == 0 {
                with_table(|t| t.processes.contains_key(&pid))
                    && multikernel::location(pid).is_none()
            } else {
                multikernel::location(pid) == Some(ClusterId(to))
            };
            arrived || matches!(multikernel::outcome(pid), Some(Err(_)))
        })?;
        if let Some(Err(error)) = multikernel::outcome(pid) {
            ensure!(
                multikernel::location(pid) == Some(ClusterId(to)) || to == 0,
                "migration to c{to} failed: {error:?}"
            );
        }
    }
    run_until("the case to exit", || {
        with_table(|t| t.orphan_exit_code(pid)).is_some()
    })?;
    for line in kernel::process::console_history(Some(pid)) {
        if line.starts_with("clock:") {
            hal::println!("  {line}");
        }
    }
    ensure_eq!(with_table(|t| t.orphan_exit_code(pid)), Some(0));
    Ok(())
}

fn release_the_clusters() -> Result<(), String> {
    let release =
        sync::open(PortId(RELEASE_PORT), &nodes(), sync::SyncMode::OneToAll).map_err(err)?;
    noc::retry(TIMEOUT_NS, || sync::signal(&release)).map_err(err)
}

/// Answers every ping with this cluster's clock, and runs migrated processes, until released.
fn answer_pings_until_released() -> Result<(), String> {
    let pings = mailbox::create(PortId(PING_PORT)).map_err(err)?;
    let release =
        sync::create(PortId(RELEASE_PORT), &nodes(), sync::SyncMode::OneToAll).map_err(err)?;
    let deadline = hal::clock::now_ns() + 20 * TIMEOUT_NS;
    let mut answered = 0u64;
    scheduler::run_until(
        || {
            noc::pump();
            while let Ok(message) = mailbox::try_read(&pings) {
                let mut pong = message.payload;
                pong[16..24].copy_from_slice(&hal::clock::now_ns().to_le_bytes());
                if let Ok(back) = mailbox::open(message.source, PortId(PONG_PORT)) {
                    let _ = noc::retry(TIMEOUT_NS, || mailbox::write(&back, &pong));
                    answered += 1;
                }
            }
            sync::try_wait(&release).is_ok() || hal::timer::expired(deadline)
        },
        || {},
    );
    ensure!(
        hal::clock::now_ns() <= deadline,
        "the driver never finished"
    );
    ensure_eq!(answered, SAMPLES);
    let frozen = with_table(|t| t.processes.values().filter(|p| p.uarea.is_frozen()).count());
    ensure_eq!(frozen, 0);
    Ok(())
}
