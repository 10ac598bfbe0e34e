//! `cargo xtask bench TARGET`: speed and cost figures, one module per target.
//!
//! Every multi-cluster bench boots `--clusters` clusters (default 16, the chip size), the ones
//! not taking part idling, records the cluster count and the link model in its JSON, and prints
//! each figure next to the limit the model (or the brief's goal) sets.

mod idle;
mod kernel;
mod migration;
mod noc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

use crate::cluster::NocModel;
use crate::qemu::Accel;

/// What to measure.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Target {
    /// Mailbox round trips and portal throughput over the emulated NoC.
    Noc,
    /// Kernel micro-benchmarks (syscall, threads, switch, page fault, spawn) and UArea sizes.
    Kernel,
    /// Stop-and-copy migration of the Nanvix reference process and of mgs 500..1250.
    Migration,
    /// Host CPU time of idle clusters (QEMU utime+stime from /proc over `--seconds`).
    Idle,
}

/// Options of `cargo xtask bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub target: Target,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Clusters to boot (the corner is cluster N-1); those not measured stay idle.
    #[arg(long, default_value_t = 16)]
    pub clusters: usize,
    /// Modelled per-hop latency (noc-sim --hop-latency-ns).
    #[arg(long, default_value_t = 50)]
    pub hop_latency_ns: u64,
    /// Modelled link bandwidth in MB/s (noc-sim --link-mbps; 0 = infinite).
    #[arg(long, default_value_t = 1600)]
    pub link_mbps: u64,
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Seconds the whole run may take.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// `bench idle`: seconds of idle time measured once every cluster booted.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// `bench migration`: also write the run's timeline here as Chrome trace JSON (each
    /// migration's phases per cluster, page transfers, NoC messages per link), as the
    /// console's `trace start|stop` does; the same timeline as an SVG next to it.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
}

impl BenchArgs {
    fn model(&self) -> NocModel {
        NocModel {
            hop_latency_ns: self.hop_latency_ns,
            link_mbps: self.link_mbps,
        }
    }
}

pub fn bench(args: &BenchArgs) -> Result<i32> {
    if args.trace.is_some() && !matches!(args.target, Target::Migration) {
        anyhow::bail!("--trace is for `bench migration` only");
    }
    match args.target {
        Target::Kernel => kernel::bench_kernel(args.accel, args.json.as_deref()).map(|_| 0),
        Target::Migration => migration::bench_migration(args),
        Target::Noc => noc::bench_noc(args),
        Target::Idle => idle::bench_idle(args),
    }
}

/// The link model as JSON, recorded by every multi-cluster bench.
fn model_json(model: &NocModel) -> serde_json::Value {
    serde_json::json!({ "hop_latency_ns": model.hop_latency_ns, "link_mbps": model.link_mbps })
}

/// Writes `report` (pretty) to `path` if one was given.
fn write_json(path: Option<&Path>, report: &serde_json::Value) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, format!("{}\n", serde_json::to_string_pretty(report)?))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}
