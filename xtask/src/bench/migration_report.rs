//! The migration bench's report as pure logic: the driver's console lines (`MIGSTART`,
//! `MIGBENCH`, `MIGDEGRADE`, see `tests/src/suites/bench_migration.rs`) in, the JSON and the
//! printed tables out. Kept apart from the run so every number can be checked on the host
//! from made-up lines, and so a new strategy or a new figure is a new key, not a new parser.

use serde_json::{json, Map, Value};

/// The strategies the report knows, in the order it shows them. A strategy the kernel does
/// not have yet has no runs and is listed as not measured; one the report does not know is
/// shown after these.
pub const KNOWN_STRATEGIES: [&str; 4] = ["stop-and-copy", "pre-copy", "post-copy", "hybrid"];

/// Gobelins Table 1 (full copy of `mgs` N×N, ms) and its flat post-copy time.
pub const GOBELINS_FULL_COPY_MS: [(&str, u64); 4] = [
    ("mgs-500", 206),
    ("mgs-750", 240),
    ("mgs-1000", 283),
    ("mgs-1250", 320),
];
pub const GOBELINS_POST_COPY_MS: u64 = 83;
/// Nanvix on MPPA-256, the 352.8 KB reference process.
pub const NANVIX_MS: u64 = 226;

/// The runs, degradation lines and skipped strategies read from cluster 0's console, with
/// the link bytes of each measured move (read from noc-sim around it).
#[derive(Default, Debug)]
pub struct Collected {
    pub runs: Vec<Value>,
    pub degradation: Vec<Value>,
    /// Link counter at the last `MIGSTART` (consumed by the next `MIGBENCH`).
    start_counter: Option<u64>,
}

/// `KEY=VALUE` words after the tag, numbers as numbers.
fn fields(words: &[&str]) -> Map<String, Value> {
    let mut map = Map::new();
    for word in words {
        if let Some((key, value)) = word.split_once('=') {
            let value = value
                .parse::<u64>()
                .map_or_else(|_| Value::from(value), Value::from);
            map.insert(key.to_string(), value);
        }
    }
    map
}

impl Collected {
    /// Takes one console line. `link_counter` reads the bytes noc-sim counted so far on the
    /// source → destination link (`None` if it cannot be read); it is called only for the
    /// lines that bracket a move.
    pub fn line(&mut self, line: &str, link_counter: impl FnOnce() -> Option<u64>) {
        let Some(at) = line.find("MIG") else { return };
        let words: Vec<&str> = line[at..].split_whitespace().collect();
        match words.first() {
            Some(&"MIGSTART") => self.start_counter = link_counter(),
            Some(&"MIGBENCH") => {
                let mut run = fields(&words[1..]);
                // The record's `link_bytes` (counted at the daemons) is the move's; noc-sim's
                // counter on the route's first hop is kept beside it (`noc_hop_bytes`), and
                // stands in for it from a kernel whose record has none.
                if let Some(before) = self.start_counter.take() {
                    if let Some(after) = link_counter() {
                        let hop = after.saturating_sub(before);
                        run.insert("noc_hop_bytes".into(), hop.into());
                        run.entry("link_bytes").or_insert(hop.into());
                    }
                }
                self.runs.push(Value::Object(run));
            }
            Some(&"MIGDEGRADE") => self.degradation.push(Value::Object(fields(&words[1..]))),
            _ => {}
        }
    }
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or("?").to_string()
}

/// Strategies that have runs: the known ones in order, then any other.
pub fn strategies(runs: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = KNOWN_STRATEGIES
        .iter()
        .filter(|s| runs.iter().any(|r| r["strategy"] == **s))
        .map(|s| s.to_string())
        .collect();
    for run in runs {
        let s = text(run, "strategy");
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The known strategies without a run (not in this kernel yet).
pub fn not_measured(runs: &[Value]) -> Vec<&'static str> {
    KNOWN_STRATEGIES
        .into_iter()
        .filter(|s| !runs.iter().any(|r| r["strategy"] == *s))
        .collect()
}

/// Apps in order of first appearance.
pub fn apps(runs: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for run in runs {
        let app = text(run, "app");
        if !out.contains(&app) {
            out.push(app);
        }
    }
    out
}

/// The median (upper of the two middles) of `key` over `runs`, if any has it.
pub fn median(runs: &[&Value], key: &str) -> Option<u64> {
    let mut values: Vec<u64> = runs.iter().filter_map(|r| r[key].as_u64()).collect();
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// Medians per (app, strategy): the `summary` list of the JSON.
pub fn summary(runs: &[Value], link_mbps: u64) -> Vec<Value> {
    let mut out = Vec::new();
    for app in apps(runs) {
        for strategy in strategies(runs) {
            let mine: Vec<&Value> = runs
                .iter()
                .filter(|r| r["app"] == app.as_str() && r["strategy"] == strategy.as_str())
                .collect();
            if mine.is_empty() {
                continue;
            }
            let bytes = median(&mine, "bytes").unwrap_or(0);
            let mut row = json!({
                "app": app,
                "strategy": strategy,
                "runs": mine.len(),
                "size_bytes": bytes,
                "link_limit_us": (link_mbps != 0).then(|| bytes as f64 / link_mbps as f64),
            });
            for key in [
                "touched_bytes",
                "rate_pages_s",
                "total_us",
                "downtime_us",
                "preparation_us",
                "resume_us",
                "pages",
                "pages_pushed",
                "pages_pulled",
                "rounds",
                "dirty_rate_pages_s",
                "fault_wait_us",
                "link_bytes",
                "noc_hop_bytes",
                "pages_precopy",
                "pages_stop",
                "pages_remote",
                "residual_us",
            ] {
                if let Some(value) = median(&mine, key) {
                    let name = match key {
                        "total_us" | "downtime_us" => format!("median_{key}"),
                        _ => key.to_string(),
                    };
                    row[name] = value.into();
                }
            }
            out.push(row);
        }
    }
    out
}

/// Degradation per strategy against the run without a migration (`none`), and the same
/// `degradation_pct` set on the runs of the migrated `mgs` (app `mgs-1000-degradation`).
pub fn degradation(lines: &[Value], runs: &mut [Value]) -> Vec<Value> {
    let Some(baseline) = lines
        .iter()
        .find(|l| l["strategy"] == "none")
        .and_then(|l| l["run_us"].as_u64())
        .filter(|b| *b > 0)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in lines.iter().filter(|l| l["strategy"] != "none") {
        let Some(run_us) = line["run_us"].as_u64() else {
            continue;
        };
        let pct = (run_us as f64 - baseline as f64) * 100.0 / baseline as f64;
        let pct = (pct * 100.0).round() / 100.0;
        let strategy = text(line, "strategy");
        for run in runs
            .iter_mut()
            .filter(|r| r["app"] == "mgs-1000-degradation" && r["strategy"] == strategy.as_str())
        {
            run["degradation_pct"] = pct.into();
        }
        out.push(json!({
            "app": text(line, "app"),
            "strategy": strategy,
            "run_us": run_us,
            "baseline_us": baseline,
            "downtime_us": line["downtime_us"],
            "degradation_pct": pct,
        }));
    }
    out
}

/// QEMU's whole-VM migration of `app` against the best Tessera strategy for that app
/// (lowest median total; lowest median downtime, each on its own).
pub fn qemu_vm_entry(app: &str, total_us: u64, downtime_us: u64, summary: &[Value]) -> Value {
    let mine: Vec<&Value> = summary.iter().filter(|s| s["app"] == app).collect();
    let best = |key: &str| {
        mine.iter()
            .filter_map(|s| Some((s[key].as_u64()?, text(s, "strategy"))))
            .min()
    };
    let ratio = |qemu: u64, tessera: Option<&(u64, String)>| {
        tessera
            .filter(|(t, _)| *t > 0)
            .map(|(t, _)| ((qemu as f64 / *t as f64) * 100.0).round() / 100.0)
    };
    let (total, down) = (best("median_total_us"), best("median_downtime_us"));
    json!({
        "app": app,
        "total_us": total_us,
        "downtime_us": downtime_us,
        "tessera_best_total_us": total.as_ref().map(|t| t.0),
        "tessera_best_total_strategy": total.as_ref().map(|t| t.1.clone()),
        "tessera_best_downtime_us": down.as_ref().map(|t| t.0),
        "tessera_best_downtime_strategy": down.as_ref().map(|t| t.1.clone()),
        "ratio_total": ratio(total_us, total.as_ref()),
        "ratio_downtime": ratio(downtime_us, down.as_ref()),
    })
}

fn ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |us| format!("{:.1}", us as f64 / 1000.0))
}

fn row_for<'a>(summary: &'a [Value], app: &str, strategy: &str) -> Option<&'a Value> {
    summary
        .iter()
        .find(|s| s["app"] == app && s["strategy"] == strategy)
}

/// The reference processes (Nanvix's, `mgs`): total / downtime per strategy, next to
/// Gobelins Table 1 and Nanvix.
pub fn reference_table(summary: &[Value], strategies: &[String]) -> String {
    let mut out = format!("{:<20} {:>11}", "process", "bytes");
    for s in strategies {
        out += &format!(" {:>22}", format!("{s} tot/down ms"));
    }
    out += &format!(" {:>22}\n", "reference ms");
    let apps: Vec<String> = apps(summary);
    for app in apps.iter().filter(|a| a.starts_with("nanvix") || is_mgs(a)) {
        let bytes = summary
            .iter()
            .find(|s| s["app"] == app.as_str())
            .and_then(|s| s["size_bytes"].as_u64())
            .unwrap_or(0);
        out += &format!("{app:<20} {bytes:>11}");
        for s in strategies {
            let cell = row_for(summary, app, s).map_or("-".into(), |r| {
                format!(
                    "{} / {}",
                    ms(r["median_total_us"].as_u64()),
                    ms(r["median_downtime_us"].as_u64())
                )
            });
            out += &format!(" {cell:>22}");
        }
        let reference = if app.starts_with("nanvix") {
            format!("Nanvix {NANVIX_MS}")
        } else {
            GOBELINS_FULL_COPY_MS
                .iter()
                .find(|(a, _)| a == app)
                .map_or("-".into(), |(_, m)| {
                    format!("Gob. {m} (post {GOBELINS_POST_COPY_MS})")
                })
        };
        out += &format!(" {reference:>22}\n");
    }
    out
}

fn is_mgs(app: &str) -> bool {
    GOBELINS_FULL_COPY_MS.iter().any(|(a, _)| *a == app)
}

/// The `memtouch` grid: one line per (size, rate, strategy).
pub fn grid_table(summary: &[Value], strategies: &[String]) -> String {
    let mut out = format!(
        "{:<26} {:<14} {:>9} {:>10} {:>8} {:>10} {:>7} {:>11} {:>11}\n",
        "memtouch",
        "strategy",
        "total ms",
        "down ms",
        "pages",
        "pushed",
        "rounds",
        "dirty p/s",
        "link MB"
    );
    for app in apps(summary).iter().filter(|a| a.starts_with("memtouch")) {
        for s in strategies {
            let Some(r) = row_for(summary, app, s) else {
                continue;
            };
            let n = |k: &str| r[k].as_u64().map_or("-".into(), |v| v.to_string());
            out += &format!(
                "{app:<26} {s:<14} {:>9} {:>10} {:>8} {:>10} {:>7} {:>11} {:>11}\n",
                ms(r["median_total_us"].as_u64()),
                ms(r["median_downtime_us"].as_u64()),
                n("pages"),
                n("pages_pushed"),
                n("rounds"),
                n("dirty_rate_pages_s"),
                r["link_bytes"]
                    .as_u64()
                    .map_or("-".into(), |b| format!("{:.2}", b as f64 / 1e6)),
            );
        }
    }
    out
}

/// Degradation of `mgs 1000`, and Gobelins' post-copy for comparison.
pub fn degradation_table(rows: &[Value]) -> String {
    let mut out = format!(
        "{:<14} {:>12} {:>12} {:>10} {:>13}\n",
        "mgs 1000", "run ms", "without ms", "down ms", "degradation"
    );
    for r in rows {
        out += &format!(
            "{:<14} {:>12} {:>12} {:>10} {:>12.2}%\n",
            text(r, "strategy"),
            ms(r["run_us"].as_u64()),
            ms(r["baseline_us"].as_u64()),
            ms(r["downtime_us"].as_u64()),
            r["degradation_pct"].as_f64().unwrap_or(f64::NAN),
        );
    }
    out
}

/// QEMU's whole-VM migration next to Tessera's best.
pub fn qemu_table(entries: &[Value]) -> String {
    let mut out = format!(
        "{:<20} {:>15} {:>15} {:>17} {:>17} {:>8} {:>8}\n",
        "QEMU whole VM",
        "QEMU total ms",
        "QEMU down ms",
        "Tessera total ms",
        "Tessera down ms",
        "x total",
        "x down"
    );
    for e in entries {
        let ratio = |k: &str| e[k].as_f64().map_or("-".into(), |r| format!("{r:.2}"));
        out += &format!(
            "{:<20} {:>15} {:>15} {:>17} {:>17} {:>8} {:>8}\n",
            text(e, "app"),
            ms(e["total_us"].as_u64()),
            ms(e["downtime_us"].as_u64()),
            ms(e["tessera_best_total_us"].as_u64()),
            ms(e["tessera_best_downtime_us"].as_u64()),
            ratio("ratio_total"),
            ratio("ratio_downtime"),
        );
    }
    out
}

/// The fixed references, as the JSON records them.
pub fn references() -> Value {
    let gobelins: Map<String, Value> = GOBELINS_FULL_COPY_MS
        .iter()
        .map(|(app, ms)| (app.to_string(), (*ms).into()))
        .collect();
    json!({
        "nanvix_352_8KB_ms": NANVIX_MS,
        "gobelins_full_copy_ms": gobelins,
        "gobelins_post_copy_ms": GOBELINS_POST_COPY_MS,
    })
}

#[cfg(test)]
#[path = "migration_report_tests.rs"]
mod tests;
