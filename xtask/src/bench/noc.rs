//! `cargo xtask bench noc`: boot N clusters with the test kernel's `noc_bench` suite and turn
//! cluster 0's `bench ...` lines into a JSON report.

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

use super::BenchArgs;
use crate::cluster;
use crate::image::{self, Kernel};
use crate::qemu;

pub fn bench_noc(args: &BenchArgs) -> Result<i32> {
    if args.clusters < 2 {
        bail!("the NoC benchmark needs at least 2 clusters");
    }
    qemu::ensure_installed()?;
    let image = image::build_image(Kernel::Tests, false)?;
    let clusters = args.clusters;
    let cmdline = |_k: usize| format!("suite=noc_bench clusters={clusters}");
    let model = args.model();
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
        sink: None,
        gdb: None,
    };
    let machine = cluster::start(&spec)?;
    let logs = machine.logs.clone();
    let outcome = machine.wait(Some(Instant::now() + Duration::from_secs(args.timeout)))?;
    let console = outcome.consoles.first().context("no cluster 0 console")?;
    let mut rtt = Vec::new();
    let mut portal = Vec::new();
    let mut user_portal = Vec::new();
    for line in console.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["bench", "mailbox_rtt", label, peer, median, p99] => rtt.push((
                label.to_string(),
                peer.parse::<u64>()?,
                median.parse::<f64>()?,
                p99.parse::<f64>()?,
            )),
            ["bench", "portal_mb_s", size, mb_s] => {
                portal.push((size.to_string(), mb_s.parse::<f64>()?))
            }
            ["bench", "user_portal_mb_s", size, mb_s] => {
                user_portal.push((size.to_string(), mb_s.parse::<f64>()?))
            }
            _ => {}
        }
    }
    if rtt.len() != 2
        || portal.len() != 3
        || user_portal.len() != 1
        || !outcome.exits.iter().all(|e| *e == Some(qemu::EXIT_SUCCESS))
    {
        bail!(
            "the benchmark did not complete (exits {:?}); see {}",
            outcome.exits,
            logs[0].display()
        );
    }
    let mut report = serde_json::json!({
        "accel": args.accel.name(),
        "clusters": clusters,
        "model": super::model_json(&model),
        "mailbox_rtt_us": { "median": rtt[0].2, "p99": rtt[0].3 },
        "portal_mb_s": {},
        "user_portal_mb_s": {},
        "all_joined_s": outcome.all_joined_s.unwrap_or(0.0),
        "all_booted_s": outcome.all_booted_s.unwrap_or(0.0),
    });
    for (label, peer, median, p99) in &rtt {
        report["mailbox_rtt_us"][label] =
            serde_json::json!({ "peer": peer, "median": median, "p99": p99 });
        println!("mailbox round trip {label} (c0<->c{peer}): median {median} us, p99 {p99} us (goal <= 100 us)");
    }
    for (size, mb_s) in &portal {
        report["portal_mb_s"][size] = serde_json::json!(mb_s);
        let limit = if model.link_mbps == 0 {
            "infinite".to_string()
        } else {
            format!("{} MB/s", model.link_mbps)
        };
        println!("portal {size}: {mb_s} MB/s (link model {limit}, goal >= 1000 MB/s)");
    }
    for (size, mb_s) in &user_portal {
        report["user_portal_mb_s"][size] = serde_json::json!(mb_s);
        println!("user portal_write {size}: {mb_s} MB/s (process on c0 to process on c1)");
    }
    println!("{}", serde_json::to_string(&report)?);
    super::write_json(args.json.as_deref(), &report)?;
    Ok(0)
}
