//! NoC benchmark (`suite=noc_bench`, run by `cargo xtask bench noc`): mailbox round trips
//! from cluster 0 to a neighbour and to the farthest corner, and portal throughput into
//! cluster 0. Cluster 0 prints `bench ...` lines that xtask turns into JSON.

use alloc::string::String;
use alloc::vec::Vec;
use hal::noc::{ClusterId, PortId};
use kernel::noc::{self, mailbox, portal, NocError};

use crate::{ensure, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    all_clusters_joined,
    mailbox_round_trip,
    portal_throughput,
    user_portal_throughput,
    finish_together,
];

fn all_clusters_joined() -> Result<(), String> {
    super::noc::all_clusters_joined()
}

fn finish_together() -> Result<(), String> {
    super::noc::finish_together()
}

const ROUND_TRIPS: usize = 1000;
const WARM_UP: usize = 50;
const TIMEOUT_NS: u64 = 120_000_000_000;
/// (size, transfers) for the portal runs.
const PORTAL_RUNS: [(usize, usize); 3] = [(4096, 64), (65536, 32), (1 << 20, 8)];

fn err(e: NocError) -> String {
    alloc::format!("{e:?}")
}

/// Retries until `operation` stops saying `WouldBlock`, halting in between (see below).
fn spin<T>(mut operation: impl FnMut() -> Result<T, NocError>) -> Result<T, String> {
    let deadline = hal::clock::now_ns() + TIMEOUT_NS;
    loop {
        match operation() {
            Err(NocError::WouldBlock) if !hal::timer::expired(deadline) => halt_unless_pending(),
            Err(NocError::WouldBlock) => return Err("timed out".into()),
            other => return other.map_err(err),
        }
    }
}

fn corner() -> u16 {
    noc::cluster_count() - 1
}

fn mailbox_round_trip() -> Result<(), String> {
    let me = noc::cluster().0;
    let peers = [(1u16, "neighbour"), (corner(), "corner")];
    if me == 0 {
        let replies = mailbox::create(PortId(101)).map_err(err)?;
        for (peer, label) in peers {
            let to = mailbox::open(ClusterId(peer), PortId(100)).map_err(err)?;
            let mut samples = Vec::with_capacity(ROUND_TRIPS);
            let mut payload = [0u8; noc_proto::wire::MAILBOX_PAYLOAD];
            for i in 0..ROUND_TRIPS + WARM_UP {
                payload[..4].copy_from_slice(&(i as u32).to_le_bytes());
                let start = hal::clock::now_ns();
                spin(|| mailbox::write(&to, &payload))?;
                let reply = spin(|| mailbox::try_read(&replies))?;
                let end = hal::clock::now_ns();
                ensure!(reply.payload == payload, "echo {i} from {peer} differs");
                if i >= WARM_UP {
                    samples.push(end - start);
                }
            }
            samples.sort_unstable();
            let median = samples[samples.len() / 2];
            let p99 = samples[samples.len() * 99 / 100];
            hal::println!(
                "bench mailbox_rtt {label} {peer} {}.{:03} {}.{:03}",
                median / 1000,
                median % 1000,
                p99 / 1000,
                p99 % 1000
            );
        }
        // Tell the echoers to stop.
        for (peer, _) in peers {
            let to = mailbox::open(ClusterId(peer), PortId(100)).map_err(err)?;
            spin(|| mailbox::write(&to, &[0xFF; noc_proto::wire::MAILBOX_PAYLOAD]))?;
        }
    } else if peers.iter().any(|(p, _)| *p == me) {
        let requests = mailbox::create(PortId(100)).map_err(err)?;
        let back = mailbox::open(ClusterId(0), PortId(101)).map_err(err)?;
        loop {
            let request = spin(|| mailbox::try_read(&requests))?;
            if request.payload == [0xFF; noc_proto::wire::MAILBOX_PAYLOAD] {
                break;
            }
            spin(|| mailbox::write(&back, &request.payload))?;
        }
    }
    Ok(())
}

fn portal_throughput() -> Result<(), String> {
    let me = noc::cluster().0;
    for (run, (size, transfers)) in PORTAL_RUNS.iter().copied().enumerate() {
        let port = PortId(110 + run as u16);
        if me == 0 {
            let inbox = portal::create(port).map_err(err)?;
            let start = hal::clock::now_ns();
            for _ in 0..transfers {
                portal::allow(&inbox, ClusterId(1)).map_err(err)?;
                let (_, data) = spin(|| portal::try_read_vec(&inbox))?;
                ensure!(data.len() == size, "got {} bytes", data.len());
            }
            let ns = (hal::clock::now_ns() - start).max(1);
            let bytes = (size * transfers) as u64;
            // bytes per µs = MB/s (10^6 bytes per second).
            let mb_s_milli = bytes * 1_000_000 / ns;
            hal::println!(
                "bench portal_mb_s {size} {}.{:03}",
                mb_s_milli / 1000,
                mb_s_milli % 1000
            );
            portal::unlink(inbox);
        } else if me == 1 {
            let to = portal::open(ClusterId(0), port).map_err(err)?;
            let data = alloc::vec![0x5Au8; size];
            for _ in 0..transfers {
                spin(|| portal::write(&to, &data))?;
            }
            spin(|| {
                if noc::backlog_bytes() == 0 {
                    Ok(())
                } else {
                    noc::pump();
                    Err(NocError::WouldBlock)
                }
            })?;
        }
    }
    Ok(())
}

/// 1 MiB `portal_write`s between two processes (cluster 0 → cluster 1), timed by the writer
/// from its first write to the reader's "done": the user path (syscall, relay, DMA from the
/// writer's pages, reader's copy) next to the kernel's own portal above.
fn user_portal_throughput() -> Result<(), String> {
    use super::migration_noc::{release_the_other_clusters, serve_until_the_driver_is_done};
    const TRANSFERS: usize = 8;
    if noc::cluster().0 != 0 {
        return serve_until_the_driver_is_done();
    }
    let count = alloc::format!("{TRANSFERS}");
    let pid =
        kernel::process::with_table(|t| t.spawn("abitest", &["portal-bench", "1", &count], None))
            .map_err(|e| alloc::format!("spawn: {e:?}"))?;
    let code = super::migration_noc::exit_code(pid);
    release_the_other_clusters()?;
    ensure!(code == Ok(0), "portal-bench ended {code:?}");
    let line = kernel::process::console_history(Some(pid))
        .into_iter()
        .find(|l| l.starts_with("portal-bench:"))
        .ok_or("no portal-bench line")?;
    let ns: u64 = line
        .split_whitespace()
        .rev()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or("bad portal-bench line")?;
    let mb_s_milli = (TRANSFERS as u64 * (1 << 20)) * 1_000_000 / ns.max(1);
    hal::println!(
        "bench user_portal_mb_s {} {}.{:03}",
        1 << 20,
        mb_s_milli / 1000,
        mb_s_milli % 1000
    );
    Ok(())
}

/// Halts until the next interrupt (the NoC doorbell, or the deadline the caller registered)
/// unless data already waits: a spinning guest would take the host CPU the router needs to
/// deliver (2 shared cores).
fn halt_unless_pending() {
    hal::cpu::disable_interrupts();
    if noc::work_pending() {
        hal::cpu::enable_interrupts();
    } else {
        hal::timer::halt();
    }
}
