//! `noc-sim`: run the Tessera NoC router for N cluster QEMUs.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use noc_sim::link_model::ModelParams;
use noc_sim::router::{install_signal_handlers, Config, Router};
use noc_sim::topology::Mesh;

/// Tessera NoC simulator: the ivshmem server and router between the cluster
/// QEMUs. Cluster k connects its `ivshmem-doorbell` chardev to DIR/c{k}.sock
/// and gets ivshmem peer id k; the router is peer 32.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Number of clusters (QEMU instances), 1..=32.
    #[arg(long, default_value_t = 4)]
    clusters: u16,
    /// Directory for the per-cluster sockets c0.sock … c{N-1}.sock (created).
    #[arg(long)]
    dir: PathBuf,
    /// Shared memory size: a power of two from 8M to 1G (suffix K, M or G).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    shm_size: usize,
    /// Doorbell vectors per peer; must equal QEMU's `vectors=` property.
    #[arg(long, default_value_t = 1)]
    vectors: u32,
    /// Chip topology `mesh:WxH`; default: H = floor(sqrt(N)), W = ceil(N/H).
    #[arg(long)]
    topology: Option<String>,
    /// Latency of one router-to-router hop, in ns (MPPA-like: 50).
    #[arg(long, default_value_t = 50)]
    hop_latency_ns: u64,
    /// Bandwidth of one directed link, in MB/s (10^6 bytes/s); 0 = infinite.
    /// MPPA-like: 4 bytes/cycle at 400 MHz = 1600.
    #[arg(long, default_value_t = 1600)]
    link_mbps: u64,
    /// Disable the timing model: deliver as soon as possible.
    #[arg(long)]
    no_delay: bool,
    /// Control socket path (commands: stats, corrupt N [CLUSTER], kill K, quit).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Messages queued per destination before the router stops draining
    /// senders (backpressure into their TX rings).
    #[arg(long, default_value_t = 256)]
    queue_limit: usize,
    /// Let guests request fault injection (`corrupt N [CLUSTER]` in a Control message to
    /// the router), for the in-kernel tests.
    #[arg(long)]
    guest_faults: bool,
    /// Cluster K's RAM file, `K=PATH` (repeatable): QEMU's `memory-backend-file` with
    /// `share=on`, mapped by the DMA engine when cluster K joins (file offset = guest-physical
    /// address).
    #[arg(long = "ram", value_parser = parse_ram)]
    rams: Vec<(u16, PathBuf)>,
}

fn parse_ram(s: &str) -> Result<(u16, PathBuf), String> {
    let (k, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected K=PATH"))?;
    let k = k.parse().map_err(|e| format!("{k:?}: {e}"))?;
    Ok((k, PathBuf::from(path)))
}

fn parse_size(s: &str) -> Result<usize, String> {
    let (num, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: usize = num.parse().map_err(|e| format!("{s:?}: {e}"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .ok_or_else(|| format!("{s:?}: too large"))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mesh = match &args.topology {
        Some(t) => Mesh::parse(t).map_err(anyhow::Error::msg)?,
        None => Mesh::for_clusters(args.clusters),
    };
    if args.queue_limit == 0 {
        bail!("--queue-limit must be at least 1");
    }
    let params = if args.no_delay {
        ModelParams::IDEAL
    } else {
        ModelParams {
            hop_latency_ns: args.hop_latency_ns,
            link_bandwidth: args.link_mbps * 1_000_000,
        }
    };
    let cfg = Config {
        clusters: args.clusters,
        dir: args.dir,
        shm_size: args.shm_size,
        vectors: args.vectors,
        mesh,
        params,
        control: args.control,
        queue_limit: args.queue_limit,
        guest_faults: args.guest_faults,
        rams: args.rams,
    };
    install_signal_handlers();
    let mut router = Router::new(cfg).context("start noc-sim")?;
    router.run()
}
