//! The report from made-up driver lines: parsing, link bytes, medians, degradation, the
//! QEMU ratios and the tables.

use super::*;

const STOP: &str = "MIGBENCH strategy=stop-and-copy app=mgs-1000 bytes=8073319 preparation_us=500 downtime_us=25000 resume_us=3000 total_us=25500 pages=1967 pages_pushed=0 rounds=0 dirty_rate_pages_s=0";

fn collect(lines: &[&str], counters: &[u64]) -> Collected {
    let mut collected = Collected::default();
    let mut counters = counters.iter().copied();
    for line in lines {
        collected.line(line, || counters.next());
    }
    collected
}

#[test]
fn a_bench_line_becomes_a_run_with_its_link_bytes() {
    let c = collect(
        &[
            "[c0] MIGSTART app=mgs-1000 strategy=stop-and-copy",
            &format!("[c0] {STOP}"),
            "test mgs ok",
        ],
        &[1_000, 8_100_000],
    );
    assert_eq!(c.runs.len(), 1);
    let run = &c.runs[0];
    assert_eq!(run["strategy"], "stop-and-copy");
    assert_eq!(run["app"], "mgs-1000");
    assert_eq!(run["downtime_us"], 25000);
    assert_eq!(run["pages_pushed"], 0);
    // A line without the record's link bytes: noc-sim's counter stands in.
    assert_eq!(run["link_bytes"], 8_099_000);
    assert_eq!(run["noc_hop_bytes"], 8_099_000);
}

#[test]
fn the_records_postcopy_figures_and_link_bytes_are_taken_as_they_are() {
    let post = "MIGBENCH strategy=post-copy app=mgs-1000 bytes=9000000 preparation_us=300 downtime_us=900 resume_us=400 total_us=1500 pages=2000 pages_pushed=1900 pages_precopy=0 pages_stop=20 rounds=0 dirty_rate_pages_s=0 link_bytes=9100000 pages_pulled=80 fault_wait_us=4000 residual_us=30000 pages_remote=1980";
    let c = collect(
        &["MIGSTART app=mgs-1000 strategy=post-copy", post],
        &[1_000, 9_201_000],
    );
    let run = &c.runs[0];
    assert_eq!(run["link_bytes"], 9_100_000, "the record's, not noc-sim's");
    assert_eq!(run["noc_hop_bytes"], 9_200_000);
    assert_eq!(run["pages_pulled"], 80);
    assert_eq!(run["pages_pushed"], 1900);
    assert_eq!(run["fault_wait_us"], 4000);
    let summary = summary(&c.runs, 1600);
    assert_eq!(summary[0]["pages_pulled"], 80);
    assert_eq!(summary[0]["fault_wait_us"], 4000);
    assert_eq!(summary[0]["link_bytes"], 9_100_000);
    assert_eq!(summary[0]["residual_us"], 30000);
}

#[test]
fn no_link_bytes_without_a_start_or_a_counter() {
    // No MIGSTART before it (a degradation move): no link bytes, the counter is not read.
    let c = collect(&[STOP], &[]);
    assert!(c.runs[0].get("link_bytes").is_none());
    // A start whose counter could not be read.
    let mut c = Collected::default();
    c.line("MIGSTART app=a strategy=s", || None);
    c.line(STOP, || Some(5));
    assert!(c.runs[0].get("link_bytes").is_none());
}

#[test]
fn strategies_known_first_then_new_ones_and_missing_ones_named() {
    let runs = vec![
        json!({"strategy": "warp", "app": "a"}),
        json!({"strategy": "pre-copy", "app": "a"}),
        json!({"strategy": "stop-and-copy", "app": "b"}),
    ];
    assert_eq!(strategies(&runs), ["stop-and-copy", "pre-copy", "warp"]);
    assert_eq!(not_measured(&runs), ["post-copy", "hybrid"]);
    assert_eq!(apps(&runs), ["a", "b"]);
}

#[test]
fn summary_takes_medians_per_app_and_strategy() {
    let runs: Vec<Value> = [3000u64, 1000, 2000]
        .iter()
        .map(|d| json!({"strategy": "pre-copy", "app": "x", "bytes": 1_600_000, "downtime_us": d, "total_us": d * 10, "rounds": 2}))
        .chain([json!({"strategy": "stop-and-copy", "app": "x", "bytes": 1_600_000, "downtime_us": 9000, "total_us": 9100})])
        .collect();
    let s = summary(&runs, 1600);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0]["strategy"], "stop-and-copy");
    let pre = &s[1];
    assert_eq!(pre["runs"], 3);
    assert_eq!(pre["median_downtime_us"], 2000);
    assert_eq!(pre["median_total_us"], 20000);
    assert_eq!(pre["rounds"], 2);
    assert_eq!(pre["link_limit_us"], 1000.0);
    assert!(pre.get("pages_pulled").is_none());
}

#[test]
fn degradation_is_against_the_run_without_a_migration() {
    let lines = vec![
        json!({"strategy": "none", "app": "mgs-1000", "run_us": 10_000_000, "downtime_us": 0}),
        json!({"strategy": "stop-and-copy", "app": "mgs-1000", "run_us": 10_500_000, "downtime_us": 30_000}),
        json!({"strategy": "pre-copy", "app": "mgs-1000", "run_us": 9_900_000, "downtime_us": 2_000}),
    ];
    let mut runs = vec![json!({"strategy": "stop-and-copy", "app": "mgs-1000-degradation"})];
    let rows = degradation(&lines, &mut runs);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["degradation_pct"], 5.0);
    assert_eq!(rows[1]["degradation_pct"], -1.0);
    assert_eq!(runs[0]["degradation_pct"], 5.0);
    // Without a baseline there is nothing to compare with.
    assert!(degradation(&lines[1..], &mut runs).is_empty());
    let table = degradation_table(&rows);
    assert!(table.contains("stop-and-copy") && table.contains("5.00%"));
}

#[test]
fn qemu_ratios_use_the_best_strategy_for_each_figure() {
    let summary = vec![
        json!({"app": "mgs-1000", "strategy": "stop-and-copy", "median_total_us": 25_000, "median_downtime_us": 24_000}),
        json!({"app": "mgs-1000", "strategy": "pre-copy", "median_total_us": 50_000, "median_downtime_us": 4_000}),
        json!({"app": "other", "strategy": "pre-copy", "median_total_us": 1, "median_downtime_us": 1}),
    ];
    let e = qemu_vm_entry("mgs-1000", 150_000, 20_000, &summary);
    assert_eq!(e["ratio_total"], 6.0);
    assert_eq!(e["tessera_best_total_strategy"], "stop-and-copy");
    assert_eq!(e["ratio_downtime"], 5.0);
    assert_eq!(e["tessera_best_downtime_strategy"], "pre-copy");
    // An app Tessera did not measure has no ratio.
    assert_eq!(
        qemu_vm_entry("none", 1, 1, &summary)["ratio_total"],
        Value::Null
    );
    assert!(qemu_table(&[e]).contains("6.00"));
}

#[test]
fn tables_put_the_references_next_to_the_figures() {
    let summary = vec![
        json!({"app": "nanvix-ref-352.8KB", "strategy": "stop-and-copy", "size_bytes": 366016, "median_total_us": 5100, "median_downtime_us": 4700}),
        json!({"app": "mgs-500", "strategy": "stop-and-copy", "size_bytes": 2060957, "median_total_us": 13400, "median_downtime_us": 12800}),
        json!({"app": "memtouch-64K-idle", "strategy": "pre-copy", "median_total_us": 900, "median_downtime_us": 400, "pages": 20, "pages_pushed": 17, "link_bytes": 90_000}),
    ];
    let strategies = vec!["stop-and-copy".to_string(), "pre-copy".to_string()];
    let reference = reference_table(&summary, &strategies);
    assert!(reference.contains("5.1 / 4.7"), "{reference}");
    assert!(reference.contains("Nanvix 226"));
    assert!(reference.contains("Gob. 206 (post 83)"));
    assert!(!reference.contains("memtouch"));
    let grid = grid_table(&summary, &strategies);
    assert!(
        grid.contains("memtouch-64K-idle") && grid.contains("0.09"),
        "{grid}"
    );
    assert_eq!(references()["gobelins_full_copy_ms"]["mgs-1250"], 320);
}
