//! The NoC driver: this cluster's interface to the emulated network-on-chip.
//!
//! The interface is an `ivshmem-doorbell` PCI device whose server is noc-sim (docs/noc.md).
//! [`init`] finds it, learns the cluster number (IVPosition) and count (the slice's control
//! block), maps **only this cluster's slice** of BAR2, and routes doorbell vector 0 to
//! [`NOC_VECTOR`] through MSI-X. Without the device the cluster is 0 of 1 and every call
//! returns [`NocError::NotPresent`].
//!
//! Guarantees: [`send`] never overwrites or drops — a full TX ring is [`NocError::WouldBlock`]
//! (backpressure); [`poll`] validates every received message with `noc_proto::wire::decode`
//! on a private copy, drops and counts a corrupt one (never panics), and lets the consumer
//! [`Delivery::Defer`] a message it has no room for, which leaves it in the RX ring so the
//! router holds the rest back. The interrupt handler only counts and calls the kernel's hook;
//! draining happens in [`poll`], outside interrupt context.

pub mod dma;
pub mod dma_code;
pub mod ivshmem;
pub mod msix;
pub mod pci;
pub mod timesync;

use alloc::boxed::Box;
use alloc::vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use noc_proto::layout::GuestCounter;
pub use noc_proto::layout::RouterCounter;
use noc_proto::{wire, Layout, RingError, Slice};
pub use noc_proto::{ClusterId, Header, Kind, PortId, WireError};
use x86_64::PhysAddr;

use crate::frame::TrapFrame;
use ivshmem::Ivshmem;

/// Local APIC vector of the NoC doorbell (MSI-X entry 0).
pub const NOC_VECTOR: u8 = 0x40;
/// The router's ivshmem peer id (doorbell target).
const ROUTER_VECTOR: u16 = 0;

/// Why a NoC operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NocError {
    /// No NoC device: a single cluster.
    NotPresent,
    /// The TX ring is full; retry once the router drained it (backpressure, nothing lost).
    WouldBlock,
    /// The message can never be sent (payload above the wire limit for its kind).
    TooLarge,
    /// The destination is not a cluster of this machine (nor the router).
    BadDestination,
    /// The header and payload do not form a valid message.
    Invalid(WireError),
}

/// What the driver found.
#[derive(Clone, Copy, Debug)]
pub struct NocInfo {
    pub cluster: u16,
    pub cluster_count: u16,
    pub shm_size: u64,
}

/// What a [`poll`] consumer does with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Taken: pop it from the RX ring.
    Accept,
    /// No room now: leave it (and everything behind it) in the RX ring.
    Defer,
}

/// Driver counters (the guest counters in the control block mirror the first three).
#[derive(Clone, Copy, Debug, Default)]
pub struct NocStats {
    pub rx_ok: u64,
    pub rx_corrupt: u64,
    pub tx_sent: u64,
    pub tx_would_block: u64,
    pub interrupts: u64,
    pub doorbells: u64,
}

struct Device {
    registers: Ivshmem,
    slice: Slice,
    me: ClusterId,
    count: u16,
    router: u16,
    shm_size: u64,
}

static DEVICE: spin::Once<Device> = spin::Once::new();
/// Next sequence number; the lock also serialises producers of the TX ring.
static TX: spin::Mutex<u32> = spin::Mutex::new(0);
/// The RX copy buffer; the lock serialises consumers of the RX ring.
static RX: spin::Mutex<Option<Box<[u8]>>> = spin::Mutex::new(None);
static HOOK: AtomicUsize = AtomicUsize::new(0);

static RX_OK: AtomicU64 = AtomicU64::new(0);
static RX_CORRUPT: AtomicU64 = AtomicU64::new(0);
static TX_SENT: AtomicU64 = AtomicU64::new(0);
static TX_WOULD_BLOCK: AtomicU64 = AtomicU64::new(0);
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);
static DOORBELLS: AtomicU64 = AtomicU64::new(0);

/// Finds and opens the NoC device. Called by [`crate::init`] after the local APIC is up and
/// before interrupts are enabled. `None` if there is no device or it is unusable (reported).
pub fn init() -> Option<NocInfo> {
    let address = Ivshmem::find()?;
    match open(address) {
        Ok(info) => Some(info),
        Err(why) => {
            log::error!("noc: ivshmem device at {address:?} unusable: {why}");
            None
        }
    }
}

fn open(address: pci::PciAddress) -> Result<NocInfo, &'static str> {
    let registers = Ivshmem::open(address).map_err(|_| "cannot map its BARs")?;
    let position = registers.position();
    let me = ClusterId(u16::try_from(position).map_err(|_| "IVPosition out of range")?);
    let layout = Layout::new(registers.shm.size as usize).map_err(|_| "bad BAR2 size")?;
    if me.index() >= noc_proto::MAX_CLUSTERS {
        return Err("IVPosition is not a cluster");
    }
    let slice_phys = registers.shm.phys + layout.slice_offset(me) as u64;
    let slice_virt = crate::paging::map_mmio(PhysAddr::new(slice_phys), layout.slice_size() as u64)
        .map_err(|_| "cannot map our slice of BAR2")?;
    // SAFETY: `slice_virt` maps our whole slice (4 KiB aligned, slice_size bytes) for the
    // kernel's lifetime; the router is the only other party and follows the ring protocol.
    let slice = unsafe { Slice::new(slice_virt.as_mut_ptr(), layout) };
    let info = slice
        .control()
        .validate(&layout, me)
        .map_err(|_| "control block invalid (magic, version, sizes or cluster id)")?;
    *RX.lock() = Some(vec![0u8; wire::MAX_MESSAGE].into_boxed_slice());
    crate::vectors::set_handler(NOC_VECTOR, interrupt);
    if let Err(error) = msix::enable(address, 0, NOC_VECTOR, crate::apic::id()) {
        // Still usable: `poll` finds messages, the router re-polls every 50 ms.
        log::warn!("noc: MSI-X unavailable ({error:?}); polling only");
    }
    let device = DEVICE.call_once(|| Device {
        registers,
        slice,
        me,
        count: info.cluster_count,
        router: info.router_peer_id,
        shm_size: layout.shm_size() as u64,
    });
    timesync::synchronise(device);
    Ok(NocInfo {
        cluster: device.me.0,
        cluster_count: device.count,
        shm_size: device.shm_size,
    })
}

/// True once [`init`] found a working device.
pub fn present() -> bool {
    DEVICE.get().is_some()
}

/// This cluster's number (0 without a NoC).
pub fn cluster() -> u16 {
    DEVICE.get().map_or(0, |d| d.me.0)
}

/// Number of clusters in the machine (1 without a NoC).
pub fn cluster_count() -> u16 {
    DEVICE.get().map_or(1, |d| d.count)
}

/// One of the counters the router keeps in our slice (0 without a NoC): what it delivered,
/// dropped or lost to a cut link on our behalf.
pub fn router_counter(counter: RouterCounter) -> u64 {
    DEVICE
        .get()
        .map_or(0, |d| d.slice.control().router_counter(counter))
}

/// Bitmap of the clusters the router currently sees connected (bit k = cluster k).
pub fn live_clusters() -> u64 {
    DEVICE
        .get()
        .map_or(1, |d| d.slice.control().live_clusters())
}

/// Installs the function the doorbell interrupt calls (in interrupt context: it must not
/// block or take locks a non-interrupt path holds; typically it marks work pending).
pub fn set_arrival_hook(hook: fn()) {
    HOOK.store(hook as usize, Ordering::SeqCst);
}

fn interrupt(_frame: &mut TrapFrame) {
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    let hook = HOOK.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: HOOK only ever holds 0 or a `fn()` stored by `set_arrival_hook`.
        let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
        hook();
    }
}

fn ring_router(device: &Device) {
    DOORBELLS.fetch_add(1, Ordering::Relaxed);
    device.registers.ring(device.router, ROUTER_VECTOR);
}

/// Sends one message. `header.src` and `header.seq` are filled in; everything else (kind,
/// flags, dst, port, arg) is the caller's, and `header.len` is set from `payload`.
/// Non-blocking: a full TX ring gives [`NocError::WouldBlock`] and nothing is written.
pub fn send(mut header: Header, payload: &[u8]) -> Result<(), NocError> {
    let device = DEVICE.get().ok_or(NocError::NotPresent)?;
    if header.dst != ClusterId::ROUTER && header.dst.0 >= device.count {
        return Err(NocError::BadDestination);
    }
    header.src = device.me;
    header.len = u32::try_from(payload.len()).map_err(|_| NocError::TooLarge)?;
    let mut seq = TX.lock();
    header.seq = *seq;
    let encoded = wire::encode_header(&header, payload).map_err(NocError::Invalid)?;
    match device.slice.tx().try_push_parts(&[&encoded, payload]) {
        Ok(()) => {
            *seq = seq.wrapping_add(1);
            drop(seq);
            TX_SENT.fetch_add(1, Ordering::Relaxed);
            device
                .slice
                .control()
                .add_guest_counter(GuestCounter::TxSent, 1);
            ring_router(device);
            Ok(())
        }
        Err(RingError::Full) => {
            drop(seq);
            TX_WOULD_BLOCK.fetch_add(1, Ordering::Relaxed);
            // Make sure the router knows there is something to drain.
            ring_router(device);
            Err(NocError::WouldBlock)
        }
        Err(RingError::TooLarge) => Err(NocError::TooLarge),
        // Our own ring's indices are inconsistent: only the router writes `tail`, so a
        // hostile or confused router. Nothing sensible to retry.
        Err(RingError::Corrupt) => Err(NocError::WouldBlock),
    }
}

/// Shorthand for [`send`] with flags and arg zero.
pub fn send_to(dst: ClusterId, port: PortId, kind: Kind, payload: &[u8]) -> Result<(), NocError> {
    send(Header::new(kind, ClusterId(0), dst, port, 0), payload)
}

/// Free bytes in the TX ring (a sender can check before starting a multi-message transfer).
pub fn tx_free_bytes() -> usize {
    DEVICE.get().map_or(0, |d| {
        let tx = d.slice.tx();
        tx.capacity()
            .saturating_sub(tx.used_bytes().unwrap_or(tx.capacity()))
    })
}

/// Drains the RX ring: hands every valid message to `deliver` in arrival order and stops at
/// the first one it defers. Returns the number of messages accepted. Corrupt messages are
/// dropped and counted; a corrupt ring (router bug) is reset and counted once.
pub fn poll(mut deliver: impl FnMut(&Header, &[u8]) -> Delivery) -> usize {
    let Some(device) = DEVICE.get() else {
        return 0;
    };
    let Some(mut guard) = RX.try_lock() else {
        return 0; // another poll is running further up this stack
    };
    let Some(buffer) = guard.as_mut() else {
        return 0;
    };
    let rx = device.slice.rx();
    let control = device.slice.control();
    let mut accepted = 0;
    let mut consumed = false;
    loop {
        let record = match rx.peek() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(_) => {
                rx.reset_consumer();
                RX_CORRUPT.fetch_add(1, Ordering::Relaxed);
                control.add_guest_counter(GuestCounter::RxDroppedCorrupt, 1);
                consumed = true;
                break;
            }
        };
        // Validate a private copy: the shared bytes may change under us.
        let Some(len) = record.copy_to(buffer) else {
            rx.pop(record);
            consumed = true;
            RX_CORRUPT.fetch_add(1, Ordering::Relaxed);
            control.add_guest_counter(GuestCounter::RxDroppedCorrupt, 1);
            continue;
        };
        match wire::decode(&buffer[..len], device.count) {
            Err(error) => {
                rx.pop(record);
                consumed = true;
                let n = RX_CORRUPT.fetch_add(1, Ordering::Relaxed);
                control.add_guest_counter(GuestCounter::RxDroppedCorrupt, 1);
                if n < 10 {
                    log::warn!("noc: dropped a corrupt message: {error}");
                }
            }
            Ok((header, payload)) => match deliver(&header, payload) {
                Delivery::Accept => {
                    rx.pop(record);
                    consumed = true;
                    accepted += 1;
                    RX_OK.fetch_add(1, Ordering::Relaxed);
                    control.add_guest_counter(GuestCounter::RxOk, 1);
                }
                Delivery::Defer => break,
            },
        }
    }
    drop(guard);
    if consumed {
        // RX space was released: the router may have messages it held back for us.
        ring_router(device);
    }
    accepted
}

/// True if the RX ring holds something (a cheap check before [`poll`]).
pub fn rx_pending() -> bool {
    DEVICE.get().is_some_and(|d| !d.slice.rx().is_empty())
}

/// Driver counters.
pub fn stats() -> NocStats {
    NocStats {
        rx_ok: RX_OK.load(Ordering::Relaxed),
        rx_corrupt: RX_CORRUPT.load(Ordering::Relaxed),
        tx_sent: TX_SENT.load(Ordering::Relaxed),
        tx_would_block: TX_WOULD_BLOCK.load(Ordering::Relaxed),
        interrupts: INTERRUPTS.load(Ordering::Relaxed),
        doorbells: DOORBELLS.load(Ordering::Relaxed),
    }
}

/// True when the router has taken everything we put in the TX ring.
pub fn tx_idle() -> bool {
    DEVICE.get().is_none_or(|d| d.slice.tx().is_empty())
}
