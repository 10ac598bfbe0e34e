//! The router: ivshmem server for every cluster, DMA engine and NoC model.
//!
//! **Peer ids.** Cluster `k` connects to its own listening socket
//! `DIR/c{k}.sock`, so it gets ivshmem peer id `k` whatever order the QEMUs
//! start in. The router is peer [`ROUTER_PEER_ID`] (32) for every cluster.
//! Each cluster is told about the router only — clusters never get each
//! other's eventfds, so the only doorbell a guest can ring is the router's and
//! every byte goes through here.
//!
//! **Doorbells.** The router hands each cluster *its own* eventfds as "peer 32"
//! (one per vector). QEMU cannot tell, and the router then knows which cluster
//! rang from which eventfd fired. The cluster's own eventfds (its MSI-X
//! vectors) are kept here too; writing vector 0's is the RX interrupt.
//!
//! **Forwarding.** On any wakeup the router `pump`s: it delivers due messages
//! into RX rings, then drains every live cluster's TX ring — validating each
//! message with [`noc_proto::wire::decode`] (bad ones are dropped and counted,
//! never forwarded), scheduling it on the link model and queueing it for its
//! destination — and repeats until nothing moves. Backpressure: a full RX ring
//! leaves the message queued (the destination rings the router after
//! consuming); a message for a full destination queue (`queue_limit` messages)
//! waits at its source in a queue of its own per destination, so one stuck
//! destination holds back only the traffic for it; when that queue is full too
//! (`queue_limit`), the message stays in the sender's TX ring. Each pass reads
//! at most `TX_BUDGET` records of one TX ring, so no sender starves the others.
//! Nothing is ever dropped for lack of space.
//! A 50 ms tick re-polls everything, so a guest that polls without ringing
//! still makes progress.
//!
//! **DMA.** Bulk data does not use the rings: with each cluster's RAM file mapped
//! (`--ram K=PATH`), the engine in [`dma`] copies granted transfers from RAM to RAM.
//! Modules: [`cluster`] (per-cluster state), [`dma`] (the engine), [`commands`]
//! (control socket and fault injection), [`cuts`] (links cut for a while), [`forward`]
//! (ring traffic), [`stats`] (JSON and summary).

mod cluster;
mod commands;
mod cuts;
mod dma;
mod forward;
mod stats;

pub use cluster::ClusterStats;
use cluster::{Cluster, Pending};
pub use commands::Faults;
pub use dma::DmaStats;

use std::collections::BinaryHeap;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use noc_proto::clock::ChipClock;
use noc_proto::layout::Layout;
use noc_proto::wire::{self, ClusterId, Header, Kind, PortId};
use noc_proto::{Slice, MAX_CLUSTERS, ROUTER_PEER_ID};

use crate::control::ControlServer;
use crate::guest_ram::GuestRam;
use crate::ivshmem::{self, send_msg};
use crate::link_model::{LinkModel, ModelParams};
use crate::shm::{create_memfd, Mapping};
use crate::topology::Mesh;

/// Router configuration (from the command line).
#[derive(Clone, Debug)]
pub struct Config {
    pub clusters: u16,
    pub dir: PathBuf,
    pub shm_size: usize,
    pub vectors: u32,
    pub mesh: Mesh,
    pub params: ModelParams,
    pub control: Option<PathBuf>,
    pub queue_limit: usize,
    /// Accept fault-injection requests from guests: a `Control` message to the router whose
    /// payload is a `corrupt N [CLUSTER]` command line (test kernels use it to test their
    /// own rejection path). Off by default.
    pub guest_faults: bool,
    /// Each cluster's RAM file (QEMU's memory-backend-file), for the DMA engine; mapped when
    /// the cluster joins. A cluster without one cannot take part in DMA (`NoRam`).
    pub rams: Vec<(u16, PathBuf)>,
}

static SIG_QUIT: AtomicBool = AtomicBool::new(false);
static SIG_STATS: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGUSR1 {
        SIG_STATS.store(true, Ordering::Relaxed);
    } else {
        SIG_QUIT.store(true, Ordering::Relaxed);
    }
}

/// Installs SIGUSR1 (print stats) and SIGINT/SIGTERM (quit) handlers.
pub fn install_signal_handlers() {
    for sig in [libc::SIGUSR1, libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to atomics (async-signal-safe); the
        // sigaction struct is fully initialised.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

const TICK_NS: u64 = 50_000_000;

enum PollSrc {
    Listener(usize),
    Conn(usize),
    Doorbell(usize, usize),
    CtlListener,
    Ctl(usize),
}

/// The running router.
pub struct Router {
    cfg: Config,
    start: Instant,
    memfd: OwnedFd,
    _map: Mapping,
    clusters: Vec<Cluster>,
    model: LinkModel,
    control: Option<ControlServer>,
    faults: Faults,
    /// Links cut for a while (`cut`, `isolate`).
    cuts: cuts::Cuts,
    dma: dma::DmaEngine,
    /// Cluster k's mapped RAM while it is connected.
    rams: Vec<Option<GuestRam>>,
    to_router: u64,
    seq: u64,
    all_joined_reported: bool,
    quit: bool,
    /// The chip clock published in every slice (see [`crate::timesync`]).
    clock: ChipClock,
}

impl Router {
    /// Creates the shared memory, lays out every slice and binds the sockets.
    pub fn new(cfg: Config) -> Result<Router> {
        if cfg.clusters == 0 || cfg.clusters as usize > MAX_CLUSTERS {
            bail!(
                "--clusters {} out of range 1..={MAX_CLUSTERS}",
                cfg.clusters
            );
        }
        if cfg.mesh.nodes() < cfg.clusters as usize {
            bail!(
                "{} has {} nodes, fewer than {} clusters",
                cfg.mesh,
                cfg.mesh.nodes(),
                cfg.clusters
            );
        }
        if cfg.vectors == 0 || cfg.vectors > 16 {
            bail!("--vectors {} out of range 1..=16", cfg.vectors);
        }
        let layout = Layout::new(cfg.shm_size).map_err(|e| anyhow::anyhow!("--shm-size: {e}"))?;
        let memfd =
            create_memfd("tessera-noc", cfg.shm_size).context("create shared memory (memfd)")?;
        let map = Mapping::map(&memfd, cfg.shm_size).context("map shared memory")?;
        let clock = crate::timesync::measure(crate::timesync::MEASURE);
        std::fs::create_dir_all(&cfg.dir)
            .with_context(|| format!("create socket dir {}", cfg.dir.display()))?;
        let mut clusters = Vec::new();
        for k in 0..cfg.clusters {
            let path = cfg.dir.join(format!("c{k}.sock"));
            let _ = std::fs::remove_file(&path);
            let listener =
                UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
            listener.set_nonblocking(true)?;
            // SAFETY: the mapping covers the whole region and lives as long as
            // the Router (field `_map`), which owns every Slice.
            let slice = unsafe { Slice::in_region(map.as_ptr(), layout, ClusterId(k)) }
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            slice.init(ClusterId(k), cfg.clusters, cfg.vectors);
            slice.control().set_chip_clock(clock);
            let mk = |n| {
                (0..n)
                    .map(|_| ivshmem::eventfd())
                    .collect::<io::Result<Vec<_>>>()
            };
            clusters.push(Cluster {
                id: k,
                listener,
                conn: None,
                interrupts: mk(cfg.vectors).context("eventfd")?,
                doorbell: mk(cfg.vectors).context("eventfd")?,
                slice,
                joined_ever: false,
                queue: BinaryHeap::new(),
                rx_stalled: false,
                held: (0..cfg.clusters).map(|_| Default::default()).collect(),
                stats: ClusterStats::default(),
            });
        }
        let control = cfg
            .control
            .as_deref()
            .map(ControlServer::bind)
            .transpose()?;
        let model = LinkModel::new(cfg.mesh, cfg.params);
        let rams = (0..cfg.clusters).map(|_| None).collect();
        Ok(Router {
            cfg,
            start: Instant::now(),
            memfd,
            _map: map,
            clusters,
            model,
            control,
            faults: Faults::default(),
            cuts: cuts::Cuts::default(),
            dma: dma::DmaEngine::default(),
            rams,
            to_router: 0,
            seq: 0,
            all_joined_reported: false,
            quit: false,
            clock,
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn live_mask(&self) -> u64 {
        self.clusters
            .iter()
            .filter(|c| c.conn.is_some())
            .fold(0, |m, c| m | 1 << c.id)
    }

    fn publish_membership(&self) {
        let live = self.live_mask();
        for c in &self.clusters {
            c.slice.control().set_live_clusters(live);
        }
    }

    /// Runs until every cluster that joined has left, or `quit`.
    pub fn run(&mut self) -> Result<()> {
        println!(
            "noc-sim: {} clusters, {}, sockets {}/c{{0..{}}}.sock, shm {} MiB, router peer id {}, host TSC {} kHz",
            self.cfg.clusters,
            self.cfg.mesh,
            self.cfg.dir.display(),
            self.cfg.clusters - 1,
            self.cfg.shm_size >> 20,
            ROUTER_PEER_ID,
            self.clock.tsc_hz / 1000
        );
        loop {
            if SIG_QUIT.swap(false, Ordering::Relaxed) {
                println!("noc-sim: signal, quitting");
                self.quit = true;
            }
            if SIG_STATS.swap(false, Ordering::Relaxed) {
                println!("{}", self.stats_json());
            }
            if self.quit {
                break;
            }
            self.pump();
            if self.clusters.iter().any(|c| c.joined_ever) && self.live_mask() == 0 {
                println!("noc-sim: all clusters that joined have left");
                break;
            }
            self.wait_and_handle()?;
        }
        self.print_summary();
        Ok(())
    }

    fn wait_and_handle(&mut self) -> Result<()> {
        let mut fds = Vec::new();
        let mut srcs = Vec::new();
        let mut add = |fd: i32, src: PollSrc| {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            srcs.push(src);
        };
        for (k, c) in self.clusters.iter().enumerate() {
            add(c.listener.as_raw_fd(), PollSrc::Listener(k));
            if let Some(conn) = &c.conn {
                add(conn.as_raw_fd(), PollSrc::Conn(k));
                for (v, fd) in c.doorbell.iter().enumerate() {
                    add(fd.as_raw_fd(), PollSrc::Doorbell(k, v));
                }
            }
        }
        if let Some(ctl) = &self.control {
            add(ctl.listener.as_raw_fd(), PollSrc::CtlListener);
            for (i, (s, _)) in ctl.conns.iter().enumerate() {
                add(s.as_raw_fd(), PollSrc::Ctl(i));
            }
        }
        let now = self.now();
        let next_due = self
            .clusters
            .iter()
            .filter(|c| !c.rx_stalled)
            .filter_map(|c| c.queue.peek().map(|p| p.deliver_at))
            .min();
        let wait_ns = next_due.map_or(TICK_NS, |t| t.saturating_sub(now).min(TICK_NS));
        let ts = libc::timespec {
            tv_sec: (wait_ns / 1_000_000_000) as _,
            tv_nsec: (wait_ns % 1_000_000_000) as _,
        };
        // SAFETY: fds is a live array of fds.len() pollfds; ts is valid.
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as _, &ts, std::ptr::null()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e).context("ppoll");
        }
        if n == 0 {
            // Tick: retry stalled deliveries even without a doorbell.
            for c in &mut self.clusters {
                c.rx_stalled = false;
            }
            return Ok(());
        }
        let mut ctl_ready = Vec::new();
        for (p, src) in fds.iter().zip(srcs) {
            if p.revents == 0 {
                continue;
            }
            match src {
                PollSrc::Listener(k) => self.accept(k),
                PollSrc::Conn(k) => self.check_conn(k),
                PollSrc::Doorbell(k, v) => {
                    ivshmem::drain(&self.clusters[k].doorbell[v]);
                    self.clusters[k].rx_stalled = false;
                }
                PollSrc::CtlListener => {
                    if let Some(ctl) = &mut self.control {
                        ctl.accept();
                    }
                }
                PollSrc::Ctl(i) => ctl_ready.push(i),
            }
        }
        // Highest index first so removals keep the other indices valid.
        for i in ctl_ready.into_iter().rev() {
            self.serve_control(i);
        }
        Ok(())
    }

    fn accept(&mut self, k: usize) {
        let stream = match self.clusters[k].listener.accept() {
            Ok((s, _)) => s,
            Err(_) => return,
        };
        if self.clusters[k].conn.is_some() {
            eprintln!("noc-sim: cluster {k} is already connected; rejecting a second connection");
            return;
        }
        if let Err(e) = self.handshake(k, &stream) {
            eprintln!("noc-sim: cluster {k}: ivshmem handshake failed: {e:#}");
            return;
        }
        let _ = stream.set_nonblocking(true);
        self.rams[k] = self.open_ram(k);
        let c = &mut self.clusters[k];
        c.conn = Some(stream);
        c.joined_ever = true;
        c.rx_stalled = false;
        self.publish_membership();
        let live = self.live_mask().count_ones();
        let n = self.cfg.clusters;
        println!("cluster {k} joined ({live}/{n})");
        if live == n as u32 && !self.all_joined_reported {
            self.all_joined_reported = true;
            println!(
                "all {n} clusters joined in {} ms",
                self.start.elapsed().as_millis()
            );
        }
    }

    /// Maps cluster `k`'s RAM file, if it has one (QEMU has created it by the time it connects).
    fn open_ram(&self, k: usize) -> Option<GuestRam> {
        let (_, path) = self.cfg.rams.iter().find(|(c, _)| *c as usize == k)?;
        match GuestRam::open(path) {
            Ok(ram) => Some(ram),
            Err(e) => {
                eprintln!("noc-sim: cluster {k}: no DMA: {e:#}");
                None
            }
        }
    }

    /// Server side of the ivshmem setup for cluster `k` (see [`crate::ivshmem`]).
    fn handshake(&self, k: usize, s: &UnixStream) -> Result<()> {
        let c = &self.clusters[k];
        // A fresh guest gets fresh rings and control block (magic last).
        c.slice
            .init(ClusterId(c.id), self.cfg.clusters, self.cfg.vectors);
        c.slice.control().set_chip_clock(self.clock);
        send_msg(s, ivshmem::PROTOCOL_VERSION, None).context("send version")?;
        send_msg(s, c.id as i64, None).context("send peer id")?;
        send_msg(s, -1, Some(self.memfd.as_raw_fd())).context("send shared memory fd")?;
        for fd in &c.doorbell {
            send_msg(s, ROUTER_PEER_ID as i64, Some(fd.as_raw_fd()))
                .context("send router eventfd")?;
        }
        for fd in &c.interrupts {
            send_msg(s, c.id as i64, Some(fd.as_raw_fd())).context("send own eventfd")?;
        }
        Ok(())
    }

    /// The cluster's socket is readable: QEMU never sends anything, so this
    /// is EOF (or junk, which we discard).
    fn check_conn(&mut self, k: usize) {
        let Some(conn) = self.clusters[k].conn.as_mut() else {
            return;
        };
        let mut buf = [0u8; 64];
        let gone = loop {
            match conn.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        };
        if gone {
            self.cluster_down(k);
        }
    }

    /// Marks cluster `k` down, drops what was queued for it and tells the
    /// others with a `ClusterDown` message.
    fn cluster_down(&mut self, k: usize) {
        let Some(conn) = self.clusters[k].conn.take() else {
            return;
        };
        let _ = conn.shutdown(std::net::Shutdown::Both);
        let held: usize = self.clusters[k].held.iter().map(|h| h.len()).sum();
        let dropped = self.clusters[k].queue.len() as u64 + held as u64;
        self.clusters[k].queue.clear();
        self.clusters[k].held.iter_mut().for_each(|h| h.clear());
        self.clusters[k].stats.dropped_unreachable += dropped;
        self.dma.forget_cluster(k as u16);
        self.rams[k] = None;
        self.publish_membership();
        println!(
            "cluster {k} left ({}/{} live)",
            self.live_mask().count_ones(),
            self.cfg.clusters
        );
        let now = self.now();
        for j in 0..self.clusters.len() {
            if self.clusters[j].conn.is_none() {
                continue;
            }
            let mut hdr = Header::new(
                Kind::ClusterDown,
                ClusterId::ROUTER,
                ClusterId(j as u16),
                PortId(0),
                0,
            );
            hdr.arg = k as u32;
            let Ok(h) = wire::encode_header(&hdr, &[]) else {
                continue;
            };
            self.seq += 1;
            self.clusters[j].queue.push(Pending {
                deliver_at: now,
                seq: self.seq,
                bytes: h.to_vec(),
            });
        }
    }
}
