//! `trace start FILE` … `trace stop`: the machine's events as Chrome trace event JSON
//! (`{"traceEvents":[...]}`, opens in Perfetto or chrome://tracing), and the same timeline
//! drawn as an SVG next to it (`FILE` with the extension `.svg`).
//!
//! One trace process per cluster (`pid` = cluster). Each migration, from the source's
//! `migration PID cS->cD: ok: total …, downtime …, preparation …, resume …` log line (its
//! timestamp is the commit, on the chip clock every cluster shares), becomes spans: the
//! whole migration and its preparation and downtime on the source, the image transfer
//! (pages, bytes) on both ends, the resume on the destination; an arrival is an instant.
//! noc-sim's per-link counters are sampled (every 200 ms in the console, 20 ms in `bench
//! migration`, whose moves take milliseconds) into counter events per link.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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
    /// Starts recording the lines after `since`, sampling noc-sim's counters every `every`.
    pub fn start(
        file: PathBuf,
        since: u64,
        control: &std::path::Path,
        every: Duration,
    ) -> Result<Recorder, String> {
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
            std::thread::sleep(every);
        });
        Ok(Recorder {
            file,
            since,
            stop,
            samples,
            sampler,
        })
    }

    /// Stops, writes the JSON and the SVG, and says what they hold (`records`: the
    /// migration records the machine holds, for the summary).
    pub fn finish(self, view: &View, records: usize) -> Result<String, String> {
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
            records,
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
        } else if is_arrival(text) {
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

/// `process 0.1 arrived`: the destination's log line once the process runs there.
fn is_arrival(text: &str) -> bool {
    text.starts_with("process ") && text.ends_with(" arrived")
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

/// The whole-migration spans of a trace (one per migration record seen).
pub fn migration_spans(trace: &Value) -> usize {
    trace["traceEvents"].as_array().map_or(0, |events| {
        events
            .iter()
            .filter(|e| e["tid"] == "migrations" && e["ph"] == "X")
            .count()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines a migration prints on both ends (as the kernel's `migstats` and the
    /// destination daemon log them), recorded as `bench migration --trace` records them.
    #[test]
    fn a_recorded_migration_becomes_chrome_trace_spans() {
        let dir = std::env::temp_dir().join(format!("tessera-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bench.json");
        let view = View::new(2, true);
        // No noc-sim: the sampler finds no socket and records no counters.
        let recorder = Recorder::start(
            file.clone(),
            view.mark(),
            &dir.join("none.sock"),
            Duration::from_millis(10),
        )
        .unwrap();
        view.cluster_line(
            0,
            "MIGBENCH stop-and-copy mgs-500 1950194 11187 57261 23132 68448 475",
        );
        view.cluster_line(1, "[   17.415575 c1 INFO ] process 0.1 arrived");
        view.cluster_line(0, "[   17.422929 c0 INFO ] migration 0.1 c0->c1: ok: total 68448 us, downtime 57261 us, preparation 11187 us, resume 23132 us, 475 pages, 1950194 bytes");
        let said = recorder.finish(&view, 1).unwrap();
        assert!(said.contains("1 migration record(s)"), "{said}");
        let trace: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert!(check(&trace).is_ok());
        assert_eq!(migration_spans(&trace), 1);
        let events = trace["traceEvents"].as_array().unwrap();
        let find = |name: &str, pid: usize| {
            events
                .iter()
                .find(|e| e["name"] == name && e["pid"] == pid)
                .unwrap_or_else(|| panic!("no `{name}` on cluster {pid} in {events:?}"))
        };
        let whole = find("migrate 0.1 c0->c1 (ok)", 0);
        let start = 17_422_929.0 - 68_448.0;
        assert!((whole["ts"].as_f64().unwrap() - start).abs() < 1.0);
        assert_eq!(whole["dur"], 68_448.0);
        assert_eq!(whole["args"]["pages"], "475");
        assert_eq!(find("preparation", 0)["dur"], 11_187.0);
        assert_eq!(find("downtime (frozen)", 0)["dur"], 57_261.0);
        assert_eq!(find("image out (475 pages)", 0)["args"]["bytes"], "1950194");
        assert_eq!(find("image in (475 pages)", 1)["dur"], 57_261.0 - 23_132.0);
        assert_eq!(find("resume", 1)["dur"], 23_132.0);
        assert_eq!(find("process 0.1 arrived", 1)["ph"], "i");
        assert_eq!(find("process_name", 1)["args"]["name"], "cluster 1");
        assert!(dir.join("bench.svg").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn noc_samples_become_counters_per_link() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(500);
        let line = "[    1.000000 c0 INFO ] migration 0.1 c0->c1: ok: total 10 us, downtime 5 us, preparation 1 us, resume 1 us, 1 pages, 4096 bytes";
        let lines = vec![
            (t0, 0, line.to_string()),
            (t0, 1, "[    1.000000 c1 INFO ] x".into()),
        ];
        let link = "(0,0)->(1,0)".to_string();
        let samples = vec![
            (t0, HashMap::from([(link.clone(), (10, 1000))])),
            (t1, HashMap::from([(link.clone(), (60, 6000))])),
        ];
        let events = events(&lines, &samples);
        let counter = events
            .iter()
            .find(|e| e["ph"] == "C")
            .expect("a counter event");
        assert_eq!(counter["name"], format!("noc {link}"));
        assert_eq!(counter["pid"], 0);
        assert_eq!(counter["args"]["messages_per_s"], 100.0);
        assert_eq!(counter["args"]["bytes_per_s"], 10_000.0);
        // Chip time: the sample is placed on the clusters' clock (1 s), not the host's.
        assert!((counter["ts"].as_f64().unwrap() - 1e6).abs() < 1.0);
        assert!(check(&serde_json::json!({ "traceEvents": events })).is_ok());
        assert!(check(
            &serde_json::json!({ "traceEvents": [{"ph": "X", "name": "a", "ts": 0, "pid": 0}] })
        )
        .is_err());
    }
}
