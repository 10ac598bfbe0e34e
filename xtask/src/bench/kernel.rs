//! `cargo xtask bench kernel`: kernel micro-benchmarks measured inside the guest.
//!
//! Boots the test kernel with the `bench_kernel` suite, which runs the `kbench` user program
//! (null syscall, thread create+join, context switch, 4 KiB page fault, spawn; each timed one
//! operation at a time) and reports the UArea size of every example app. Speed goals live
//! here, never in `cargo xtask test`.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

use crate::image::{self, Kernel};
use crate::qemu::{self, Accel};

pub fn bench_kernel(accel: Accel, json_path: Option<&Path>) -> Result<()> {
    qemu::ensure_installed()?;
    let image = image::build_image(Kernel::Tests, false)?;
    let log_path = image::output_dir()?.join("logs").join("bench-kernel.log");
    eprintln!("xtask: running kernel benchmarks (a minute or two under TCG)");
    let boot = crate::test::boot_suite(&image, "bench_kernel", 900, accel, &log_path)?;
    if boot.exit != Some(qemu::EXIT_SUCCESS) {
        bail!(
            "benchmark boot failed ({}); log: {}",
            boot.describe_exit(),
            log_path.display()
        );
    }
    let mut benchmarks = Map::new();
    let mut uarea = Map::new();
    for line in boot.log.lines() {
        let line = line.trim_start_matches(|c| c != 'K' && c != 'U');
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["KBENCH", name, median, p99, samples] => {
                benchmarks.insert(
                    name.to_string(),
                    json!({
                        "median_ns": median.parse::<u64>()?,
                        "p99_ns": p99.parse::<u64>()?,
                        "samples": samples.parse::<u64>()?,
                    }),
                );
            }
            ["UAREA", app, bytes] => {
                uarea.insert(app.to_string(), json!(bytes.parse::<u64>()?));
            }
            _ => {}
        }
    }
    if benchmarks.is_empty() {
        bail!("no KBENCH lines in {}", log_path.display());
    }
    let report = json!({
        "accel": accel.name(),
        "clusters": 1,
        "benchmarks": Value::Object(benchmarks.clone()),
        "uarea_bytes": Value::Object(uarea.clone()),
    });
    println!(
        "{:<20} {:>12} {:>12} {:>8}",
        "benchmark", "median ns", "p99 ns", "samples"
    );
    for (name, value) in &benchmarks {
        println!(
            "{name:<20} {:>12} {:>12} {:>8}",
            value["median_ns"], value["p99_ns"], value["samples"]
        );
    }
    println!("UArea size after spawn (bytes): {}", Value::Object(uarea));
    if let Some(path) = json_path {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}
