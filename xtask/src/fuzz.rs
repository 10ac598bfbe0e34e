//! `cargo xtask fuzz --seconds N --seed S`: the syscall fuzzer (`userland/apps/fuzz`) on
//! every cluster, next to a neighbour process (`counter`) that must keep counting, while this
//! program types `uptime` on cluster 0's kernel monitor every few seconds and expects the
//! reply. It ends with one line `fuzz: seed S, N calls, K kernel faults` and a non-zero exit
//! if a kernel panicked or reported a CPU exception, a neighbour stopped, the monitor did not
//! answer, or a fuzzer did not finish.
//!
//! The machine is the production kernel booted as `cargo xtask run` boots it; the consoles are
//! read from their logs (`target/tessera/logs/fuzz-c{k}.log`) while it runs.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::image::{self, Kernel};
use crate::qemu::{self, Accel};

/// Options of `cargo xtask fuzz`.
#[derive(Args, Debug, Clone)]
pub struct FuzzArgs {
    /// Seconds each fuzzer makes calls for.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seed of the random calls (cluster k's fuzzer uses seed + k).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Clusters to boot (each runs a fuzzer and a neighbour).
    #[arg(long, default_value_t = 2)]
    pub clusters: usize,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
}

/// Neighbour's counting period, and how long it may stay silent.
const COUNTER_PERIOD_MS: u64 = 200;
const NEIGHBOUR_SILENCE: Duration = Duration::from_secs(20);
/// How often the monitor is asked, and how long it may take to answer.
const UPTIME_EVERY: Duration = Duration::from_secs(3);
const MONITOR_SILENCE: Duration = Duration::from_secs(20);
/// Boot allowance before the fuzzers start counting.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// What the consoles showed so far.
#[derive(Default, Debug)]
struct Seen {
    kernel_faults: Vec<String>,
    counts: Vec<usize>,
    uptime_replies: usize,
    finished: Vec<Option<u64>>,
    booted: usize,
}

fn scan(logs: &[PathBuf], seed: u64) -> Seen {
    let mut seen = Seen {
        counts: vec![0; logs.len()],
        finished: vec![None; logs.len()],
        ..Seen::default()
    };
    for (k, path) in logs.iter().enumerate() {
        let text = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        for line in text.lines() {
            if line.contains("!!! KERNEL PANIC") || line.contains("!!! FATAL CPU EXCEPTION") {
                seen.kernel_faults.push(format!("c{k}: {line}"));
            }
            if line.contains(" counter] count ") {
                seen.counts[k] += 1;
            }
            if line.contains("chip time ") && line.contains("timer interrupts") {
                seen.uptime_replies += 1;
            }
            if line.starts_with("Tessera ") {
                seen.booted += 1;
            }
            // `[pP fuzz] fuzz: seed S, N calls`
            if let Some(rest) = line
                .rsplit(" fuzz] fuzz: seed ")
                .next()
                .filter(|r| r.len() < line.len())
            {
                let mut words = rest.split([',', ' ']).filter(|w| !w.is_empty());
                let seed_ok = words.next() == Some(&(seed + k as u64).to_string());
                let calls = words.next().and_then(|n| n.parse::<u64>().ok());
                if seed_ok && words.next() == Some("calls") {
                    seen.finished[k] = calls;
                }
            }
        }
    }
    seen
}

pub fn fuzz(args: &FuzzArgs) -> Result<i32> {
    qemu::ensure_installed()?;
    anyhow::ensure!(args.clusters >= 1, "--clusters must be at least 1");
    let image = image::build_image(Kernel::Production, false)?;
    let (seed, seconds) = (args.seed, args.seconds);
    let cmdline = move |k: usize| {
        format!(
            "app=counter:{COUNTER_PERIOD_MS} app=fuzz:{}:{seconds}",
            seed + k as u64
        )
    };
    let spec = crate::cluster::Spec {
        name: "fuzz",
        clusters: args.clusters,
        image: &image,
        accel: args.accel,
        cmdline: &cmdline,
        guest_faults: false,
        model: crate::cluster::NocModel::default(),
        interactive: false,
        show: |line| line.contains("!!!") || line.contains("fuzz: seed"),
        sink: None,
        gdb: None,
    };
    eprintln!(
        "xtask: fuzzing {} clusters for {seconds} s (seed {seed}), neighbour `counter` on each",
        args.clusters
    );
    let mut machine = crate::cluster::start(&spec).context("starting the machine")?;
    let logs = machine.logs.clone();
    let mut problems = Vec::new();
    let started = Instant::now();
    // Wait for every banner (the fuzzers start with the kernels).
    while machine.booted() < args.clusters {
        if started.elapsed() > BOOT_TIMEOUT {
            problems.push(format!("only {} clusters booted", machine.booted()));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let fuzzing_since = Instant::now();
    let end = fuzzing_since + Duration::from_secs(seconds) + Duration::from_secs(30);
    let mut last_counts = vec![0usize; args.clusters];
    let mut last_count_change = vec![Instant::now(); args.clusters];
    let (mut asked, mut last_replies, mut last_reply) = (Instant::now(), 0usize, Instant::now());
    machine.type_on_console("uptime");
    let seen = loop {
        std::thread::sleep(Duration::from_millis(500));
        let seen = scan(&logs, seed);
        let now = Instant::now();
        for k in 0..args.clusters {
            if seen.counts[k] != last_counts[k] {
                last_counts[k] = seen.counts[k];
                last_count_change[k] = now;
            }
        }
        if seen.uptime_replies != last_replies {
            last_replies = seen.uptime_replies;
            last_reply = now;
        }
        if now - asked >= UPTIME_EVERY {
            machine.type_on_console("uptime");
            asked = now;
        }
        if !seen.kernel_faults.is_empty() {
            break seen;
        }
        if let Some(k) =
            (0..args.clusters).find(|k| now - last_count_change[*k] > NEIGHBOUR_SILENCE)
        {
            problems.push(format!("the neighbour on cluster {k} stopped counting"));
            break seen;
        }
        if now - last_reply > MONITOR_SILENCE {
            problems.push(format!(
                "the monitor did not answer `uptime` for {MONITOR_SILENCE:?}"
            ));
            break seen;
        }
        if seen.finished.iter().all(Option::is_some) {
            break seen;
        }
        if now > end {
            let missing: Vec<usize> = (0..args.clusters)
                .filter(|k| seen.finished[*k].is_none())
                .collect();
            problems.push(format!("the fuzzer on clusters {missing:?} did not finish"));
            break seen;
        }
    };
    // One more round: the monitor answers and the neighbours still count after the fuzzers.
    machine.type_on_console("uptime");
    std::thread::sleep(Duration::from_secs(3));
    let last = scan(&logs, seed);
    if seen.kernel_faults.is_empty() && problems.is_empty() {
        if last.uptime_replies <= seen.uptime_replies {
            problems.push("the monitor did not answer after the fuzzers".into());
        }
        if let Some(k) = (0..args.clusters).find(|k| last.counts[*k] <= seen.counts[*k]) {
            problems.push(format!(
                "the neighbour on cluster {k} is not counting at the end"
            ));
        }
    }
    let outcome = machine.wait(Some(Instant::now()))?;
    let _ = outcome;
    let faults = last.kernel_faults.len();
    let calls: u64 = last.finished.iter().flatten().sum();
    for fault in &last.kernel_faults {
        eprintln!("xtask: kernel fault: {fault}");
    }
    for problem in &problems {
        eprintln!("xtask: fuzz: {problem}");
    }
    eprintln!(
        "xtask: {} uptime replies; neighbour counts {:?}; logs: {}",
        last.uptime_replies,
        last.counts,
        logs.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("fuzz: seed {seed}, {calls} calls, {faults} kernel faults");
    Ok(if faults == 0 && problems.is_empty() {
        0
    } else {
        1
    })
}
