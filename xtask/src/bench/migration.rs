//! `cargo xtask bench migration`: the `bench_migration` suite (cluster 0 moves the Nanvix
//! reference process and `mgs` 500..1250 to cluster 1; the other clusters idle), its
//! `MIGBENCH` lines turned into JSON, each time printed next to bytes ÷ link bandwidth.
//! With `--trace FILE` the console's trace recorder ([`crate::console::trace`]) watches
//! the run, so the bench's timeline opens in Perfetto like a console session's.

use anyhow::{bail, Context, Result};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::BenchArgs;
use crate::cluster;
use crate::console::trace::{self, Recorder};
use crate::console::view::View;
use crate::image::{self, Kernel};
use crate::qemu;

/// The console lines the bench shows.
fn shown(line: &str) -> bool {
    line.starts_with("MIGBENCH") || line.starts_with("test ")
}

pub fn bench_migration(args: &BenchArgs) -> Result<i32> {
    if args.clusters < 2 {
        bail!("the migration benchmark needs at least 2 clusters");
    }
    qemu::ensure_installed()?;
    let image = image::build_image(Kernel::Tests, false)?;
    let cmdline = |_k: usize| "suite=bench_migration".to_string();
    let model = args.model();
    // Every console line goes through the sink, into a view the trace reads from.
    let (sink, incoming) = channel::<(usize, String)>();
    let view = Arc::new(View::new(args.clusters, true));
    let feeder = {
        let view = view.clone();
        std::thread::spawn(move || {
            for (k, line) in incoming {
                if shown(&line) {
                    println!("[c{k}] {line}");
                }
                view.cluster_line(k, &line);
            }
        })
    };
    let spec = cluster::Spec {
        name: "bench-migration",
        clusters: args.clusters,
        image: &image,
        accel: args.accel,
        cmdline: &cmdline,
        guest_faults: false,
        model: model.clone(),
        interactive: false,
        show: shown,
        sink: Some(sink),
        gdb: None,
    };
    eprintln!("xtask: migrating the reference process and mgs 500..1250 (a few minutes under TCG)");
    let machine = cluster::start(&spec)?;
    drop(spec);
    let recorder = match &args.trace {
        Some(file) => Some(
            Recorder::start(
                file.clone(),
                view.mark(),
                &machine.control,
                Duration::from_millis(20),
            )
            .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let logs = machine.logs.clone();
    let outcome = machine.wait(Some(Instant::now() + Duration::from_secs(args.timeout)))?;
    // Every relay has ended, so the feeder has every line.
    let _ = feeder.join();
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
        "{:<22} {:>12} {:>6} {:>16} {:>19} {:>20}",
        "app", "bytes", "runs", "median total us", "median downtime us", "bytes/link (us)"
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
        let bytes = mine[0]["size_bytes"].as_u64().unwrap_or(0);
        let link_us = link_time_us(bytes, model.link_mbps);
        println!(
            "{app:<22} {bytes:>12} {:>6} {:>16} {:>19} {:>20}",
            mine.len(),
            median("total_us"),
            median("downtime_us"),
            link_us.map_or("-".to_string(), |us| format!("{us:.0}")),
        );
        summary.push(serde_json::json!({
            "app": app,
            "size_bytes": mine[0]["size_bytes"],
            "median_total_us": median("total_us"),
            "median_downtime_us": median("downtime_us"),
            "link_limit_us": link_us,
        }));
    }
    let report = serde_json::json!({
        "accel": args.accel.name(),
        "clusters": args.clusters,
        "model": super::model_json(&model),
        "runs": runs,
        "summary": summary,
        "reference": {
            "nanvix_352_8KB_ms": 226,
            "gobelins_full_copy_ms": { "mgs-500": 206, "mgs-750": 240, "mgs-1000": 283, "mgs-1250": 320 },
        },
    });
    super::write_json(args.json.as_deref(), &report)?;
    if let (Some(recorder), Some(file)) = (recorder, &args.trace) {
        // Each run moves the process to cluster 1 and back: two records.
        let said = recorder
            .finish(&view, 2 * runs.len())
            .map_err(anyhow::Error::msg)?;
        eprintln!("xtask: {said}");
        let spans = check_trace(file)?;
        eprintln!(
            "xtask: the trace is valid Chrome trace JSON with {spans} migration spans ({} runs)",
            runs.len()
        );
    }
    Ok(0)
}

/// Reads a written trace back and checks its shape; returns its migration spans.
fn check_trace(file: &std::path::Path) -> Result<usize> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    trace::check(&json).map_err(anyhow::Error::msg)?;
    Ok(trace::migration_spans(&json))
}

/// The modelled lower bound of moving `bytes` over one link: bytes / bandwidth, in µs
/// (`None` for an infinite link).
fn link_time_us(bytes: u64, link_mbps: u64) -> Option<f64> {
    (link_mbps != 0).then(|| bytes as f64 / link_mbps as f64)
}
