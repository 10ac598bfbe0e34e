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
//! consuming); a full destination queue (`queue_limit` messages) leaves the
//! message in the sender's TX ring. Nothing is ever dropped for lack of space.
//! A 50 ms tick re-polls everything, so a guest that polls without ringing
//! still makes progress.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use noc_proto::clock::ChipClock;
use noc_proto::layout::{Layout, RouterCounter};
use noc_proto::ring::RingError;
use noc_proto::wire::{self, ClusterId, Header, Kind, PortId, HEADER_LEN};
use noc_proto::{Slice, MAX_CLUSTERS, ROUTER_PEER_ID};

use crate::control::{Command, ControlServer};
use crate::ivshmem::{self, send_msg};
use crate::link_model::{LinkModel, ModelParams};
use crate::routing::LinkName;
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
}

/// Per-cluster counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClusterStats {
    pub sent: u64,
    pub sent_bytes: u64,
    pub received: u64,
    pub received_bytes: u64,
    pub dropped_corrupt: u64,
    pub dropped_unreachable: u64,
    pub rx_full_stalls: u64,
    pub queue_full_stalls: u64,
    pub max_queued: u64,
}

/// A message waiting for its delivery time (ordered by time, then arrival).
struct Pending {
    deliver_at: u64,
    seq: u64,
    bytes: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.deliver_at, self.seq) == (o.deliver_at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.deliver_at, o.seq).cmp(&(self.deliver_at, self.seq))
    }
}

struct Cluster {
    id: u16,
    listener: UnixListener,
    conn: Option<UnixStream>,
    /// The cluster's own vectors (its interrupts); we write vector 0.
    interrupts: Vec<OwnedFd>,
    /// What this cluster knows as peer 32's eventfds; we read them.
    doorbell: Vec<OwnedFd>,
    slice: Slice,
    joined_ever: bool,
    queue: BinaryHeap<Pending>,
    /// RX ring was full; wait for a doorbell (or the tick) before retrying.
    rx_stalled: bool,
    stats: ClusterStats,
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
    corrupt_remaining: u64,
    corrupt_target: Option<u16>,
    corrupted: u64,
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
        std::fs::create_dir_all(&cfg.dir)
            .with_context(|| format!("create socket dir {}", cfg.dir.display()))?;
        let clock = crate::timesync::measure(crate::timesync::MEASURE);
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
                stats: ClusterStats::default(),
            });
        }
        let control = cfg
            .control
            .as_deref()
            .map(ControlServer::bind)
            .transpose()?;
        let model = LinkModel::new(cfg.mesh, cfg.params);
        Ok(Router {
            cfg,
            start: Instant::now(),
            memfd,
            _map: map,
            clusters,
            model,
            control,
            corrupt_remaining: 0,
            corrupt_target: None,
            corrupted: 0,
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
        let dropped = self.clusters[k].queue.len() as u64;
        self.clusters[k].queue.clear();
        self.clusters[k].stats.dropped_unreachable += dropped;
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

    /// Moves messages until nothing more can move.
    pub fn pump(&mut self) {
        loop {
            let mut progress = false;
            // Time-sync replies first: their round trip bounds every guest's clock error.
            for c in self.clusters.iter().filter(|c| c.conn.is_some()) {
                crate::timesync::serve(&c.slice.control());
            }
            let now = self.now();
            for d in 0..self.clusters.len() {
                progress |= self.deliver_due(d, now);
            }
            for s in 0..self.clusters.len() {
                progress |= self.drain_tx(s, now);
            }
            if !progress {
                break;
            }
        }
    }

    fn deliver_due(&mut self, d: usize, now: u64) -> bool {
        let c = &mut self.clusters[d];
        if c.conn.is_none() || c.rx_stalled {
            return false;
        }
        let rx = c.slice.rx();
        let mut delivered = 0;
        while let Some(top) = c.queue.peek() {
            if top.deliver_at > now {
                break;
            }
            match rx.try_push_record(&top.bytes) {
                Ok(()) => {
                    let len = top.bytes.len() as u64;
                    c.queue.pop();
                    c.stats.received += 1;
                    c.stats.received_bytes += len;
                    c.slice
                        .control()
                        .add_router_counter(RouterCounter::RxDelivered, 1);
                    c.slice
                        .control()
                        .add_router_counter(RouterCounter::RxBytes, len);
                    delivered += 1;
                }
                Err(RingError::Full) => {
                    c.stats.rx_full_stalls += 1;
                    c.rx_stalled = true;
                    break;
                }
                Err(e) => {
                    // The guest broke its RX indices: drop this message, count it.
                    eprintln!("noc-sim: cluster {d}: RX ring: {e}; dropping a message");
                    c.queue.pop();
                    c.stats.dropped_unreachable += 1;
                }
            }
        }
        if delivered > 0 {
            ivshmem::notify(&c.interrupts[0]);
        }
        delivered > 0
    }

    fn drain_tx(&mut self, s: usize, now: u64) -> bool {
        if self.clusters[s].conn.is_none() {
            return false;
        }
        let tx = self.clusters[s].slice.tx();
        let count = self.cfg.clusters;
        let mut progress = false;
        loop {
            let rec = match tx.peek() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("noc-sim: cluster {s}: TX ring {e}; discarding its contents");
                    tx.reset_consumer();
                    self.clusters[s].stats.dropped_corrupt += 1;
                    self.clusters[s]
                        .slice
                        .control()
                        .add_router_counter(RouterCounter::TxDroppedCorrupt, 1);
                    progress = true;
                    break;
                }
            };
            let mut bytes = vec![0u8; rec.len()];
            if rec.copy_to(&mut bytes).is_none() {
                break;
            }
            // Validate the copy, never the shared memory (it may change under us).
            let mut guest_command = None;
            let dst = match wire::decode(&bytes, count) {
                Ok((h, payload)) if h.src.0 as usize == s => {
                    if h.dst == ClusterId::ROUTER && h.kind == noc_proto::Kind::Control {
                        guest_command = Some(String::from_utf8_lossy(payload).into_owned());
                    }
                    h.dst
                }
                Ok((h, _)) => {
                    self.drop_corrupt(s, &format!("claims source {}", h.src.0));
                    tx.pop(rec);
                    progress = true;
                    continue;
                }
                Err(e) => {
                    self.drop_corrupt(s, &e.to_string());
                    tx.pop(rec);
                    progress = true;
                    continue;
                }
            };
            if dst == ClusterId::ROUTER {
                // The only router service: guest fault injection, when enabled.
                self.to_router += 1;
                tx.pop(rec);
                if let Some(line) = guest_command.filter(|_| self.cfg.guest_faults) {
                    let reply = match Command::parse(&line) {
                        Ok(cmd @ Command::Corrupt { .. }) => self.command(cmd),
                        _ => format!("error: guests may only send `corrupt`, not {line:?}"),
                    };
                    eprintln!("noc-sim: cluster {s} asked `{line}`: {reply}");
                }
                progress = true;
                continue;
            }
            let d = dst.index();
            if self.clusters[d].conn.is_none() {
                self.clusters[s].stats.dropped_unreachable += 1;
                self.clusters[s]
                    .slice
                    .control()
                    .add_router_counter(RouterCounter::TxDroppedUnreachable, 1);
                tx.pop(rec);
                progress = true;
                continue;
            }
            if self.clusters[d].queue.len() >= self.cfg.queue_limit {
                // Backpressure: leave it in the sender's TX ring.
                self.clusters[s].stats.queue_full_stalls += 1;
                break;
            }
            tx.pop(rec);
            progress = true;
            let len = bytes.len() as u64;
            let deliver_at = self.model.schedule(s as u16, d as u16, len, now);
            if self.corrupt_remaining > 0 && self.corrupt_target.is_none_or(|t| t as usize == d) {
                self.corrupt_remaining -= 1;
                self.corrupted += 1;
                // Damage after the checksum was computed: the receiver must catch it.
                let at = if bytes.len() > HEADER_LEN {
                    bytes.len() - 1
                } else {
                    20
                };
                bytes[at] ^= 0x01;
            }
            let cs = &mut self.clusters[s];
            cs.stats.sent += 1;
            cs.stats.sent_bytes += len;
            cs.slice
                .control()
                .add_router_counter(RouterCounter::TxAccepted, 1);
            self.seq += 1;
            let cd = &mut self.clusters[d];
            cd.queue.push(Pending {
                deliver_at,
                seq: self.seq,
                bytes,
            });
            cd.stats.max_queued = cd.stats.max_queued.max(cd.queue.len() as u64);
        }
        progress
    }

    fn drop_corrupt(&mut self, s: usize, why: &str) {
        let c = &mut self.clusters[s];
        c.stats.dropped_corrupt += 1;
        c.slice
            .control()
            .add_router_counter(RouterCounter::TxDroppedCorrupt, 1);
        if c.stats.dropped_corrupt <= 10 {
            eprintln!("noc-sim: cluster {s}: dropped invalid message: {why}");
        }
    }

    fn serve_control(&mut self, i: usize) {
        let Some(ctl) = self.control.as_mut() else {
            return;
        };
        let (lines, closed) = ctl.read_lines(i);
        for line in lines.iter().filter(|l| !l.is_empty()) {
            let reply = match Command::parse(line) {
                Err(e) => format!("error: {e}"),
                Ok(cmd) => self.command(cmd),
            };
            if let Some(ctl) = self.control.as_mut() {
                ctl.reply(i, &reply);
            }
        }
        if closed {
            if let Some(ctl) = self.control.as_mut() {
                ctl.conns.remove(i);
            }
        }
    }

    /// Executes a control command; returns the reply line.
    pub fn command(&mut self, cmd: Command) -> String {
        match cmd {
            Command::Stats => self.stats_json(),
            Command::Corrupt { count, cluster } => {
                if cluster.is_some_and(|c| c >= self.cfg.clusters) {
                    return "error: no such cluster".into();
                }
                self.corrupt_remaining = count;
                self.corrupt_target = cluster;
                format!("ok corrupting the next {count} forwarded messages")
            }
            Command::Kill(k) => {
                if k >= self.cfg.clusters || self.clusters[k as usize].conn.is_none() {
                    return format!("error: cluster {k} is not connected");
                }
                self.cluster_down(k as usize);
                format!("ok cluster {k} disconnected")
            }
            Command::Quit => {
                self.quit = true;
                "ok quitting".into()
            }
        }
    }

    /// The `stats` reply: one JSON object.
    pub fn stats_json(&self) -> String {
        let mut s = String::new();
        let p = self.model.params();
        let _ = write!(
            s,
            "{{\"elapsed_ms\":{},\"topology\":\"{}\",\"hop_latency_ns\":{},\"link_bandwidth\":{},\"corrupted\":{},\"to_router\":{},\"clusters\":[",
            self.start.elapsed().as_millis(),
            self.cfg.mesh,
            p.hop_latency_ns,
            p.link_bandwidth,
            self.corrupted,
            self.to_router
        );
        for (i, c) in self.clusters.iter().enumerate() {
            let st = &c.stats;
            let ctl = c.slice.control();
            let _ = write!(
                s,
                "{}{{\"id\":{},\"live\":{},\"sent\":{},\"sent_bytes\":{},\"received\":{},\"received_bytes\":{},\"dropped_corrupt\":{},\"dropped_unreachable\":{},\"queued\":{},\"max_queued\":{},\"rx_full_stalls\":{},\"queue_full_stalls\":{},\"guest_rx_ok\":{},\"guest_rx_corrupt\":{}}}",
                if i > 0 { "," } else { "" },
                c.id,
                c.conn.is_some(),
                st.sent,
                st.sent_bytes,
                st.received,
                st.received_bytes,
                st.dropped_corrupt,
                st.dropped_unreachable,
                c.queue.len(),
                st.max_queued,
                st.rx_full_stalls,
                st.queue_full_stalls,
                ctl.guest_counter(noc_proto::layout::GuestCounter::RxOk),
                ctl.guest_counter(noc_proto::layout::GuestCounter::RxDroppedCorrupt),
            );
        }
        s.push_str("],\"links\":[");
        for (i, (id, l)) in self.model.links().enumerate() {
            let _ = write!(
                s,
                "{}{{\"link\":\"{}\",\"messages\":{},\"bytes\":{},\"busy_ns\":{}}}",
                if i > 0 { "," } else { "" },
                LinkName(self.model.mesh(), id),
                l.messages,
                l.bytes,
                l.busy_ns
            );
        }
        s.push_str("]}");
        s
    }

    fn print_summary(&self) {
        println!(
            "noc-sim summary after {} ms:",
            self.start.elapsed().as_millis()
        );
        println!("  cluster      sent   sent_B  received  recv_B  corrupt  unreach  stalls");
        for c in &self.clusters {
            let st = &c.stats;
            println!(
                "  {:>7} {:>9} {:>8} {:>9} {:>7} {:>8} {:>8} {:>7}",
                c.id,
                st.sent,
                st.sent_bytes,
                st.received,
                st.received_bytes,
                st.dropped_corrupt,
                st.dropped_unreachable,
                st.rx_full_stalls + st.queue_full_stalls
            );
        }
        let mut links: Vec<_> = self.model.links().collect();
        links.sort_by_key(|(_, l)| std::cmp::Reverse(l.busy_ns));
        for (id, l) in links.iter().take(8) {
            println!(
                "  link {:<14} {:>8} msgs {:>10} B busy {:>10} ns",
                LinkName(self.model.mesh(), *id).to_string(),
                l.messages,
                l.bytes,
                l.busy_ns
            );
        }
        println!("summary: {}", self.stats_json());
    }
}
