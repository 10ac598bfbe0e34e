//! `trace start FILE` … `trace stop`: the machine's events as Chrome trace event JSON
//! (`{"traceEvents":[...]}`, opens in Perfetto or chrome://tracing), and the same timeline
//! drawn as an SVG next to it (`FILE` with the extension `.svg`).
//!
//! One trace process per cluster (`pid` = cluster). Each migration, from the source's
//! `migration PID cS->cD: ok: total …, downtime …, preparation …, resume …` log line (its
//! timestamp is the commit, on the chip clock every cluster shares), becomes spans: the
//! whole migration and its preparation and downtime on the source, the image transfer
//! (pages, bytes) on both ends, the resume on the destination; an arrival is an instant.
//! noc-sim's per-link counters are sampled every 200 ms into counter events per link.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::commands::MigrationRow;
use super::noc_map;
use super::view::View;

type Sample = (Instant, HashMap<String, (u64, u64)>);

/// A trace being recorded.
pub struct Recorder {
    file: PathBuf,
    since: u64,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    sampler: JoinHandle<()>,
}

impl Recorder {
    pub fn start(file: PathBuf, since: u64, control: &std::path::Path) -> Result<Recorder, String> {
        std::fs::write(&file, "").map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2, control) = (stop.clone(), samples.clone(), control.to_path_buf());
        let sampler = std::thread::spawn(move || loop {
            if let Ok(stats) = noc_map::stats(&control) {
                if let Ok(mut samples) = samples2.lock() {
                    samples.push((Instant::now(), noc_map::link_counters(&stats)));
                }
            }
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        });
        Ok(Recorder {
            file,
            since,
            stop,
            samples,
            sampler,
        })
    }

    /// Stops, writes the JSON and the SVG, and says what they hold.
    pub fn finish(
        self,
        view: &View,
        migrations: &[MigrationRow],
        _control: &std::path::Path,
    ) -> Result<String, String> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.sampler.join();
        let lines = view.lines_since(self.since);
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let events = events(&lines, &samples);
        let spans = events.iter().filter(|e| e["ph"] == "X").count();
        let trace = json!({ "traceEvents": events, "displayTimeUnit": "ms" });
        let text = serde_json::to_string(&trace).map_err(|e| e.to_string())?;
        std::fs::write(&self.file, text)
            .map_err(|e| format!("writing {}: {e}", self.file.display()))?;
        let svg = self.file.with_extension("svg");
        std::fs::write(&svg, super::trace_svg::render(&events))
            .map_err(|e| format!("writing {}: {e}", svg.display()))?;
        Ok(format!(
            "wrote {} ({} events, {spans} spans; {} migration record(s) in the machine) and {}; open the JSON in https://ui.perfetto.dev or chrome://tracing",
            self.file.display(),
            events.len(),
            migrations.len(),
            svg.display()
        ))
    }
}

/// `[   74.429489 c0 INFO ] text` → (µs on the chip clock, text).
fn stamped(line: &str) -> Option<(f64, &str)> {
    let rest = line.strip_prefix('[')?;
    let (head, text) = rest.split_once("] ")?;
    let seconds: f64 = head.split_whitespace().next()?.parse().ok()?;
    Some((seconds * 1e6, text))
}

fn us_field(text: &str, name: &str) -> Option<f64> {
    let after = text.split(&format!("{name} ")).nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

fn span(name: &str, cluster: usize, tid: &str, ts: f64, dur: f64, args: Value) -> Value {
    json!({"name": name, "cat": "migration", "ph": "X", "ts": ts, "dur": dur.max(1.0), "pid": cluster, "tid": tid, "args": args})
}

/// The Chrome trace events of the lines and NoC samples of one recording.
pub fn events(lines: &[(Instant, usize, String)], samples: &[Sample]) -> Vec<Value> {
    let mut events = Vec::new();
    let mut clusters = std::collections::BTreeSet::new();
    // chip µs − host µs, from the line that arrived with the least delay.
    let origin = lines.first().map(|l| l.0).or(samples.first().map(|s| s.0));
    let mut offset: Option<f64> = None;
    for (at, k, line) in lines {
        let Some((ts, text)) = stamped(line) else {
            continue;
        };
        clusters.insert(*k);
        if let Some(origin) = origin {
            let host = at.saturating_duration_since(origin).as_secs_f64() * 1e6;
            offset = Some(offset.map_or(ts - host, |o: f64| o.max(ts - host)));
        }
        if let Some(rest) = text.strip_prefix("migration ") {
            let mut words = rest.split_whitespace();
            let (Some(pid), Some(route)) = (words.next(), words.next()) else {
                continue;
            };
            let status = words.next().unwrap_or("").trim_end_matches(':');
            let Some((src, dst)) = route.trim_end_matches(':').split_once("->") else {
                continue;
            };
            let (Some(src), Some(dst)) = (
                src[1..].parse::<usize>().ok(),
                dst.get(1..).and_then(|d| d.parse::<usize>().ok()),
            ) else {
                continue;
            };
            let field = |n: &str| us_field(text, n).unwrap_or(0.0);
            let (total, down, prep, resume) = (
                field("total"),
                field("downtime"),
                field("preparation"),
                field("resume"),
            );
            let pages = text
                .split(" pages")
                .next()
                .and_then(|t| t.rsplit(' ').next())
                .unwrap_or("0");
            let bytes = text
                .split(" bytes")
                .next()
                .and_then(|t| t.rsplit(' ').next())
                .unwrap_or("0");
            let start = ts - total;
            let tid = format!("pid {pid}");
            let args = json!({"status": status, "total_us": total, "downtime_us": down, "preparation_us": prep, "resume_us": resume, "pages": pages, "bytes": bytes});
            clusters.insert(dst);
            events.push(span(
                &format!("migrate {pid} c{src}->c{dst} ({status})"),
                src,
                "migrations",
                start,
                total,
                args,
            ));
            events.push(span("preparation", src, &tid, start, prep, json!({})));
            events.push(span(
                "downtime (frozen)",
                src,
                &tid,
                start + prep,
                down,
                json!({}),
            ));
            let transfer = (down - resume).max(1.0);
            let image = json!({"pages": pages, "bytes": bytes});
            events.push(span(
                &format!("image out ({pages} pages)"),
                src,
                "transfer",
                start + prep,
                transfer,
                image.clone(),
            ));
            events.push(span(
                &format!("image in ({pages} pages)"),
                dst,
                "transfer",
                start + prep,
                transfer,
                image,
            ));
            events.push(span(
                "resume",
                dst,
                &tid,
                start + prep + down - resume,
                resume,
                json!({}),
            ));
        } else if text.contains(" arrived from ") {
            events.push(json!({"name": text, "cat": "migration", "ph": "i", "s": "p", "ts": ts, "pid": k, "tid": "migrations"}));
        }
    }
    // NoC counters per link, per sampling interval, on the sending node's row.
    let (Some(origin), offset) = (origin, offset.unwrap_or(0.0)) else {
        return events;
    };
    for pair in samples.windows(2) {
        let (t0, ref before) = pair[0];
        let (t1, ref after) = pair[1];
        let ts = t0.saturating_duration_since(origin).as_secs_f64() * 1e6 + offset;
        let secs = t1.saturating_duration_since(t0).as_secs_f64().max(1e-3);
        for (link, (m1, b1)) in after {
            let (m0, b0) = before.get(link).copied().unwrap_or((0, 0));
            if *m1 == 0 {
                continue;
            }
            let node = link_node(link, clusters.len().max(1));
            events.push(json!({"name": format!("noc {link}"), "cat": "noc", "ph": "C", "ts": ts, "pid": node, "tid": "noc", "args": {"messages_per_s": ((m1 - m0) as f64 / secs).round(), "bytes_per_s": ((b1 - b0) as f64 / secs).round()}}));
        }
    }
    for k in clusters {
        events.push(json!({"name": "process_name", "ph": "M", "pid": k, "tid": "", "ts": 0, "args": {"name": format!("cluster {k}")}}));
    }
    events
}

/// The node a link leaves from (`inject(x,y)`, `(x,y)->...`, `eject(x,y)`), as a cluster.
fn link_node(link: &str, clusters: usize) -> usize {
    let inner = link
        .split('(')
        .nth(1)
        .and_then(|t| t.split(')').next())
        .unwrap_or("0,0");
    let (x, y) = inner.split_once(',').unwrap_or(("0", "0"));
    let (w, _) = noc_map::mesh(clusters);
    y.parse::<usize>().unwrap_or(0) * w + x.parse::<usize>().unwrap_or(0)
}

/// Checks the shape Chrome and Perfetto need: a `traceEvents` array whose events have a
/// name, a phase, a numeric timestamp and pid, and a duration for complete (`X`) events.
pub fn check(trace: &Value) -> Result<usize, String> {
    let events = trace["traceEvents"]
        .as_array()
        .ok_or("no traceEvents array")?;
    for (i, e) in events.iter().enumerate() {
        let ph = e["ph"].as_str().ok_or(format!("event {i}: no ph"))?;
        if e["name"].as_str().is_none() || !e["ts"].is_number() || !e["pid"].is_number() {
            return Err(format!("event {i}: name, ts and pid are required: {e}"));
        }
        if ph == "X" && !e["dur"].is_number() {
            return Err(format!("event {i}: an X event needs dur: {e}"));
        }
    }
    Ok(events.len())
}
