//! `cargo xtask bench idle`: what idle clusters cost the host.
//!
//! Boots N clusters of the production kernel with nothing to run, waits until every one has
//! printed its banner (and a settling pause), then reads each QEMU's utime+stime from
//! `/proc/PID/stat` before and after `--seconds` of idling. The goal (BRIEF §5) is at most
//! 0.5 % of one host core per idle cluster.

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

use super::BenchArgs;
use crate::cluster;
use crate::image::{self, Kernel};
use crate::qemu;

/// BRIEF §5: an idle cluster may use at most this share of one host core.
const GOAL_PERCENT: f64 = 0.5;
/// Pause between the last banner and the measurement (greetings, monitor prompt).
const SETTLE: Duration = Duration::from_secs(2);

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / clock_ticks_per_second())
        .with_context(|| format!("parsing {path}"))
}

/// utime (field 14) + stime (field 15) of a `/proc/PID/stat` line, in clock ticks. The
/// command name (field 2) may hold spaces and parentheses, so count from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, i.e. index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

pub fn bench_idle(args: &BenchArgs) -> Result<i32> {
    if args.clusters == 0 || args.seconds == 0 {
        bail!("bench idle needs --clusters >= 1 and --seconds >= 1");
    }
    qemu::ensure_installed()?;
    let image = image::build_image(Kernel::Production, false)?;
    let cmdline = |_k: usize| String::new();
    let spec = cluster::Spec {
        name: "bench-idle",
        clusters: args.clusters,
        image: &image,
        accel: args.accel,
        cmdline: &cmdline,
        guest_faults: false,
        model: args.model(),
        interactive: false,
        show: |line| line.starts_with("Tessera "),
        sink: None,
        gdb: None,
    };
    let mut machine = cluster::start(&spec)?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while machine.booted() < args.clusters {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} clusters booted in {} s; logs: {}",
                machine.booted(),
                args.clusters,
                args.timeout,
                machine.logs[0].display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(SETTLE);
    let (pids, noc_pid) = machine.pids();
    let before: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .collect::<Result<_>>()?;
    let noc_before = cpu_seconds(noc_pid)?;
    let started = Instant::now();
    eprintln!(
        "xtask: all {} clusters booted; measuring {} s of idle",
        args.clusters, args.seconds
    );
    std::thread::sleep(Duration::from_secs(args.seconds));
    let after: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .collect::<Result<_>>()?;
    let noc_after = cpu_seconds(noc_pid)?;
    let wall = started.elapsed().as_secs_f64();
    drop(machine); // kills every QEMU and noc-sim

    let per_cluster: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| ((a - b) / wall * 10_000.0).round() / 100.0)
        .collect();
    let mean = per_cluster.iter().sum::<f64>() / per_cluster.len() as f64;
    let noc_percent = ((noc_after - noc_before) / wall * 10_000.0).round() / 100.0;
    let report = serde_json::json!({
        "clusters": args.clusters,
        "seconds": (wall * 100.0).round() / 100.0,
        "cpu_percent_per_cluster": (mean * 100.0).round() / 100.0,
        "per_cluster": per_cluster,
        "noc_sim_cpu_percent": noc_percent,
        "goal_percent_per_cluster": GOAL_PERCENT,
        "accel": args.accel.name(),
        "model": super::model_json(&args.model()),
    });
    println!(
        "idle: {} clusters, {:.1} s: {mean:.2} % of a core per cluster (goal <= {GOAL_PERCENT} %), \
         {:.1} % in all, noc-sim {noc_percent} %",
        args.clusters,
        wall,
        mean * args.clusters as f64
    );
    println!("{}", serde_json::to_string(&report)?);
    super::write_json(args.json.as_deref(), &report)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_ticks;

    #[test]
    fn stat_fields_after_the_command_name() {
        let stat = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 5 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("4242 (qemu) S 1"), None);
    }
}
