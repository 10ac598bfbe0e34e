//! The timeline of a trace drawn as SVG: one band per cluster, one row per thread of events,
//! spans as bars with their names, NoC counters as bar charts. Shown in the README (as a
//! PNG) and handy where no trace viewer is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 190.0;
const ROW: f64 = 26.0;
const PALETTE: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

pub fn render(events: &[Value]) -> String {
    let timed: Vec<&Value> = events.iter().filter(|e| e["ph"] != "M").collect();
    let t0 = timed
        .iter()
        .filter_map(|e| e["ts"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let t1 = timed
        .iter()
        .filter_map(|e| Some(e["ts"].as_f64()? + e["dur"].as_f64().unwrap_or(0.0)))
        .fold(f64::NEG_INFINITY, f64::max);
    let (t0, t1) = if t0.is_finite() && t1 > t0 {
        (t0, t1)
    } else {
        (0.0, 1.0)
    };
    let x = |ts: f64| LEFT + (ts - t0) / (t1 - t0) * (WIDTH - LEFT - 20.0);
    // Rows: (cluster, tid) in order.
    let mut rows: BTreeMap<(u64, String), Vec<&Value>> = BTreeMap::new();
    for e in &timed {
        let tid = if e["ph"] == "C" {
            e["name"].as_str().unwrap_or("").to_string()
        } else {
            e["tid"].as_str().unwrap_or("").to_string()
        };
        rows.entry((e["pid"].as_u64().unwrap_or(0), tid))
            .or_default()
            .push(e);
    }
    let height = 60.0 + ROW * rows.len() as f64 + 30.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="DejaVu Sans, sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">Tessera migration timeline ({:.1} ms)</text>"#,
        (t1 - t0) / 1000.0
    );
    let mut y = 40.0;
    let mut last_cluster = None;
    for ((cluster, tid), events) in &rows {
        let colour = PALETTE[*cluster as usize % PALETTE.len()];
        if last_cluster != Some(*cluster) {
            let _ = write!(
                svg,
                r##"<line x1="0" x2="{WIDTH}" y1="{y}" y2="{y}" stroke="#999"/>"##
            );
            last_cluster = Some(*cluster);
        }
        let _ = write!(
            svg,
            r#"<text x="6" y="{:.1}">c{cluster} {}</text>"#,
            y + 17.0,
            escape(tid)
        );
        let max = events
            .iter()
            .filter_map(|e| e["args"]["messages_per_s"].as_f64())
            .fold(1.0, f64::max);
        for (i, e) in events.iter().enumerate() {
            let ts = e["ts"].as_f64().unwrap_or(t0);
            match e["ph"].as_str() {
                Some("X") => {
                    let (a, b) = (x(ts), x(ts + e["dur"].as_f64().unwrap_or(0.0)));
                    let w = (b - a).max(2.0);
                    let _ = write!(
                        svg,
                        r#"<rect x="{a:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{colour}" opacity="0.85"><title>{}</title></rect>"#,
                        y + 3.0,
                        ROW - 6.0,
                        escape(e["name"].as_str().unwrap_or(""))
                    );
                    if w > 40.0 {
                        let _ = write!(
                            svg,
                            r#"<text x="{:.1}" y="{:.1}" fill="white">{}</text>"#,
                            a + 3.0,
                            y + 17.0,
                            escape(e["name"].as_str().unwrap_or(""))
                        );
                    }
                }
                Some("C") => {
                    let next = events
                        .get(i + 1)
                        .and_then(|n| n["ts"].as_f64())
                        .unwrap_or(ts + 200_000.0);
                    let v = e["args"]["messages_per_s"].as_f64().unwrap_or(0.0) / max;
                    let h = (ROW - 6.0) * v;
                    let _ = write!(
                        svg,
                        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#888"/>"##,
                        x(ts),
                        y + ROW - 3.0 - h,
                        (x(next) - x(ts)).max(1.0)
                    );
                }
                _ => {
                    let _ = write!(
                        svg,
                        r#"<path d="M{:.1} {:.1} l5 8 l-10 0 z" fill="black"><title>{}</title></path>"#,
                        x(ts),
                        y + 8.0,
                        escape(e["name"].as_str().unwrap_or(""))
                    );
                }
            }
        }
        y += ROW;
    }
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{:.1}">0 ms</text><text x="{:.1}" y="{:.1}" text-anchor="end">{:.1} ms</text></svg>"#,
        y + 18.0,
        WIDTH - 20.0,
        y + 18.0,
        (t1 - t0) / 1000.0
    );
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
