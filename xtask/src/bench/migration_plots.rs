//! The migration bench's SVG plots (`--plots DIR`), drawn with `plotters` from the report's
//! summary, so a plot shows exactly the numbers the JSON holds:
//! `downtime_vs_size.svg`, `total_vs_size.svg` (the `memtouch` grid, one line per strategy
//! and dirty rate, log size axis), `pages_by_phase.svg` (pages sent while the process ran
//! vs stopped, and pulled on demand where a strategy does that; one panel per dirty rate)
//! and `degradation.svg` (`mgs 1000` run time with one migration vs without).

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

use super::migration_report::{strategies, KNOWN_STRATEGIES};

/// The plot files, as README names them.
pub const FILES: [&str; 4] = [
    "downtime_vs_size.svg",
    "total_vs_size.svg",
    "pages_by_phase.svg",
    "degradation.svg",
];

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A strategy's colour: fixed for the known ones, so every plot agrees.
fn colour(strategy: &str, all: &[String]) -> RGBColor {
    let index = KNOWN_STRATEGIES
        .iter()
        .position(|s| *s == strategy)
        .or_else(|| all.iter().position(|s| s == strategy).map(|i| i + 4))
        .unwrap_or(5);
    PALETTE[index % PALETTE.len()]
}

fn plot_error<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow!("drawing: {error:?}")
}

/// The `memtouch` rows of the summary.
fn grid(summary: &[Value]) -> Vec<&Value> {
    summary
        .iter()
        .filter(|s| s["touched_bytes"].is_u64() && s["rate_pages_s"].is_u64())
        .collect()
}

fn rates(grid: &[&Value]) -> Vec<u64> {
    let mut rates: Vec<u64> = grid
        .iter()
        .filter_map(|s| s["rate_pages_s"].as_u64())
        .collect();
    rates.sort_unstable();
    rates.dedup();
    rates
}

fn rate_label(pages_s: u64) -> String {
    match pages_s {
        0 => "idle".into(),
        p => format!("{} MiB/s", p * 4096 / (1 << 20)),
    }
}

/// Writes every plot into `dir`; returns the files written.
pub fn write_all(dir: &Path, summary: &[Value], degradation: &[Value]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = |name: &str| dir.join(name);
    time_vs_size(&path(FILES[0]), summary, "median_downtime_us", "downtime")?;
    time_vs_size(
        &path(FILES[1]),
        summary,
        "median_total_us",
        "total migration time",
    )?;
    pages_by_phase(&path(FILES[2]), summary)?;
    degradation_bars(&path(FILES[3]), degradation)?;
    Ok(FILES.iter().map(|f| path(f)).collect())
}

fn time_vs_size(file: &Path, summary: &[Value], key: &str, what: &str) -> Result<()> {
    let grid = grid(summary);
    let all = strategies(summary);
    let ms = |s: &Value| s[key].as_u64().unwrap_or(0) as f64 / 1000.0;
    let kib = |s: &Value| s["touched_bytes"].as_u64().unwrap_or(0) as f64 / 1024.0;
    let y_max = grid.iter().map(|s| ms(s)).fold(1.0, f64::max) * 1.1;
    let x_min = grid
        .iter()
        .map(|s| kib(s))
        .fold(f64::MAX, f64::min)
        .min(64.0);
    let x_max = grid.iter().map(|s| kib(s)).fold(1.0, f64::max).max(128.0);
    let root = SVGBackend::new(file, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("memtouch: {what} vs touched memory, per strategy and dirty rate"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d((x_min * 0.8..x_max * 1.25).log_scale(), 0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("touched memory (KiB, log scale)")
        .y_desc(format!("{what} (ms)"))
        .draw()
        .map_err(plot_error)?;
    for strategy in &all {
        for (n, rate) in rates(&grid).into_iter().enumerate() {
            let mut points: Vec<(f64, f64)> = grid
                .iter()
                .filter(|s| s["strategy"] == strategy.as_str() && s["rate_pages_s"] == rate)
                .map(|s| (kib(s), ms(s)))
                .collect();
            if points.is_empty() {
                continue;
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let style = ShapeStyle {
                color: colour(strategy, &all).to_rgba(),
                filled: true,
                stroke_width: 3 - n.min(2) as u32,
            };
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(plot_error)?
                .label(format!("{strategy}, {}", rate_label(rate)))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3 + n as i32, style)))
                .map_err(plot_error)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

/// Pages of one summary row per phase: (label, pages).
fn phases(row: &Value) -> Vec<(&'static str, u64)> {
    let n = |k: &str| row[k].as_u64().unwrap_or(0);
    let (pushed, pulled) = (n("pages_pushed"), n("pages_pulled"));
    let stopped = n("pages").saturating_sub(pushed + pulled);
    let mut out = vec![("while running", pushed), ("stopped", stopped)];
    if row["pages_pulled"].is_u64() {
        out.push(("pulled on demand", pulled));
    }
    out
}

fn pages_by_phase(file: &Path, summary: &[Value]) -> Result<()> {
    let grid = grid(summary);
    let rates = rates(&grid);
    let root = SVGBackend::new(file, (1200, 360 * rates.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let panels = root.split_evenly((rates.len().max(1), 1));
    for (panel, rate) in panels.iter().zip(rates) {
        let rows: Vec<&Value> = grid
            .iter()
            .copied()
            .filter(|s| s["rate_pages_s"] == rate)
            .collect();
        phase_panel(panel, &rows, &rate_label(rate))?;
    }
    root.present().map_err(plot_error)
}

/// The x range of `n` categories, category i centred on i (so the ticks fall on them).
fn categories(n: usize) -> std::ops::Range<f64> {
    -0.5..n.max(1) as f64 - 0.5
}

/// The label of the category at tick `x` (none between categories).
fn category(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 0.01 && i >= 0.0 {
        labels.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

const PHASE_COLOURS: [RGBColor; 3] = [
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
];

/// Grouped bars: one group per (size, strategy), one bar per phase, log pages axis.
fn phase_panel(area: &DrawingArea<SVGBackend, Shift>, rows: &[&Value], rate: &str) -> Result<()> {
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            let kib = r["touched_bytes"].as_u64().unwrap_or(0) / 1024;
            let size = if kib >= 1024 {
                format!("{}M", kib / 1024)
            } else {
                format!("{kib}K")
            };
            format!("{size} {}", r["strategy"].as_str().unwrap_or("?"))
        })
        .collect();
    let y_max = rows
        .iter()
        .flat_map(|r| phases(r).into_iter().map(|(_, p)| p))
        .max()
        .unwrap_or(1)
        .max(10) as f64
        * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("pages by phase, dirty rate {rate}"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(categories(rows.len()), (0.8f64..y_max).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() + 1)
        .x_label_formatter(&|x| category(&labels, *x))
        .y_desc("pages (log)")
        .draw()
        .map_err(plot_error)?;
    let mut legend_done = [false; 3];
    for (i, row) in rows.iter().enumerate() {
        let bars = phases(row);
        let width = 0.8 / bars.len() as f64;
        for (b, (label, pages)) in bars.into_iter().enumerate() {
            let x0 = i as f64 - 0.4 + b as f64 * width;
            let colour = PHASE_COLOURS[b % PHASE_COLOURS.len()];
            let bar = Rectangle::new(
                [(x0, 0.8), (x0 + width * 0.9, (pages as f64).max(0.8))],
                colour.filled(),
            );
            let series = chart.draw_series([bar]).map_err(plot_error)?;
            if !legend_done[b] {
                legend_done[b] = true;
                series.label(label).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

fn degradation_bars(file: &Path, rows: &[Value]) -> Result<()> {
    let all: Vec<String> = rows
        .iter()
        .filter_map(|r| r["strategy"].as_str().map(String::from))
        .collect();
    let pct = |r: &Value| r["degradation_pct"].as_f64().unwrap_or(0.0);
    let top = rows.iter().map(pct).fold(1.0, f64::max) * 1.2;
    let bottom = rows.iter().map(pct).fold(0.0, f64::min) * 1.2;
    let root = SVGBackend::new(file, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "mgs 1000: run time with one migration vs without",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(categories(all.len()), bottom..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(all.len() + 1)
        .x_label_formatter(&|x| category(&all, *x))
        .y_desc("degradation (%)")
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let strategy = r["strategy"].as_str().unwrap_or("?");
            Rectangle::new(
                [(i as f64 - 0.3, 0.0), (i as f64 + 0.3, pct(r))],
                colour(strategy, &all).filled(),
            )
        }))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn phases_split_the_pages_and_pulled_only_where_reported() {
        let pre = json!({"pages": 100, "pages_pushed": 70});
        assert_eq!(phases(&pre), [("while running", 70), ("stopped", 30)]);
        let post = json!({"pages": 100, "pages_pushed": 60, "pages_pulled": 10});
        assert_eq!(
            phases(&post),
            [
                ("while running", 60),
                ("stopped", 30),
                ("pulled on demand", 10)
            ]
        );
    }

    #[test]
    fn every_plot_is_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("tessera-plots-{}", std::process::id()));
        let mut summary = Vec::new();
        for (strategy, scale) in [("stop-and-copy", 1), ("pre-copy", 2)] {
            for kib in [64u64, 1024, 65536] {
                for rate in [0u64, 4096] {
                    summary.push(json!({"app": format!("memtouch-{kib}K-{rate}"), "strategy": strategy,
                        "touched_bytes": kib * 1024, "rate_pages_s": rate, "median_downtime_us": kib * 10 / scale,
                        "median_total_us": kib * 12, "pages": kib / 4, "pages_pushed": kib / 8 * (scale - 1)}));
                }
            }
        }
        let degradation = vec![
            json!({"strategy": "stop-and-copy", "degradation_pct": 2.5}),
            json!({"strategy": "pre-copy", "degradation_pct": -0.5}),
        ];
        let files = write_all(&dir, &summary, &degradation).unwrap();
        assert_eq!(files.len(), 4);
        for file in files {
            let svg = std::fs::read_to_string(&file).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("</svg>"),
                "{}",
                file.display()
            );
        }
        let downtime = std::fs::read_to_string(dir.join(FILES[0])).unwrap();
        assert!(downtime.contains("pre-copy, 16 MiB/s"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
