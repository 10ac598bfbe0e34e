//! The chip clock: one time base shared by every cluster.
//!
//! Under TCG a guest's TSC is the host's TSC plus a constant per-VM offset (QEMU
//! `cpu_get_ticks()` = `cpu_ticks_offset + cpu_get_host_ticks()`), so every cluster's TSC
//! ticks at the host's rate. The router measures that rate once, at start, and publishes it
//! in every control block with the **chip epoch**, the host TSC at chip time 0 (both
//! written before the guest gets its memory). A guest then needs only its own offset to the
//! host TSC, which it learns with a time-sync exchange through its control block:
//!
//! 1. guest: reads its TSC `t0`, stores a new request sequence ([`ControlBlock::request_time_sync`])
//!    and rings the router's doorbell;
//! 2. router: on every wake-up, for a slice whose request ≠ reply, reads the host TSC `h`,
//!    stores it, then stores reply = request with Release ([`ControlBlock::serve_time_sync`]);
//! 3. guest: spins until the reply carries its sequence, reads its TSC `t1`.
//!
//! `h` was read between `t0` and `t1`, so the true offset lies in
//! `[h - t1, h - t0]`; the midpoint `h - (t0 + t1) / 2` is off by at most half the round trip.
//! The guest keeps the sample with the smallest round trip ([`best_sample`]). Since offset
//! and rate are both constant, the result cannot drift: chip time on any cluster is
//! `(tsc + offset - epoch) / hz`, and two clusters agree to within the sum of their half
//! round trips.

use core::sync::atomic::Ordering;

use crate::layout::{cb, ControlBlock};

/// What the router publishes: the host TSC rate and the TSC at chip time 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChipClock {
    pub tsc_hz: u64,
    pub epoch_tsc: u64,
}

impl ChipClock {
    /// Chip nanoseconds at host TSC value `host_tsc` (0 before the epoch).
    pub fn ns_at(&self, host_tsc: u64) -> u64 {
        let ticks = host_tsc.saturating_sub(self.epoch_tsc);
        (ticks as u128 * 1_000_000_000 / self.tsc_hz.max(1) as u128) as u64
    }
}

/// One time-sync exchange: guest TSC before (`t0`) and after (`t1`), host TSC in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncSample {
    pub t0: u64,
    pub host: u64,
    pub t1: u64,
}

impl SyncSample {
    /// Round trip in TSC ticks.
    pub fn rtt(&self) -> u64 {
        self.t1.saturating_sub(self.t0)
    }

    /// host TSC − guest TSC, estimated at the midpoint of the exchange (wrapping: the guest
    /// TSC started near 0 long after the host's).
    pub fn offset(&self) -> i64 {
        let mid = self.t0.wrapping_add(self.rtt() / 2);
        self.host.wrapping_sub(mid) as i64
    }

    /// The guest TSC that corresponds to host TSC `host_tsc` under this sample's offset.
    pub fn guest_tsc_at(&self, host_tsc: u64) -> u64 {
        host_tsc.wrapping_sub(self.offset() as u64)
    }
}

/// The sample with the smallest round trip (its offset has the tightest bound); `None` if
/// there is none or a sample is inconsistent (`t1 < t0`).
pub fn best_sample(samples: &[SyncSample]) -> Option<SyncSample> {
    samples
        .iter()
        .filter(|s| s.t1 >= s.t0)
        .min_by_key(|s| s.rtt())
        .copied()
}

impl ControlBlock {
    /// Router: publishes the chip clock. Call right after [`ControlBlock::init`], before the
    /// guest can see the slice.
    pub fn set_chip_clock(&self, clock: ChipClock) {
        self.u64_at(cb::CHIP_EPOCH_TSC)
            .store(clock.epoch_tsc, Ordering::Relaxed);
        self.u64_at(cb::TSC_HZ)
            .store(clock.tsc_hz, Ordering::Release);
    }

    /// Guest: the chip clock, if the router published one.
    pub fn chip_clock(&self) -> Option<ChipClock> {
        let tsc_hz = self.u64_at(cb::TSC_HZ).load(Ordering::Acquire);
        (tsc_hz != 0).then(|| ChipClock {
            tsc_hz,
            epoch_tsc: self.u64_at(cb::CHIP_EPOCH_TSC).load(Ordering::Relaxed),
        })
    }

    /// Guest: asks for a time-sync reply tagged `sequence` (then ring the router).
    pub fn request_time_sync(&self, sequence: u64) {
        self.u64_at(cb::SYNC_REQUEST)
            .store(sequence, Ordering::Release);
    }

    /// Guest: the host TSC of the reply to `sequence`, once the router has served it.
    pub fn time_sync_reply(&self, sequence: u64) -> Option<u64> {
        (self.u64_at(cb::SYNC_REPLY).load(Ordering::Acquire) == sequence)
            .then(|| self.u64_at(cb::SYNC_HOST_TSC).load(Ordering::Relaxed))
    }

    /// Router: serves a pending request with the host TSC `host_tsc()` read now. Returns true
    /// if there was one. The guest's sequence is untrusted but harmless: it is only echoed.
    pub fn serve_time_sync(&self, host_tsc: impl FnOnce() -> u64) -> bool {
        let request = self.u64_at(cb::SYNC_REQUEST).load(Ordering::Acquire);
        if request == self.u64_at(cb::SYNC_REPLY).load(Ordering::Relaxed) {
            return false;
        }
        self.u64_at(cb::SYNC_HOST_TSC)
            .store(host_tsc(), Ordering::Relaxed);
        self.u64_at(cb::SYNC_REPLY)
            .store(request, Ordering::Release);
        true
    }

    /// Guest: records the offset and round trip it settled on (informative, for `stats`).
    pub fn publish_time_sync(&self, sample: &SyncSample) {
        self.u64_at(cb::GUEST_TSC_OFFSET)
            .store(sample.offset() as u64, Ordering::Relaxed);
        self.u64_at(cb::GUEST_SYNC_RTT)
            .store(sample.rtt(), Ordering::Relaxed);
    }

    /// What the guest published: (TSC offset, round trip in ticks).
    pub fn published_time_sync(&self) -> (i64, u64) {
        (
            self.u64_at(cb::GUEST_TSC_OFFSET).load(Ordering::Relaxed) as i64,
            self.u64_at(cb::GUEST_SYNC_RTT).load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::layout::{Layout, Slice, MIN_SHM_SIZE};
    use crate::wire::ClusterId;
    use proptest::prelude::*;

    #[test]
    fn chip_ns_from_host_tsc() {
        let clock = ChipClock {
            tsc_hz: 2_000_000_000,
            epoch_tsc: 1_000,
        };
        assert_eq!(clock.ns_at(500), 0);
        assert_eq!(clock.ns_at(1_000), 0);
        assert_eq!(clock.ns_at(1_000 + 2_000_000_000), 1_000_000_000);
        assert_eq!(clock.ns_at(1_000 + 3), 1);
    }

    #[test]
    fn smallest_round_trip_wins() {
        let samples = [
            SyncSample {
                t0: 100,
                host: 5_000,
                t1: 300,
            },
            SyncSample {
                t0: 400,
                host: 5_330,
                t1: 420,
            },
            SyncSample {
                t0: 900,
                host: 1,
                t1: 800,
            }, // inconsistent: ignored
        ];
        let best = best_sample(&samples).unwrap();
        assert_eq!(best.rtt(), 20);
        assert_eq!(best.offset(), 5_330 - 410);
        assert_eq!(best_sample(&[]), None);
    }

    proptest! {
        /// Whatever the delays on the way there and back, the midpoint estimate is within
        /// half the round trip of the true offset, so mapping a host time back gives the
        /// guest time within rtt/2.
        #[test]
        fn offset_error_is_bounded_by_half_the_round_trip(
            true_offset in 0u64..1 << 62,
            t0 in 0u64..1 << 40,
            there in 0u64..1 << 30,
            back in 0u64..1 << 30,
        ) {
            let host = t0 + there + true_offset;
            let sample = SyncSample { t0, host, t1: t0 + there + back };
            let error = sample.offset() - true_offset as i64;
            prop_assert!(error.unsigned_abs() <= sample.rtt() / 2 + 1);
            let guest = sample.guest_tsc_at(host);
            prop_assert!(guest.abs_diff(t0 + there) <= sample.rtt() / 2 + 1);
        }
    }

    #[test]
    fn exchange_through_the_control_block() {
        let l = Layout::new(MIN_SHM_SIZE).unwrap();
        let mut mem = std::vec![0u64; l.shm_size() / 8 + 512];
        let base = mem.as_mut_ptr() as *mut u8;
        let base = base.wrapping_add(base.align_offset(4096));
        // SAFETY: `mem` holds shm_size bytes past the 4 KiB-aligned base.
        let s = unsafe { Slice::in_region(base, l, ClusterId(2)) }.unwrap();
        s.init(ClusterId(2), 4, 1);
        let control = s.control();
        assert_eq!(control.chip_clock(), None);
        let clock = ChipClock {
            tsc_hz: 3_000_000_000,
            epoch_tsc: 77,
        };
        control.set_chip_clock(clock);
        assert_eq!(control.chip_clock(), Some(clock));
        assert!(!control.serve_time_sync(|| unreachable!()));
        control.request_time_sync(1);
        assert_eq!(control.time_sync_reply(1), None);
        assert!(control.serve_time_sync(|| 12_345));
        assert!(!control.serve_time_sync(|| unreachable!()));
        assert_eq!(control.time_sync_reply(1), Some(12_345));
        control.request_time_sync(2);
        assert_eq!(control.time_sync_reply(2), None);
        let sample = SyncSample {
            t0: 10,
            host: 12_345,
            t1: 30,
        };
        control.publish_time_sync(&sample);
        assert_eq!(control.published_time_sync(), (12_345 - 20, 20));
        // A re-initialised slice has no clock until the router publishes it again.
        s.init(ClusterId(2), 4, 1);
        assert_eq!(control.chip_clock(), None);
    }
}
