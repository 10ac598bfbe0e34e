//! Multi-cluster NoC tests: every cluster of one boot runs the same list, each playing its
//! role by cluster number, and prints its own verdicts (xtask merges the logs).
//!
//! Robust on a loaded host: no timing assertions, every wait has a generous deadline, tests
//! use distinct ports so late traffic from one cannot confuse another, and the suite ends
//! with a barrier so no cluster powers off while others still talk to it.

use alloc::string::String;
use alloc::vec::Vec;
use hal::noc::{ClusterId, Header, Kind, PortId};
use kernel::noc::{self, mailbox, portal, sync, NocError};
use noc_proto::wire::MAILBOX_PAYLOAD;

use super::noc_code::dma_written_code_runs_as_written;
use super::noc_dma::{
    dma_faults_reach_both_sides, dma_rejections_leave_memory_untouched,
    portal_transfers_are_bound_to_their_id,
};
use crate::{ensure, ensure_eq, tests};

/// The 4-cluster suite (`noc`).
pub const TESTS: &[crate::framework::Test] = tests![
    all_clusters_joined,
    mailbox_ping_pong_every_pair,
    many_senders_one_receiver_no_loss,
    portal_1mib_transfer_checksum,
    portal_write_without_allow_is_refused,
    dma_rejections_leave_memory_untouched,
    dma_faults_reach_both_sides,
    portal_transfers_are_bound_to_their_id,
    dma_written_code_runs_as_written,
    corrupted_message_is_rejected_and_counted,
    finish_together,
];

/// The 16-cluster suite (`noc_sync`).
pub const SYNC_TESTS: &[crate::framework::Test] = tests![
    all_clusters_joined,
    sync_roles_are_checked,
    sync_all_to_one_rounds,
    sync_one_to_all_rounds,
    finish_together,
];

const TIMEOUT_NS: u64 = 90_000_000_000;

pub(crate) fn me() -> u16 {
    noc::cluster().0
}

fn count() -> u16 {
    noc::cluster_count()
}

fn all_nodes() -> Vec<ClusterId> {
    (0..count()).map(ClusterId).collect()
}

pub(crate) fn wait(what: &str, done: impl FnMut() -> bool) -> Result<(), String> {
    noc::wait_until(TIMEOUT_NS, done)
        .map_err(|_| alloc::format!("timed out after 90 s waiting for {what}"))
}

pub(crate) fn retry<T>(
    what: &str,
    operation: impl FnMut() -> Result<T, NocError>,
) -> Result<T, String> {
    noc::retry(TIMEOUT_NS, operation).map_err(|e| alloc::format!("{what}: {e:?}"))
}

/// A full barrier over every cluster: ALL_TO_ONE to cluster 0, then ONE_TO_ALL from it.
pub(crate) fn barrier(port: u16) -> Result<(), String> {
    let nodes = all_nodes();
    let (gather, release) = (PortId(port), PortId(port + 1));
    if me() == 0 {
        let waiter = sync::create(gather, &nodes, sync::SyncMode::AllToOne)
            .map_err(|e| alloc::format!("create: {e:?}"))?;
        retry("barrier gather", || sync::try_wait(&waiter))?;
        let signaller = sync::open(release, &nodes, sync::SyncMode::OneToAll)
            .map_err(|e| alloc::format!("open: {e:?}"))?;
        retry("barrier release", || sync::signal(&signaller))
    } else {
        let signaller = sync::open(gather, &nodes, sync::SyncMode::AllToOne)
            .map_err(|e| alloc::format!("open: {e:?}"))?;
        retry("barrier gather", || sync::signal(&signaller))?;
        let waiter = sync::create(release, &nodes, sync::SyncMode::OneToAll)
            .map_err(|e| alloc::format!("create: {e:?}"))?;
        retry("barrier release", || sync::try_wait(&waiter))
    }
}

pub fn all_clusters_joined() -> Result<(), String> {
    let cmdline = kernel::Cmdline::from_firmware();
    let expected: u32 = cmdline
        .get("clusters")
        .and_then(|v| v.parse().ok())
        .ok_or("the test kernel needs clusters=N on its command line")?;
    ensure!(hal::noc::present(), "no NoC device found");
    ensure_eq!(kernel::cluster_count(), expected);
    ensure!((me() as u32) < expected, "cluster {} of {expected}", me());
    ensure_eq!(hal::logger::cluster(), me() as u32);
    wait("every cluster to join", noc::all_joined)
}

fn pattern(from: u16, to: u16, seq: u32) -> mailbox::Payload {
    let mut payload = [0u8; MAILBOX_PAYLOAD];
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte = (from as usize * 31 + to as usize * 7 + seq as usize * 13 + i) as u8;
    }
    payload[0..2].copy_from_slice(&from.to_le_bytes());
    payload[2..6].copy_from_slice(&seq.to_le_bytes());
    payload
}

fn mailbox_ping_pong_every_pair() -> Result<(), String> {
    let pings = mailbox::create(PortId(10)).map_err(|e| alloc::format!("{e:?}"))?;
    let pongs = mailbox::create(PortId(11)).map_err(|e| alloc::format!("{e:?}"))?;
    let others: Vec<u16> = (0..count()).filter(|&c| c != me()).collect();
    for &other in &others {
        let to =
            mailbox::open(ClusterId(other), PortId(10)).map_err(|e| alloc::format!("{e:?}"))?;
        retry("ping", || mailbox::write(&to, &pattern(me(), other, 1)))?;
    }
    let (mut answered, mut ponged) = (Vec::new(), Vec::new());
    let mut error = None;
    wait("pings and pongs", || {
        while let Ok(ping) = mailbox::try_read(&pings) {
            let from = ping.source.0;
            if ping.payload != pattern(from, me(), 1) {
                error = Some(alloc::format!("ping from {from} damaged"));
            }
            match mailbox::open(ping.source, PortId(11)) {
                Ok(to) => {
                    let _ = noc::retry(TIMEOUT_NS, || mailbox::write(&to, &ping.payload));
                }
                Err(e) => error = Some(alloc::format!("open {from}: {e:?}")),
            }
            answered.push(from);
        }
        while let Ok(pong) = mailbox::try_read(&pongs) {
            if pong.payload != pattern(me(), pong.source.0, 1) {
                error = Some(alloc::format!("pong from {} damaged", pong.source.0));
            }
            ponged.push(pong.source.0);
        }
        error.is_some() || (answered.len() >= others.len() && ponged.len() >= others.len())
    })?;
    if let Some(error) = error {
        return Err(error);
    }
    answered.sort_unstable();
    ponged.sort_unstable();
    ensure_eq!(answered, others);
    ensure_eq!(ponged, others);
    Ok(())
}

const MESSAGES_PER_SENDER: u32 = 400;

fn many_senders_one_receiver_no_loss() -> Result<(), String> {
    let port = PortId(20);
    if me() == 0 {
        let inbox = mailbox::create(port).map_err(|e| alloc::format!("{e:?}"))?;
        // Let the senders get ahead: the port queue fills and the RX ring backs up.
        hal::clock::sleep_ns(500_000_000);
        let senders = count() as usize - 1;
        let mut next = alloc::vec![0u32; count() as usize];
        let mut received = 0usize;
        let mut error = None;
        wait("every message", || {
            while let Ok(message) = mailbox::try_read(&inbox) {
                let from = message.source.0;
                let seq = next[from as usize];
                if message.payload != pattern(from, 0, seq) {
                    error = Some(alloc::format!(
                        "message {seq} from {from} lost, reordered or damaged"
                    ));
                }
                next[from as usize] += 1;
                received += 1;
            }
            error.is_some() || received >= senders * MESSAGES_PER_SENDER as usize
        })?;
        if let Some(error) = error {
            return Err(error);
        }
        ensure_eq!(received, senders * MESSAGES_PER_SENDER as usize);
        ensure!(
            next[1..].iter().all(|&n| n == MESSAGES_PER_SENDER),
            "per-sender counts {next:?}"
        );
    } else {
        let to = mailbox::open(ClusterId(0), port).map_err(|e| alloc::format!("{e:?}"))?;
        for seq in 0..MESSAGES_PER_SENDER {
            retry("send", || mailbox::write(&to, &pattern(me(), 0, seq)))?;
        }
    }
    Ok(())
}

pub(crate) fn transfer_data(seed: u16, len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9u32 ^ (seed as u32).wrapping_mul(0x85EB_CA6B);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn portal_1mib_transfer_checksum() -> Result<(), String> {
    const LEN: usize = 1 << 20;
    let port = PortId(40);
    let next = ClusterId((me() + 1) % count());
    let previous = ClusterId((me() + count() - 1) % count());
    let inbox = portal::create(port).map_err(|e| alloc::format!("{e:?}"))?;
    portal::allow(&inbox, previous).map_err(|e| alloc::format!("allow: {e:?}"))?;
    let to = portal::open(next, port).map_err(|e| alloc::format!("{e:?}"))?;
    let data = transfer_data(me(), LEN);
    retry("portal write", || portal::write(&to, &data))?;
    let mut got = None;
    wait("the 1 MiB transfer", || {
        got = portal::try_read_vec(&inbox).ok();
        got.is_some()
    })?;
    let (source, bytes) = got.ok_or("no transfer")?;
    ensure_eq!(source, previous);
    ensure_eq!(bytes.len(), LEN);
    let expected = crc32fast::hash(&transfer_data(previous.0, LEN));
    ensure_eq!(crc32fast::hash(&bytes), expected);
    wait("our transfer to leave", || noc::backlog_bytes() == 0)?;
    Ok(())
}

fn portal_write_without_allow_is_refused() -> Result<(), String> {
    let port = PortId(50);
    let inbox = if me() == 0 {
        Some(portal::create(port).map_err(|e| alloc::format!("{e:?}"))?)
    } else {
        None
    };
    if me() == 1 {
        let to = portal::open(ClusterId(0), port).map_err(|e| alloc::format!("{e:?}"))?;
        let data = transfer_data(1, 5000);
        ensure_eq!(portal::write(&to, &data), Err(NocError::WouldBlock));
        hal::clock::sleep_ns(200_000_000);
        ensure_eq!(portal::write(&to, &data), Err(NocError::WouldBlock));
        ensure!(!portal::is_allowed(&to), "allowed without an allow");
        // Bypass the handshake with the raw driver: a descriptor for a transfer nobody
        // granted. The DMA engine must refuse it, and the refusal reaches `write`.
        let list = hal::noc::dma::RangeList::of_buffer(data.as_ptr(), data.len())
            .map_err(|e| alloc::format!("{e:?}"))?;
        let forged = hal::noc::dma::descriptor_message(ClusterId(0), 0xDEAD, &list);
        retry("forged descriptor", || {
            hal::noc::dma::send_descriptor(port, &forged).map_err(NocError::from)
        })?;
        wait("the refusal", || {
            noc::counters().portal_refusals_received >= 1
        })?;
        ensure_eq!(portal::write(&to, &data), Err(NocError::Refused));
    }
    barrier(52)?;
    if let Some(inbox) = inbox {
        // Nothing arrived for the forged descriptor; now allow: the same sender gets through.
        ensure_eq!(
            portal::try_read_vec(&inbox).map(|_| ()),
            Err(NocError::WouldBlock)
        );
        portal::allow(&inbox, ClusterId(1)).map_err(|e| alloc::format!("{e:?}"))?;
        let mut got = None;
        wait("the allowed transfer", || {
            got = portal::try_read_vec(&inbox).ok();
            got.is_some()
        })?;
        let (source, bytes) = got.ok_or("no transfer")?;
        ensure_eq!(source, ClusterId(1));
        ensure_eq!(bytes, transfer_data(1, 5000));
    }
    if me() == 1 {
        let to = portal::open(ClusterId(0), port).map_err(|e| alloc::format!("{e:?}"))?;
        retry("allowed write", || {
            portal::write(&to, &transfer_data(1, 5000))
        })?;
    }
    Ok(())
}

fn corrupted_message_is_rejected_and_counted() -> Result<(), String> {
    let port = PortId(70);
    let corrupt_before = hal::noc::stats().rx_corrupt;
    let inbox = if me() == 1 {
        Some(mailbox::create(port).map_err(|e| alloc::format!("{e:?}"))?)
    } else {
        None
    };
    // Quiet network: nothing else is in flight to cluster 1 while the fault is armed.
    barrier(60)?;
    if me() == 0 {
        let request = Header::new(Kind::Control, ClusterId(0), ClusterId::ROUTER, PortId(0), 0);
        retry("fault request", || {
            hal::noc::send(request, b"corrupt 1 1").map_err(NocError::from)
        })?;
        let to = mailbox::open(ClusterId(1), port).map_err(|e| alloc::format!("{e:?}"))?;
        retry("damaged message", || mailbox::write(&to, &pattern(0, 1, 1)))?;
        retry("intact message", || mailbox::write(&to, &pattern(0, 1, 2)))?;
    }
    if let Some(inbox) = inbox {
        let mut got = Vec::new();
        wait("the intact message", || {
            while let Ok(message) = mailbox::try_read(&inbox) {
                got.push(message.payload);
            }
            !got.is_empty()
        })?;
        ensure_eq!(got.len(), 1);
        ensure!(
            got[0] == pattern(0, 1, 2),
            "the message that arrived is not the intact one"
        );
        let corrupt = hal::noc::stats().rx_corrupt - corrupt_before;
        ensure_eq!(corrupt, 1);
    }
    Ok(())
}

fn sync_roles_are_checked() -> Result<(), String> {
    let nodes = all_nodes();
    let wrong = if me() == 0 {
        sync::open(PortId(80), &nodes, sync::SyncMode::AllToOne).map(|_| ())
    } else {
        sync::create(PortId(80), &nodes, sync::SyncMode::AllToOne).map(|_| ())
    };
    ensure_eq!(wrong, Err(NocError::BadEndpoint));
    let duplicate = [ClusterId(0), ClusterId(0)];
    ensure_eq!(
        sync::open(PortId(80), &duplicate, sync::SyncMode::OneToAll).map(|_| ()),
        Err(NocError::BadEndpoint)
    );
    Ok(())
}

const ROUNDS: usize = 3;

fn sync_all_to_one_rounds() -> Result<(), String> {
    let nodes = all_nodes();
    let port = PortId(82);
    if me() == 0 {
        let waiter = sync::create(port, &nodes, sync::SyncMode::AllToOne)
            .map_err(|e| alloc::format!("{e:?}"))?;
        for round in 0..ROUNDS {
            retry(&alloc::format!("round {round}"), || sync::try_wait(&waiter))?;
        }
        ensure_eq!(sync::try_wait(&waiter), Err(NocError::WouldBlock));
    } else {
        let signaller = sync::open(port, &nodes, sync::SyncMode::AllToOne)
            .map_err(|e| alloc::format!("{e:?}"))?;
        for _ in 0..ROUNDS {
            retry("signal", || sync::signal(&signaller))?;
        }
    }
    Ok(())
}

fn sync_one_to_all_rounds() -> Result<(), String> {
    let nodes = all_nodes();
    let port = PortId(84);
    if me() == 0 {
        let signaller = sync::open(port, &nodes, sync::SyncMode::OneToAll)
            .map_err(|e| alloc::format!("{e:?}"))?;
        for _ in 0..ROUNDS {
            retry("signal", || sync::signal(&signaller))?;
        }
    } else {
        let waiter = sync::create(port, &nodes, sync::SyncMode::OneToAll)
            .map_err(|e| alloc::format!("{e:?}"))?;
        for round in 0..ROUNDS {
            retry(&alloc::format!("round {round}"), || sync::try_wait(&waiter))?;
        }
        ensure_eq!(sync::try_wait(&waiter), Err(NocError::WouldBlock));
    }
    Ok(())
}

/// Last test: a barrier, then wait until the router took all we sent, so powering off cannot
/// cut another cluster's traffic short.
pub fn finish_together() -> Result<(), String> {
    barrier(90)?;
    wait("the TX ring to drain", || {
        noc::backlog_bytes() == 0 && hal::noc::tx_idle()
    })?;
    hal::clock::sleep_ns(300_000_000);
    // Every cluster received messages, so the router rang its doorbell: MSI-X must work.
    let stats = hal::noc::stats();
    ensure!(stats.interrupts > 0, "no NoC interrupt taken ({stats:?})");
    Ok(())
}
