//! Kernel NoC services: logical **ports** over the cluster's one NoC interface (Nanvix-style),
//! carrying three abstractions — [`mailbox`] (fixed 120-byte messages), [`portal`] (allowed
//! transfers up to 1 MiB) and [`sync`] (ONE_TO_ALL / ALL_TO_ONE signals).
//!
//! Every operation is **non-blocking**: it completes, or returns [`NocError::WouldBlock`] and
//! the caller retries after an [`Event`] for that endpoint (see [`set_event_hook`]). That is
//! the shape the syscall layer needs to block a thread and wake it later.
//!
//! Receiving is demultiplexing: [`pump`] drains the driver's RX ring into per-port queues and
//! sends what the outgoing backlog holds. It runs from every operation here and from the idle
//! loop; the doorbell interrupt only sets a flag ([`work_pending`]). Ports of each kind are
//! separate namespaces (mailbox port 5 ≠ portal port 5). Messages for a port nobody created
//! yet are kept (bounded) and handed to its creator, so a sender never races a receiver's
//! `create`. A port queue at its bound *defers* the RX ring: the router then holds further
//! traffic for this cluster back (backpressure, never loss). That stalls every port of the
//! cluster (head-of-line blocking) until the full port is read, so the bound is generous;
//! per-(sender, port) credits would make it per-port (not done yet).

pub mod greeting;
pub mod link_cost;
pub mod mailbox;
pub mod portal;
pub mod sync;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use hal::noc::{ClusterId, Delivery, Header, Kind, PortId};

/// Why a NoC service operation did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NocError {
    /// This machine has no NoC (a single cluster).
    NotPresent,
    /// Not now: retry after an event for this endpoint (data arrived, room freed, allowed).
    WouldBlock,
    /// No such cluster in this machine.
    BadCluster,
    /// The port is already created on this cluster.
    PortInUse,
    /// The operation does not fit this endpoint (e.g. a sync role this cluster does not play).
    BadEndpoint,
    /// More than the abstraction allows (portal transfer > 1 MiB).
    TooLarge,
    /// The caller's buffer cannot hold the data (nothing was consumed).
    BufferTooSmall,
    /// The receiver refused a portal transfer it had not allowed.
    Refused,
    /// A kernel-internal wait ([`wait_until`]) ran out of time.
    TimedOut,
    /// The DMA engine reported a failed transfer (integrity check, peer gone): both sides.
    TransferFailed,
}

impl From<hal::noc::NocError> for NocError {
    fn from(error: hal::noc::NocError) -> Self {
        match error {
            hal::noc::NocError::NotPresent => NocError::NotPresent,
            hal::noc::NocError::WouldBlock => NocError::WouldBlock,
            hal::noc::NocError::BadDestination => NocError::BadCluster,
            hal::noc::NocError::TooLarge | hal::noc::NocError::Invalid(_) => NocError::TooLarge,
        }
    }
}

/// "Something changed for this endpoint": what a blocked caller waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A mailbox message arrived on this local port.
    Mailbox(PortId),
    /// A portal transfer completed on this local port.
    PortalData(PortId),
    /// `remote` allowed (or refused) our writes to its portal `port`.
    PortalAllow { remote: ClusterId, port: PortId },
    /// A sync signal arrived for this sync port.
    Sync(PortId),
    /// The outgoing backlog shrank: `WouldBlock` writers may retry.
    TxSpace,
}

/// Service counters (`noc` in the monitor; tests read them).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub mailbox_rx: u64,
    pub portal_transfers_rx: u64,
    pub portal_chunks_refused: u64,
    pub portal_refusals_received: u64,
    pub portal_chunks_dropped: u64,
    /// DMA transfers that failed (either side).
    pub portal_dma_errors: u64,
    pub sync_signals_rx: u64,
    pub unexpected: u64,
}

/// Most messages one port queue holds before the RX ring is deferred. Deferring blocks the
/// whole RX ring (head of line), so this is large: per-port credits would remove the limit.
pub const PORT_QUEUE_LIMIT: usize = 4096;
/// Bytes the outgoing backlog accepts before writers get `WouldBlock`.
pub const BACKLOG_LIMIT: usize = 2 * noc_proto::wire::MAX_PORTAL_TRANSFER;

pub(crate) struct State {
    pub(crate) mailboxes: mailbox::Mailboxes,
    pub(crate) portals: portal::Portals,
    pub(crate) syncs: sync::Syncs,
    backlog: VecDeque<(Header, Vec<u8>)>,
    backlog_bytes: usize,
    events: Vec<Event>,
    pub(crate) counters: Counters,
}

static STATE: spin::Mutex<State> = spin::Mutex::new(State {
    mailboxes: mailbox::Mailboxes::new(),
    portals: portal::Portals::new(),
    syncs: sync::Syncs::new(),
    backlog: VecDeque::new(),
    backlog_bytes: 0,
    events: Vec::new(),
    counters: Counters {
        mailbox_rx: 0,
        portal_transfers_rx: 0,
        portal_chunks_refused: 0,
        portal_refusals_received: 0,
        portal_chunks_dropped: 0,
        portal_dma_errors: 0,
        sync_signals_rx: 0,
        unexpected: 0,
    },
});
static ARRIVED: AtomicBool = AtomicBool::new(false);
static EVENT_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the doorbell hook. Called once by [`crate::init`].
pub fn init() {
    hal::noc::set_arrival_hook(on_doorbell);
}

fn on_doorbell() {
    ARRIVED.store(true, Ordering::Release);
}

/// True if a doorbell rang or data is waiting since the last [`pump`] (the idle loop's
/// "should I pump before halting" check).
pub fn work_pending() -> bool {
    ARRIVED.load(Ordering::Acquire)
        || hal::noc::rx_pending()
        || !with_state(|s| s.backlog.is_empty())
}

/// Installs the function [`pump`] calls, outside any lock and outside interrupt context, for
/// every [`Event`] (the syscall layer wakes the threads waiting on that endpoint).
pub fn set_event_hook(hook: fn(Event)) {
    EVENT_HOOK.store(hook as usize, Ordering::SeqCst);
}

pub(crate) fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    hal::cpu::without_interrupts(|| f(&mut STATE.lock()))
}

/// This cluster.
pub fn cluster() -> ClusterId {
    ClusterId(hal::noc::cluster())
}

/// Number of clusters in the machine.
pub fn cluster_count() -> u16 {
    hal::noc::cluster_count()
}

/// True once the router sees every cluster of the machine connected.
pub fn all_joined() -> bool {
    let count = cluster_count() as u32;
    let all = if count >= 64 {
        u64::MAX
    } else {
        (1u64 << count) - 1
    };
    hal::noc::live_clusters() & all == all
}

/// Service counters.
pub fn counters() -> Counters {
    with_state(|s| s.counters)
}

pub(crate) fn check_cluster(remote: ClusterId) -> Result<(), NocError> {
    if !hal::noc::present() {
        return Err(NocError::NotPresent);
    }
    if remote.0 >= cluster_count() {
        return Err(NocError::BadCluster);
    }
    Ok(())
}

impl State {
    /// Sends now if nothing is waiting ahead of it, else queues behind the backlog (order is
    /// kept). `force` queues even above [`BACKLOG_LIMIT`] (small control replies).
    pub(crate) fn send_or_queue(
        &mut self,
        header: Header,
        payload: &[u8],
        force: bool,
    ) -> Result<(), NocError> {
        if self.backlog.is_empty() {
            match hal::noc::send(header, payload) {
                Ok(()) => return Ok(()),
                Err(hal::noc::NocError::WouldBlock) => {}
                Err(error) => return Err(error.into()),
            }
        }
        if !force && self.backlog_bytes + payload.len() > BACKLOG_LIMIT {
            return Err(NocError::WouldBlock);
        }
        self.backlog_bytes += payload.len();
        self.backlog.push_back((header, payload.to_vec()));
        Ok(())
    }

    /// Room in the backlog for `bytes` more (a writer checks before queueing many messages).
    pub(crate) fn backlog_room(&self, bytes: usize) -> bool {
        self.backlog_bytes + bytes <= BACKLOG_LIMIT
    }

    pub(crate) fn backlog_is_empty(&self) -> bool {
        self.backlog.is_empty()
    }

    fn flush_backlog(&mut self) {
        let before = self.backlog.len();
        while let Some((header, payload)) = self.backlog.front() {
            match hal::noc::send(*header, payload) {
                Ok(()) => {}
                Err(hal::noc::NocError::WouldBlock) => break,
                Err(error) => log::warn!("noc: dropping a queued message: {error:?}"),
            }
            self.backlog_bytes -= payload.len();
            self.backlog.pop_front();
        }
        if self.backlog.len() != before {
            self.events.push(Event::TxSpace);
        }
    }

    fn deliver(&mut self, header: &Header, payload: &[u8]) -> Delivery {
        match header.kind {
            Kind::Mailbox => self.mailboxes.deliver(header, payload, &mut self.events),
            Kind::PortalData => {
                let mut replies = Vec::new();
                let delivery = self
                    .portals
                    .deliver_data(header, &mut self.counters, &mut replies);
                for reply in replies {
                    let _ = self.send_or_queue(reply, &[], true);
                }
                delivery
            }
            Kind::PortalAllow => {
                self.portals
                    .deliver_allow(header, payload, &mut self.events, &mut self.counters);
                Delivery::Accept
            }
            Kind::DmaComplete => {
                self.portals.deliver_complete(
                    header,
                    payload,
                    &mut self.events,
                    &mut self.counters,
                );
                Delivery::Accept
            }
            Kind::SyncSignal => self.syncs.deliver(header, &mut self.events),
            Kind::ClusterDown => {
                log::info!("noc: cluster {} went down", header.arg);
                Delivery::Accept
            }
            Kind::Control | Kind::DmaGrant | Kind::DmaDescriptor => {
                self.counters.unexpected += 1;
                Delivery::Accept
            }
        }
    }
}

/// How soon a pass that left a TX backlog retries it.
const BACKLOG_RETRY_NS: u64 = 1_000_000;

/// Moves data: sends what the backlog holds, then drains the RX ring into the port queues.
/// Returns the number of messages received. Never blocks; safe to call anywhere outside
/// interrupt context.
pub fn pump() -> usize {
    if !hal::noc::present() {
        return 0;
    }
    ARRIVED.store(false, Ordering::Release);
    hal::noc::timesync::refine_if_due();
    let (received, events) = with_state(|state| {
        state.flush_backlog();
        let received = hal::noc::poll(|header, payload| state.deliver(header, payload));
        state.flush_backlog();
        if !state.backlog.is_empty() {
            // The router does not say when it has drained our TX ring: retry soon (a slow
            // poll, only while a backlog exists; there is no periodic tick to do it).
            hal::timer::wake_after(BACKLOG_RETRY_NS);
        }
        state.counters.mailbox_rx = state.mailboxes.received;
        state.counters.sync_signals_rx = state.syncs.received;
        (received, core::mem::take(&mut state.events))
    });
    let hook = EVENT_HOOK.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: EVENT_HOOK only ever holds 0 or a `fn(Event)` stored by `set_event_hook`.
        let hook: fn(Event) = unsafe { core::mem::transmute::<usize, fn(Event)>(hook) };
        for event in events {
            hook(event);
        }
    }
    received
}

/// Bytes this cluster has queued but not yet handed to the TX ring.
pub fn backlog_bytes() -> usize {
    with_state(|s| s.backlog_bytes)
}

/// Pumps until `done()` holds or `timeout_ns` passes, halting between attempts (interrupts
/// are enabled while halted). For kernel code and tests that may wait; `TimedOut` on timeout.
pub fn wait_until(timeout_ns: u64, mut done: impl FnMut() -> bool) -> Result<(), NocError> {
    let deadline = hal::clock::now_ns().saturating_add(timeout_ns);
    let enabled = hal::cpu::interrupts_enabled();
    let result = loop {
        pump();
        if done() {
            break Ok(());
        }
        if hal::timer::expired(deadline) {
            break Err(NocError::TimedOut);
        }
        // Check for work with interrupts off, so an arrival after the check still ends the
        // halt (`halt` re-enables them atomically with the `hlt`).
        hal::cpu::disable_interrupts();
        if work_pending() {
            hal::cpu::enable_interrupts();
        } else {
            hal::timer::halt();
        }
    };
    if !enabled {
        hal::cpu::disable_interrupts();
    }
    result
}

/// Retries a non-blocking operation until it stops saying `WouldBlock` (or times out, which
/// returns `WouldBlock`).
pub fn retry<T>(
    timeout_ns: u64,
    mut operation: impl FnMut() -> Result<T, NocError>,
) -> Result<T, NocError> {
    let mut result = Err(NocError::WouldBlock);
    let _ = wait_until(timeout_ns, || {
        result = operation();
        !matches!(result, Err(NocError::WouldBlock))
    });
    result
}
