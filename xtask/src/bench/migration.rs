//! `cargo xtask bench migration`: the `bench_migration` suite (cluster 0 moves the Nanvix
//! reference process, `mgs` 500..1250 and a `memtouch` grid to cluster 1 by every strategy
//! the kernel has, then runs `mgs 1000` with and without a migration; the other clusters
//! idle), its lines turned into JSON and tables by [`super::migration_report`], the bytes of
//! each move on the source → destination link read from noc-sim's per-link counters around
//! it, plots by [`super::migration_plots`], then QEMU's own whole-VM migration of the same
//! apps ([`super::qemu_vm`]) next to Tessera's best.
//! With `--trace FILE` the console's trace recorder ([`crate::console::trace`]) watches
//! the run, so the bench's timeline opens in Perfetto like a console session's.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::mpsc::channel;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::migration_report::{self as report, Collected};
use super::BenchArgs;
use crate::cluster;
use crate::console::noc_map;
use crate::console::trace::{self, Recorder};
use crate::console::view::View;
use crate::image::{self, Kernel};
use crate::qemu;

/// The console lines the bench shows.
fn shown(line: &str) -> bool {
    line.starts_with("MIGBENCH") || line.starts_with("MIGDEGRADE") || line.starts_with("test ")
}

/// QEMU's whole-VM migration runs these apps (label as Tessera's runs name them, and the
/// production kernel's `app=` for it).
const QEMU_VM_APPS: [(&str, &str); 2] = [
    ("mgs-1000", "app=mgs:1000:0"),
    ("nanvix-ref-352.8KB", "app=nanvixref"),
];

/// Bytes noc-sim counted so far on the first hop of the route 0 → 1 (every measured move's
/// pages and messages cross it; the moves back use the opposite link).
fn hop_bytes(control: &OnceLock<PathBuf>, clusters: usize) -> Option<u64> {
    let stats = noc_map::stats(control.get()?).ok()?;
    let hop = noc_map::xy_path(clusters, 0, 1).get(1)?.clone();
    noc_map::link_counters(&stats)
        .get(&hop)
        .map(|(_, bytes)| *bytes)
}

pub fn bench_migration(args: &BenchArgs) -> Result<i32> {
    if args.clusters < 2 {
        bail!("the migration benchmark needs at least 2 clusters");
    }
    qemu::ensure_installed()?;
    let image = image::build_image(Kernel::Tests, false)?;
    let cmdline = |_k: usize| "suite=bench_migration".to_string();
    let model = args.model();
    // Every console line goes through the sink, into a view the trace reads from; cluster
    // 0's lines also into the collector, which reads the link counters around each move.
    let (sink, incoming) = channel::<(usize, String)>();
    let view = Arc::new(View::new(args.clusters, true));
    let control = Arc::new(OnceLock::new());
    let feeder = {
        let (view, control, clusters) = (view.clone(), control.clone(), args.clusters);
        std::thread::spawn(move || {
            let mut collected = Collected::default();
            for (k, line) in incoming {
                if shown(&line) {
                    println!("[c{k}] {line}");
                }
                if k == 0 {
                    collected.line(&line, || hop_bytes(&control, clusters));
                }
                view.cluster_line(k, &line);
            }
            collected
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
    eprintln!(
        "xtask: every strategy on the reference process, mgs 500..1250 and the memtouch grid, \
         then mgs 1000's degradation (about 10 minutes under TCG)"
    );
    let machine = cluster::start(&spec)?;
    drop(spec);
    let _ = control.set(machine.control.clone());
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
    let collected = feeder
        .join()
        .map_err(|_| anyhow::anyhow!("the console feeder panicked"))?;
    let mut runs = collected.runs;
    if runs.is_empty() || !outcome.exits.iter().all(|e| *e == Some(qemu::EXIT_SUCCESS)) {
        bail!(
            "the benchmark did not complete (exits {:?}); see {}",
            outcome.exits,
            logs[0].display()
        );
    }
    let degradation = report::degradation(&collected.degradation, &mut runs);
    let summary = report::summary(&runs, model.link_mbps);
    let strategies = report::strategies(&runs);
    println!("\n{}", report::reference_table(&summary, &strategies));
    println!("{}", report::grid_table(&summary, &strategies));
    println!("{}", report::degradation_table(&degradation));
    let missing = report::not_measured(&runs);
    if !missing.is_empty() {
        println!(
            "not measured (not in this kernel yet): {}\n",
            missing.join(", ")
        );
    }
    let mut qemu_vm = Vec::new();
    if !args.no_qemu_vm {
        for (label, app) in QEMU_VM_APPS {
            let vm = super::qemu_vm::migrate_vm(label, app, args.accel, Duration::from_secs(2))
                .with_context(|| format!("QEMU's whole-VM migration running {label}"))?;
            let mut entry = report::qemu_vm_entry(label, vm.total_us, vm.downtime_us, &summary);
            entry["setup_us"] = vm.setup_us.into();
            entry["ram_transferred_bytes"] = vm.ram_transferred_bytes.into();
            qemu_vm.push(entry);
        }
        println!("{}", report::qemu_table(&qemu_vm));
    }
    let report = serde_json::json!({
        "accel": args.accel.name(),
        "clusters": args.clusters,
        "model": super::model_json(&model),
        "repetitions": { "nanvix-ref": 3, "mgs": 1, "memtouch": 1, "degradation": 1 },
        "strategies": strategies,
        "not_measured": missing,
        "runs": runs,
        "summary": summary,
        "degradation": degradation,
        "qemu_vm": qemu_vm,
        "reference": report::references(),
    });
    super::write_json(args.json.as_deref(), &report)?;
    if let Some(dir) = &args.plots {
        let files = super::migration_plots::write_all(dir, &summary, &degradation)?;
        for file in files {
            eprintln!("xtask: wrote {}", file.display());
        }
    }
    if let (Some(recorder), Some(file)) = (recorder, &args.trace) {
        // Each measured move goes to cluster 1 and back: two records (the degradation
        // moves: one).
        let one_way = runs
            .iter()
            .filter(|r| r["app"] == "mgs-1000-degradation")
            .count();
        let said = recorder
            .finish(&view, 2 * runs.len() - one_way)
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
