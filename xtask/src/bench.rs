//! `cargo xtask bench noc`: boot N clusters with the test kernel's `noc_bench` suite and turn
//! cluster 0's `bench ...` lines into a JSON report.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::{self, NocModel};
use crate::image::{self, Kernel};
use crate::qemu::{self, Accel};

/// What to measure.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Target {
    /// Mailbox round trips and portal throughput over the emulated NoC.
    Noc,
    /// Kernel micro-benchmarks (syscall, threads, switch, page fault, spawn) and UArea sizes.
    Kernel,
    /// Stop-and-copy migration of the Nanvix reference process and of mgs 500..1250.
    Migration,
}

/// Options of `cargo xtask bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub target: Target,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Clusters to boot (the corner is cluster N-1).
    #[arg(long, default_value_t = 4)]
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
}

pub fn bench(args: &BenchArgs) -> Result<i32> {
    match args.target {
        Target::Kernel => {
            return crate::bench_kernel::bench_kernel(args.accel, args.json.as_deref()).map(|_| 0)
        }
        Target::Migration => return bench_migration(args),
        Target::Noc => {}
    }
    if args.clusters < 2 {
        bail!("the NoC benchmark needs at least 2 clusters");
    }
    qemu::ensure_installed()?;
    let image = image::build_image(Kernel::Tests, false)?;
    let clusters = args.clusters;
    let cmdline = |_k: usize| format!("suite=noc_bench clusters={clusters}");
    let model = NocModel {
        hop_latency_ns: args.hop_latency_ns,
        link_mbps: args.link_mbps,
    };
    let spec = cluster::Spec {
        name: "bench-noc",
        clusters,
        image: &image,
        accel: args.accel,
        cmdline: &cmdline,
        guest_faults: false,
        model: model.clone(),
        interactive: false,
        show: |line| line.starts_with("bench ") || line.starts_with("test "),
    };
    let machine = cluster::start(&spec)?;
    let logs = machine.logs.clone();
    let outcome = machine.wait(Some(Instant::now() + Duration::from_secs(args.timeout)))?;
    let console = outcome.consoles.first().context("no cluster 0 console")?;
    let mut rtt = Vec::new();
    let mut portal = Vec::new();
    for line in console.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["bench", "mailbox_rtt", label, peer, median, p99] => rtt.push((
                label.to_string(),
                peer.to_string(),
                median.to_string(),
                p99.to_string(),
            )),
            ["bench", "portal_mb_s", size, mb_s] => {
                portal.push((size.to_string(), mb_s.to_string()))
            }
            _ => {}
        }
    }
    if rtt.len() != 2
        || portal.len() != 3
        || !outcome.exits.iter().all(|e| *e == Some(qemu::EXIT_SUCCESS))
    {
        bail!(
            "the benchmark did not complete (exits {:?}); see {}",
            outcome.exits,
            logs[0].display()
        );
    }
    let pair = |(label, peer, median, p99): &(String, String, String, String)| {
        format!("\"{label}\":{{\"peer\":{peer},\"median\":{median},\"p99\":{p99}}}")
    };
    let json = format!(
        "{{\"accel\":\"{}\",\"clusters\":{clusters},\"model\":{{\"hop_latency_ns\":{},\"link_mbps\":{}}},\
\"mailbox_rtt_us\":{{\"median\":{},\"p99\":{},{},{}}},\"portal_mb_s\":{{{}}},\"all_joined_s\":{:.3},\"all_booted_s\":{:.3}}}",
        args.accel.name(),
        model.hop_latency_ns,
        model.link_mbps,
        rtt[0].2,
        rtt[0].3,
        pair(&rtt[0]),
        pair(&rtt[1]),
        portal
            .iter()
            .map(|(size, mb_s)| format!("\"{size}\":{mb_s}"))
            .collect::<Vec<_>>()
            .join(","),
        outcome.all_joined_s.unwrap_or(0.0),
        outcome.all_booted_s.unwrap_or(0.0),
    );
    println!("{json}");
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(0)
}

/// `bench migration`: two clusters, the `bench_migration` suite, `MIGBENCH` lines → JSON.
fn bench_migration(args: &BenchArgs) -> Result<i32> {
    qemu::ensure_installed()?;
    let image = image::build_image(Kernel::Tests, false)?;
    let cmdline = |_k: usize| "suite=bench_migration".to_string();
    let model = NocModel {
        hop_latency_ns: args.hop_latency_ns,
        link_mbps: args.link_mbps,
    };
    let spec = cluster::Spec {
        name: "bench-migration",
        clusters: 2,
        image: &image,
        accel: args.accel,
        cmdline: &cmdline,
        guest_faults: false,
        model: model.clone(),
        interactive: false,
        show: |line| line.starts_with("MIGBENCH") || line.starts_with("test "),
    };
    eprintln!("xtask: migrating the reference process and mgs 500..1250 (a few minutes under TCG)");
    let machine = cluster::start(&spec)?;
    let logs = machine.logs.clone();
    let outcome = machine.wait(Some(Instant::now() + Duration::from_secs(args.timeout)))?;
    let console = outcome.consoles.first().context("no cluster 0 console")?;
    let mut runs = Vec::new();
    for line in console.lines() {
        let line = &line[line.find("MIGBENCH").unwrap_or(line.len())..];
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["MIGBENCH", strategy, app, bytes, prep, down, resume, total, pages] =
            words.as_slice()
        {
            runs.push(serde_json::json!({
                "strategy": strategy,
                "app": app,
                "size_bytes": bytes.parse::<u64>()?,
                "preparation_us": prep.parse::<u64>()?,
                "downtime_us": down.parse::<u64>()?,
                "resume_us": resume.parse::<u64>()?,
                "total_us": total.parse::<u64>()?,
                "pages_transferred": pages.parse::<u64>()?,
            }));
        }
    }
    if runs.is_empty() || !outcome.exits.iter().all(|e| *e == Some(qemu::EXIT_SUCCESS)) {
        bail!(
            "the benchmark did not complete (exits {:?}); see {}",
            outcome.exits,
            logs[0].display()
        );
    }
    // Medians per app, for the summary table.
    let mut apps: Vec<String> = Vec::new();
    for run in &runs {
        let app = run["app"].as_str().unwrap_or("?").to_string();
        if !apps.contains(&app) {
            apps.push(app);
        }
    }
    println!(
        "{:<22} {:>12} {:>6} {:>14} {:>14}",
        "app", "bytes", "runs", "median total us", "median downtime us"
    );
    let mut summary = Vec::new();
    for app in &apps {
        let mine: Vec<&serde_json::Value> =
            runs.iter().filter(|r| r["app"] == app.as_str()).collect();
        let median = |key: &str| {
            let mut values: Vec<u64> = mine.iter().filter_map(|r| r[key].as_u64()).collect();
            values.sort_unstable();
            values.get(values.len() / 2).copied().unwrap_or(0)
        };
        println!(
            "{app:<22} {:>12} {:>6} {:>14} {:>14}",
            mine[0]["size_bytes"],
            mine.len(),
            median("total_us"),
            median("downtime_us")
        );
        summary.push(serde_json::json!({
            "app": app,
            "size_bytes": mine[0]["size_bytes"],
            "median_total_us": median("total_us"),
            "median_downtime_us": median("downtime_us"),
        }));
    }
    let report = serde_json::json!({
        "accel": args.accel.name(),
        "clusters": 2,
        "model": { "hop_latency_ns": model.hop_latency_ns, "link_mbps": model.link_mbps },
        "runs": runs,
        "summary": summary,
        "reference": {
            "nanvix_352_8KB_ms": 226,
            "gobelins_full_copy_ms": { "mgs-500": 206, "mgs-750": 240, "mgs-1000": 283, "mgs-1250": 320 },
        },
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(0)
}
