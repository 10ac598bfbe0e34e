//! A stand-in for a cluster's QEMU + guest NoC driver, for tests and tools.
//!
//! It connects to a cluster socket exactly as QEMU's `ivshmem-doorbell` does
//! (receives the peer id, the memfd and the eventfds over `SCM_RIGHTS`), maps
//! the shared memory and then behaves like the guest driver described in
//! `docs/noc.md`: push to its TX ring and ring the router's doorbell; on its
//! own eventfd (the MSI-X interrupt in a real guest) drain the RX ring and ring
//! the router again so it can deliver anything held back by a full RX ring.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use noc_proto::layout::{Layout, SliceInfo};
use noc_proto::ring::{RecvError, RingError};
use noc_proto::wire::{ClusterId, Header, MAX_MESSAGE};
use noc_proto::{Slice, ROUTER_PEER_ID};

use crate::ivshmem::{self, recv_msg};
use crate::shm::Mapping;

/// A connected fake cluster.
pub struct FakeCluster {
    pub id: ClusterId,
    pub info: SliceInfo,
    sock: UnixStream,
    _map: Mapping,
    slice: Slice,
    router_doorbell: Vec<OwnedFd>,
    interrupts: Vec<OwnedFd>,
    buf: Vec<u8>,
}

impl FakeCluster {
    /// Connects to `path` and performs the client side of the handshake for a
    /// device with `vectors` vectors.
    pub fn connect(path: &Path, vectors: usize) -> Result<FakeCluster> {
        let sock =
            UnixStream::connect(path).with_context(|| format!("connect {}", path.display()))?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let next = |what: &str| -> Result<(i64, Option<OwnedFd>)> {
            recv_msg(&sock)?.with_context(|| format!("server closed the socket before {what}"))
        };
        let (version, fd) = next("the version")?;
        ensure!(
            version == ivshmem::PROTOCOL_VERSION && fd.is_none(),
            "bad version message {version}"
        );
        let (id, fd) = next("the peer id")?;
        ensure!(
            fd.is_none() && (0..ROUTER_PEER_ID as i64).contains(&id),
            "bad id message {id}"
        );
        let id = ClusterId(id as u16);
        let mut shm = None;
        let mut router_doorbell = Vec::new();
        let mut interrupts = Vec::new();
        while shm.is_none() || interrupts.len() < vectors {
            match next("the end of setup")? {
                (-1, Some(fd)) => shm = Some(fd),
                (p, Some(fd)) if p == id.0 as i64 => interrupts.push(fd),
                (p, Some(fd)) if p == ROUTER_PEER_ID as i64 => router_doorbell.push(fd),
                (p, fd) => bail!("unexpected setup message {p} (fd: {})", fd.is_some()),
            }
        }
        ensure!(
            router_doorbell.len() == vectors,
            "got {} router eventfds",
            router_doorbell.len()
        );
        let shm = shm.context("no shared memory")?;
        // SAFETY: fstat on a valid fd into a zeroed stat buffer.
        let size = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            ensure!(libc::fstat(shm.as_raw_fd(), &mut st) == 0, "fstat shm");
            st.st_size as usize
        };
        let layout = Layout::new(size).map_err(|e| anyhow::anyhow!("{e}"))?;
        let map = Mapping::map(&shm, size)?;
        // SAFETY: the mapping covers the whole region and outlives `slice`
        // (both are fields of the returned value; `_map` is dropped last).
        let slice = unsafe { Slice::in_region(map.as_ptr(), layout, id) }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let info = slice
            .control()
            .validate(&layout, id)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(FakeCluster {
            id,
            info,
            sock,
            _map: map,
            slice,
            router_doorbell,
            interrupts,
            buf: vec![0u8; MAX_MESSAGE],
        })
    }

    pub fn slice(&self) -> &Slice {
        &self.slice
    }

    /// Guest doorbell write `(ROUTER_PEER_ID << 16) | 0`.
    pub fn ring_router(&self) {
        ivshmem::notify(&self.router_doorbell[0]);
    }

    /// Pushes a message and rings the router.
    pub fn send(&self, hdr: &Header, payload: &[u8]) -> Result<(), RingError> {
        self.slice.tx().try_push(hdr, payload)?;
        self.ring_router();
        Ok(())
    }

    /// Pushes raw bytes as a record (to test the router's validation).
    pub fn send_raw(&self, record: &[u8]) -> Result<(), RingError> {
        self.slice.tx().try_push_record(record)?;
        self.ring_router();
        Ok(())
    }

    /// Sends, waiting (up to `timeout`) while the TX ring is full.
    pub fn send_blocking(&self, hdr: &Header, payload: &[u8], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.send(hdr, payload) {
                Ok(()) => return Ok(()),
                Err(RingError::Full) if Instant::now() < deadline => {
                    self.ring_router();
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => bail!("send to {:?}: {e}", hdr.dst),
            }
        }
    }

    /// Waits up to `timeout` for the interrupt eventfd; clears it.
    pub fn wait_interrupt(&self, timeout: Duration) -> bool {
        if ivshmem::wait_readable(self.interrupts[0].as_raw_fd(), timeout.as_millis() as i32) {
            ivshmem::drain(&self.interrupts[0]);
            true
        } else {
            false
        }
    }

    /// Takes one message from the RX ring (no waiting). A consumed record
    /// rings the router so it can refill the ring.
    pub fn try_recv(&mut self) -> Result<Option<(Header, Vec<u8>)>, RecvError> {
        let r = self
            .slice
            .rx()
            .recv_message(&mut self.buf, self.info.cluster_count)
            .map(|o| o.map(|(h, p)| (h, p.to_vec())));
        if !matches!(r, Ok(None)) {
            self.ring_router();
        }
        r
    }

    /// Receives one valid message, waiting up to `timeout`; invalid ones are
    /// returned as errors (the caller counts them).
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<(Header, Vec<u8>)>, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_recv()? {
                Some(m) => return Ok(Some(m)),
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    self.wait_interrupt(left.min(Duration::from_millis(20)));
                }
            }
        }
    }

    /// Closes the connection, as a QEMU that exits would.
    pub fn disconnect(self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}
