//! Layout of the ivshmem shared-memory region (BAR2 in the guest).
//!
//! The region is split into [`MAX_CLUSTERS`] equal slices, whatever the number
//! of clusters actually running: `slice_size = shm_size / 32`. So a guest can
//! find its slice from nothing but the BAR2 size and its IVPosition (= cluster
//! id), and the layout never depends on how many QEMUs were started.
//! `shm_size` must be a power of two (it becomes a PCI BAR) between
//! [`MIN_SHM_SIZE`] and [`MAX_SHM_SIZE`]; the default is 64 MiB (2 MiB slices).
//!
//! Slice `k` (at `k * slice_size`), offsets relative to the slice:
//!
//! | offset            | size          | what                                   | written by |
//! |------------------:|--------------:|----------------------------------------|------------|
//! | `0x0000`          | `0x800`       | control block ([`ControlBlock`])       | see fields |
//! | `0x0800`          | 128           | RX ring header (head `+0`, tail `+64`) | head: router, tail: cluster |
//! | `0x0900`          | 128           | TX ring header (head `+0`, tail `+64`) | head: cluster, tail: router |
//! | `0x1000`          | `ring_capacity` | RX ring data                          | router     |
//! | `0x1000 + ring_capacity` | `ring_capacity` | TX ring data                   | cluster    |
//!
//! `ring_capacity = ((slice_size - 0x1000) / 2)` rounded down to 64 bytes
//! (1 046 528 bytes for 2 MiB slices).
//!
//! The control block (all fields little-endian, accessed as atomics):
//!
//! | offset | type | field                    | written by |
//! |-------:|------|--------------------------|------------|
//! | 0x00 | u32 | magic [`SLICE_MAGIC`] (written last, Release) | router |
//! | 0x04 | u32 | layout version [`LAYOUT_VERSION`] | router |
//! | 0x08 | u32 | cluster id (= ivshmem peer id = IVPosition) | router |
//! | 0x0C | u32 | cluster count                 | router |
//! | 0x10 | u32 | router peer id ([`ROUTER_PEER_ID`]) | router |
//! | 0x14 | u32 | doorbell vectors per peer     | router |
//! | 0x18 | u32 | slice size                    | router |
//! | 0x1C | u32 | ring capacity                 | router |
//! | 0x20 | u64 | live-clusters bitmap (bit k = cluster k connected) | router |
//! | 0x28 | u64 | membership epoch (+1 on every join/leave) | router |
//! | 0x40 | u64 × 8 | router counters ([`RouterCounter`]) | router |
//! | 0x80 | u64 × 8 | guest counters ([`GuestCounter`]), informative | cluster |
//! | 0xC0 | u64 | host TSC frequency in Hz (0 = no chip clock) | router |
//! | 0xC8 | u64 | chip epoch: host TSC at chip time 0     | router |
//! | 0xD0 | u64 | time-sync request sequence              | cluster |
//! | 0xD8 | u64 | time-sync reply sequence (stored last, Release) | router |
//! | 0xE0 | u64 | time-sync reply: host TSC when served   | router |
//! | 0xE8 | i64 | guest's TSC offset to the host's, informative | cluster |
//! | 0xF0 | u64 | round trip of that sample in TSC ticks, informative | cluster |
//!
//! The clock fields and the time-sync exchange are in [`crate::clock`].

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::ring::{Ring, RING_HEADER_SIZE};
use crate::wire::{ClusterId, MAX_MESSAGE};

/// Most clusters one machine can have (slices in the region).
pub const MAX_CLUSTERS: usize = abi::ClusterId::MAX_CLUSTERS as usize;
/// ivshmem peer id of the router (noc-sim). Clusters are peers `0..count`.
pub const ROUTER_PEER_ID: u16 = MAX_CLUSTERS as u16;
const _: () = assert!(ClusterId::ROUTER.0 == ROUTER_PEER_ID);
/// `"TSLC"` as a little-endian u32: the slice's control block is initialised.
pub const SLICE_MAGIC: u32 = u32::from_le_bytes(*b"TSLC");
/// Bumped on any incompatible change of the slice layout or ring framing.
pub const LAYOUT_VERSION: u32 = 2;
/// Default shared-memory size: 64 MiB, 2 MiB per slice.
pub const DEFAULT_SHM_SIZE: usize = 64 << 20;
/// Smallest region: 256 KiB slices still carry two maximal messages per ring.
pub const MIN_SHM_SIZE: usize = 8 << 20;
/// Largest region accepted.
pub const MAX_SHM_SIZE: usize = 1 << 30;

/// Start of the control block in a slice.
pub const CONTROL_OFFSET: usize = 0;
/// Bytes reserved for the control block.
pub const CONTROL_SIZE: usize = 0x800;
/// RX ring header (router → cluster).
pub const RX_HEADER_OFFSET: usize = 0x800;
/// TX ring header (cluster → router).
pub const TX_HEADER_OFFSET: usize = 0x900;
/// Start of the RX ring data; TX data follows it.
pub const RING_DATA_OFFSET: usize = 0x1000;

/// Control block field offsets.
pub mod cb {
    pub const MAGIC: usize = 0x00;
    pub const VERSION: usize = 0x04;
    pub const CLUSTER_ID: usize = 0x08;
    pub const CLUSTER_COUNT: usize = 0x0C;
    pub const ROUTER_PEER_ID: usize = 0x10;
    pub const VECTORS: usize = 0x14;
    pub const SLICE_SIZE: usize = 0x18;
    pub const RING_CAPACITY: usize = 0x1C;
    pub const LIVE_CLUSTERS: usize = 0x20;
    pub const EPOCH: usize = 0x28;
    pub const ROUTER_COUNTERS: usize = 0x40;
    pub const GUEST_COUNTERS: usize = 0x80;
    pub const TSC_HZ: usize = 0xC0;
    pub const CHIP_EPOCH_TSC: usize = 0xC8;
    pub const SYNC_REQUEST: usize = 0xD0;
    pub const SYNC_REPLY: usize = 0xD8;
    pub const SYNC_HOST_TSC: usize = 0xE0;
    pub const GUEST_TSC_OFFSET: usize = 0xE8;
    pub const GUEST_SYNC_RTT: usize = 0xF0;
}

/// Counters the router keeps in each slice (for the guest's own stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum RouterCounter {
    /// Messages delivered into this slice's RX ring.
    RxDelivered = 0,
    /// Bytes (headers + payload) delivered into the RX ring.
    RxBytes = 1,
    /// Messages taken from the TX ring and accepted for routing.
    TxAccepted = 2,
    /// Messages taken from the TX ring and dropped as invalid.
    TxDroppedCorrupt = 3,
    /// Messages dropped because their destination is down.
    TxDroppedUnreachable = 4,
    /// Messages from or to this cluster lost to a cut link (noc-sim `cut` / `isolate`),
    /// counted in both clusters' slices.
    CutDropped = 5,
    /// DMA transfers from or to this cluster failed by a cut link (`LinkDown`), counted in
    /// both clusters' slices.
    CutDma = 6,
}

/// Counters the guest may keep in its slice (informative; the router reports
/// them in `stats` but never trusts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum GuestCounter {
    RxOk = 0,
    RxDroppedCorrupt = 1,
    TxSent = 2,
}

/// Why a region or slice is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Size not a power of two or outside `MIN_SHM_SIZE..=MAX_SHM_SIZE`.
    BadShmSize(usize),
    /// Cluster id or count outside `0..MAX_CLUSTERS`.
    BadCluster(usize),
    /// The control block is not initialised (yet): magic mismatch.
    NotReady(u32),
    BadVersion(u32),
    /// A control-block field disagrees with the layout computed locally.
    Mismatch {
        field: &'static str,
        found: u64,
        expected: u64,
    },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            LayoutError::BadShmSize(s) => write!(
                f,
                "shared memory size {s:#x} is not a power of two in {MIN_SHM_SIZE:#x}..={MAX_SHM_SIZE:#x}"
            ),
            LayoutError::BadCluster(c) => write!(f, "cluster {c} out of range (max {MAX_CLUSTERS})"),
            LayoutError::NotReady(m) => write!(f, "slice not initialised (magic {m:#010x})"),
            LayoutError::BadVersion(v) => write!(f, "layout version {v}, expected {LAYOUT_VERSION}"),
            LayoutError::Mismatch { field, found, expected } => {
                write!(f, "control block {field} = {found}, expected {expected}")
            }
        }
    }
}

/// Sizes derived from the region size; identical on both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    shm_size: usize,
}

impl Layout {
    pub const fn new(shm_size: usize) -> Result<Layout, LayoutError> {
        if !shm_size.is_power_of_two() || shm_size < MIN_SHM_SIZE || shm_size > MAX_SHM_SIZE {
            return Err(LayoutError::BadShmSize(shm_size));
        }
        Ok(Layout { shm_size })
    }

    pub const fn shm_size(&self) -> usize {
        self.shm_size
    }

    pub const fn slice_size(&self) -> usize {
        self.shm_size / MAX_CLUSTERS
    }

    pub const fn slice_offset(&self, cluster: ClusterId) -> usize {
        cluster.0 as usize * self.slice_size()
    }

    /// Data capacity of each of the two rings in a slice.
    pub const fn ring_capacity(&self) -> usize {
        ((self.slice_size() - RING_DATA_OFFSET) / 2) & !63
    }

    pub const fn rx_data_offset(&self) -> usize {
        RING_DATA_OFFSET
    }

    pub const fn tx_data_offset(&self) -> usize {
        RING_DATA_OFFSET + self.ring_capacity()
    }
}

// The smallest layout must still carry the largest message through a ring
// (Ring::max_record is capacity/2 minus a frame header).
const _: () = {
    let l = match Layout::new(MIN_SHM_SIZE) {
        Ok(l) => l,
        Err(_) => panic!(),
    };
    assert!(l.ring_capacity() / 2 - 8 >= MAX_MESSAGE);
    assert!(RX_HEADER_OFFSET + RING_HEADER_SIZE <= TX_HEADER_OFFSET);
    assert!(TX_HEADER_OFFSET + RING_HEADER_SIZE <= RING_DATA_OFFSET);
};

/// What a validated control block says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    pub cluster: ClusterId,
    pub cluster_count: u16,
    pub router_peer_id: u16,
    pub vectors: u32,
}

/// Handle on one slice's control block.
#[derive(Clone, Copy, Debug)]
pub struct ControlBlock {
    base: *mut u8,
}

// SAFETY: a pointer into memory that `Slice::new`'s caller keeps mapped; all
// accesses are atomic.
unsafe impl Send for ControlBlock {}
// SAFETY: as above.
unsafe impl Sync for ControlBlock {}

impl ControlBlock {
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= CONTROL_SIZE);
        // SAFETY: `base` is 4 KiB aligned and valid for CONTROL_SIZE bytes (see
        // `Slice::new`); `off` is a 4-aligned constant inside the block.
        unsafe { AtomicU32::from_ptr(self.base.add(off).cast()) }
    }

    pub(crate) fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= CONTROL_SIZE);
        // SAFETY: as in `u32_at`, with an 8-aligned offset.
        unsafe { AtomicU64::from_ptr(self.base.add(off).cast()) }
    }

    pub fn magic(&self) -> u32 {
        self.u32_at(cb::MAGIC).load(Ordering::Acquire)
    }

    /// Router: fills in the block for `cluster`, magic last.
    pub fn init(&self, layout: &Layout, cluster: ClusterId, cluster_count: u16, vectors: u32) {
        self.u32_at(cb::MAGIC).store(0, Ordering::Relaxed);
        self.u32_at(cb::VERSION)
            .store(LAYOUT_VERSION, Ordering::Relaxed);
        self.u32_at(cb::CLUSTER_ID)
            .store(cluster.0 as u32, Ordering::Relaxed);
        self.u32_at(cb::CLUSTER_COUNT)
            .store(cluster_count as u32, Ordering::Relaxed);
        self.u32_at(cb::ROUTER_PEER_ID)
            .store(ROUTER_PEER_ID as u32, Ordering::Relaxed);
        self.u32_at(cb::VECTORS).store(vectors, Ordering::Relaxed);
        self.u32_at(cb::SLICE_SIZE)
            .store(layout.slice_size() as u32, Ordering::Relaxed);
        self.u32_at(cb::RING_CAPACITY)
            .store(layout.ring_capacity() as u32, Ordering::Relaxed);
        self.u64_at(cb::LIVE_CLUSTERS).store(0, Ordering::Relaxed);
        self.u64_at(cb::EPOCH).store(0, Ordering::Relaxed);
        for i in 0..8 {
            self.u64_at(cb::ROUTER_COUNTERS + 8 * i)
                .store(0, Ordering::Relaxed);
            self.u64_at(cb::GUEST_COUNTERS + 8 * i)
                .store(0, Ordering::Relaxed);
        }
        for off in (cb::TSC_HZ..=cb::GUEST_SYNC_RTT).step_by(8) {
            self.u64_at(off).store(0, Ordering::Relaxed);
        }
        self.u32_at(cb::MAGIC).store(SLICE_MAGIC, Ordering::Release);
    }

    /// Guest: checks the block against the locally computed layout and its
    /// own IVPosition. Every field is untrusted input.
    pub fn validate(&self, layout: &Layout, expect: ClusterId) -> Result<SliceInfo, LayoutError> {
        let magic = self.magic();
        if magic != SLICE_MAGIC {
            return Err(LayoutError::NotReady(magic));
        }
        let version = self.u32_at(cb::VERSION).load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(LayoutError::BadVersion(version));
        }
        let check = |field, off, expected: u64| {
            let found = self.u32_at(off).load(Ordering::Relaxed) as u64;
            if found == expected {
                Ok(found)
            } else {
                Err(LayoutError::Mismatch {
                    field,
                    found,
                    expected,
                })
            }
        };
        check("cluster id", cb::CLUSTER_ID, expect.0 as u64)?;
        check("router peer id", cb::ROUTER_PEER_ID, ROUTER_PEER_ID as u64)?;
        check("slice size", cb::SLICE_SIZE, layout.slice_size() as u64)?;
        check(
            "ring capacity",
            cb::RING_CAPACITY,
            layout.ring_capacity() as u64,
        )?;
        let count = self.u32_at(cb::CLUSTER_COUNT).load(Ordering::Relaxed) as usize;
        if count == 0 || count > MAX_CLUSTERS || expect.index() >= count {
            return Err(LayoutError::BadCluster(count));
        }
        Ok(SliceInfo {
            cluster: expect,
            cluster_count: count as u16,
            router_peer_id: ROUTER_PEER_ID,
            vectors: self.u32_at(cb::VECTORS).load(Ordering::Relaxed),
        })
    }

    pub fn cluster_id(&self) -> u32 {
        self.u32_at(cb::CLUSTER_ID).load(Ordering::Relaxed)
    }

    pub fn cluster_count(&self) -> u32 {
        self.u32_at(cb::CLUSTER_COUNT).load(Ordering::Relaxed)
    }

    pub fn router_peer_id(&self) -> u32 {
        self.u32_at(cb::ROUTER_PEER_ID).load(Ordering::Relaxed)
    }

    /// Bit k set ⇔ cluster k is connected to the router.
    pub fn live_clusters(&self) -> u64 {
        self.u64_at(cb::LIVE_CLUSTERS).load(Ordering::Acquire)
    }

    pub fn epoch(&self) -> u64 {
        self.u64_at(cb::EPOCH).load(Ordering::Acquire)
    }

    /// Router: publishes a new membership bitmap and bumps the epoch.
    pub fn set_live_clusters(&self, live: u64) {
        self.u64_at(cb::LIVE_CLUSTERS)
            .store(live, Ordering::Release);
        self.u64_at(cb::EPOCH).fetch_add(1, Ordering::AcqRel);
    }

    pub fn router_counter(&self, c: RouterCounter) -> u64 {
        self.u64_at(cb::ROUTER_COUNTERS + 8 * c as usize)
            .load(Ordering::Relaxed)
    }

    /// Router: adds to one of its counters (only the router writes them).
    pub fn add_router_counter(&self, c: RouterCounter, n: u64) {
        let a = self.u64_at(cb::ROUTER_COUNTERS + 8 * c as usize);
        a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub fn guest_counter(&self, c: GuestCounter) -> u64 {
        self.u64_at(cb::GUEST_COUNTERS + 8 * c as usize)
            .load(Ordering::Relaxed)
    }

    /// Guest: adds to one of its counters (only the guest writes them).
    pub fn add_guest_counter(&self, c: GuestCounter, n: u64) {
        let a = self.u64_at(cb::GUEST_COUNTERS + 8 * c as usize);
        a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// One cluster's slice: control block and the two rings.
///
/// Guest view: [`Slice::tx`] is the ring it produces into, [`Slice::rx`] the
/// ring it consumes. Router view: the opposite.
#[derive(Clone, Copy, Debug)]
pub struct Slice {
    base: *mut u8,
    layout: Layout,
}

// SAFETY: pointers into memory that the creator keeps mapped; see `new`.
unsafe impl Send for Slice {}
// SAFETY: as above.
unsafe impl Sync for Slice {}

impl Slice {
    /// A handle on the slice starting at `slice_base`.
    ///
    /// # Safety
    /// `slice_base` must be 4 KiB aligned and valid for reads and writes of
    /// `layout.slice_size()` bytes for as long as the handle (or a ring or
    /// control block handle made from it) is used. In the guest that is the
    /// BAR2 mapping plus `slice_offset`, mapped uncached or write-back.
    pub unsafe fn new(slice_base: *mut u8, layout: Layout) -> Slice {
        Slice {
            base: slice_base,
            layout,
        }
    }

    /// The slice of `cluster` inside a region mapped at `shm_base`.
    ///
    /// # Safety
    /// `shm_base` must be 4 KiB aligned and valid for `layout.shm_size()`
    /// bytes, as for [`Slice::new`].
    pub unsafe fn in_region(
        shm_base: *mut u8,
        layout: Layout,
        cluster: ClusterId,
    ) -> Result<Slice, LayoutError> {
        if cluster.index() >= MAX_CLUSTERS {
            return Err(LayoutError::BadCluster(cluster.index()));
        }
        // SAFETY: cluster < MAX_CLUSTERS, so the slice lies inside the region.
        Ok(unsafe { Slice::new(shm_base.add(layout.slice_offset(cluster)), layout) })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn control(&self) -> ControlBlock {
        ControlBlock { base: self.base }
    }

    /// Router → cluster ring.
    pub fn rx(&self) -> Ring {
        let cap = self.layout.ring_capacity();
        // SAFETY: header at 0x800 (64-aligned, 128 bytes) and data at
        // 0x1000..0x1000+cap lie inside the slice (const-checked above).
        unsafe {
            Ring::new(
                self.base.add(RX_HEADER_OFFSET),
                self.base.add(self.layout.rx_data_offset()),
                cap,
            )
        }
    }

    /// Cluster → router ring.
    pub fn tx(&self) -> Ring {
        let cap = self.layout.ring_capacity();
        // SAFETY: header at 0x900 and data at tx_data_offset..+cap lie inside
        // the slice: 0x1000 + 2 * cap <= slice_size.
        unsafe {
            Ring::new(
                self.base.add(TX_HEADER_OFFSET),
                self.base.add(self.layout.tx_data_offset()),
                cap,
            )
        }
    }

    /// Router: initialises rings and control block (control block magic last).
    pub fn init(&self, cluster: ClusterId, cluster_count: u16, vectors: u32) {
        self.rx().init();
        self.tx().init();
        self.control()
            .init(&self.layout, cluster, cluster_count, vectors);
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
