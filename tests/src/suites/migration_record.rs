//! The migration record as a program reads it: `migstat`, a user program on this cluster
//! (which keeps the records of the moves that leave it), prints what `migration_stats_ex`
//! returned, and these tests check that the figures add up once the record is complete —
//! after post-copy and hybrid, the pages that stayed behind all came, pulled or pushed, and
//! a wait was timed only for pulled pages; after pre-copy, the rounds add up to the phase.
//! Part of the `migration_live` suite (cluster 0 drives).

use abi::{Pid, Strategy};
use alloc::collections::BTreeMap;
use alloc::string::String;
use kernel::process::{console_history, with_table};

use super::migration_noc::{exit_code, move_by, move_to, run_until, spawn_case};
use crate::{ensure, ensure_eq};

/// One `MIGREC` line of `migstat`: its numeric fields by name, and `round_pages`.
pub(super) struct Printed {
    fields: BTreeMap<String, u64>,
    round_pages: alloc::vec::Vec<u64>,
}

impl Printed {
    pub(super) fn get(&self, key: &str) -> Result<u64, String> {
        self.fields
            .get(key)
            .copied()
            .ok_or_else(|| alloc::format!("no {key} in the record"))
    }
}

/// Waits until the latest record of `pid` here is complete (post-copy: its destination
/// reported), then reads it back through `migstat`.
fn complete_record_of(pid: Pid, strategy: Strategy) -> Result<Printed, String> {
    let complete = || {
        kernel::migstats::recent()
            .iter()
            .rev()
            .find(|r| r.pid == pid)
            .is_some_and(|r| r.phases.complete)
    };
    run_until("a complete record", complete)?;
    let printed = read_back(pid)?;
    ensure_eq!(printed.get("strategy_number")?, strategy as u64);
    ensure_eq!(printed.get("failed")?, 0);
    ensure_eq!(printed.get("complete")?, 1);
    Ok(printed)
}

/// The latest record of `pid` as `migstat` prints it.
pub(super) fn read_back(pid: Pid) -> Result<Printed, String> {
    let raw = alloc::format!("{}", pid.raw());
    let reader = with_table(|t| t.spawn("migstat", &[&raw], None))
        .map_err(|e| alloc::format!("spawn migstat: {e:?}"))?;
    ensure_eq!(exit_code(reader)?, 0);
    let lines = console_history(Some(reader));
    let line = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("MIGREC pid="))
        .ok_or_else(|| alloc::format!("migstat printed no record: {lines:?}"))?;
    parse(line)
}

fn parse(line: &str) -> Result<Printed, String> {
    let mut printed = Printed {
        fields: BTreeMap::new(),
        round_pages: alloc::vec::Vec::new(),
    };
    for word in line.split_whitespace().skip(1) {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "strategy" => {
                let strategy =
                    Strategy::from_name(value).ok_or_else(|| alloc::format!("strategy {value}"))?;
                printed
                    .fields
                    .insert("strategy_number".into(), strategy as u64);
            }
            "round_pages" => {
                for pages in value.split(',').filter(|p| !p.is_empty()) {
                    let pages = pages.parse().map_err(|_| alloc::format!("round {pages}"))?;
                    printed.round_pages.push(pages);
                }
            }
            _ => {
                let value = value
                    .parse()
                    .map_err(|_| alloc::format!("{key}={value} is not a number"))?;
                printed.fields.insert(key.into(), value);
            }
        }
    }
    Ok(printed)
}

/// What every complete record of a move that succeeded must satisfy.
fn adds_up(r: &Printed) -> Result<(), String> {
    let phases = r.get("precopy_pages")?
        + r.get("stop_pages")?
        + r.get("pulled_pages")?
        + r.get("pushed_pages")?;
    ensure_eq!(r.get("pages")?, phases);
    let phase_bytes = r.get("precopy_bytes")?
        + r.get("stop_bytes")?
        + r.get("pulled_bytes")?
        + r.get("pushed_bytes")?;
    ensure_eq!(r.get("bytes")?, phase_bytes);
    ensure!(
        r.get("link_bytes")? >= r.get("bytes")?,
        "link bytes {} under the bytes moved {}",
        r.get("link_bytes")?,
        r.get("bytes")?
    );
    let rounds: u64 = r.round_pages.iter().sum();
    ensure_eq!(r.round_pages.len() as u64, r.get("rounds")?);
    ensure_eq!(rounds, r.get("precopy_pages")?);
    Ok(())
}

/// Post-copy's figures: every page that stayed behind came, pulled or pushed; a pulled page
/// means a thread waited.
fn postcopy_adds_up(r: &Printed) -> Result<(), String> {
    adds_up(r)?;
    let (pulled, pushed) = (r.get("pulled_pages")?, r.get("pushed_pages")?);
    let remote = r.get("remote_pages")?;
    ensure!(remote > 0, "no page stayed behind");
    ensure_eq!(r.get("cut_short")?, 0);
    ensure_eq!(pulled + pushed, remote);
    ensure!(
        pulled == 0 || r.get("fault_wait_ns")? > 0,
        "{pulled} pages pulled with no wait"
    );
    ensure!(r.get("residual_ns")? > 0, "no residual time");
    Ok(())
}

/// A post-copy of a process that keeps writing its memory: it stays there (two moves to go)
/// until its record is complete and checked, then comes home intact.
pub fn a_postcopy_record_read_by_syscall_adds_up() -> Result<(), String> {
    let pid = spawn_case("dirty", 2)?;
    move_by(pid, 1, Strategy::PostCopy)?;
    let record = complete_record_of(pid, Strategy::PostCopy)?;
    postcopy_adds_up(&record)?;
    ensure_eq!(record.get("rounds")?, 0);
    move_to(pid, 0)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// Hybrid: one round, then post-copy of what the process wrote since.
pub fn a_hybrid_record_read_by_syscall_adds_up() -> Result<(), String> {
    let pid = spawn_case("dirty", 2)?;
    move_by(pid, 3, Strategy::Hybrid)?;
    let record = complete_record_of(pid, Strategy::Hybrid)?;
    postcopy_adds_up(&record)?;
    ensure_eq!(record.get("rounds")?, 1);
    ensure!(
        record.get("precopy_pages")? >= 1024,
        "the round sent too little"
    );
    move_to(pid, 0)?;
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// Pre-copy: complete at once, its rounds' pages sum to its pre-copy phase, nothing pulled.
pub fn a_precopy_record_read_by_syscall_sums_its_rounds() -> Result<(), String> {
    let pid = spawn_case("dirty", 1)?;
    move_by(pid, 2, Strategy::PreCopy)?;
    let record = complete_record_of(pid, Strategy::PreCopy)?;
    adds_up(&record)?;
    ensure!(record.get("rounds")? >= 1, "no round");
    ensure!(
        record.get("precopy_pages")? >= 1024,
        "the rounds sent too little"
    );
    for empty in [
        "remote_pages",
        "pulled_pages",
        "pushed_pages",
        "fault_wait_ns",
    ] {
        ensure_eq!(record.get(empty)?, 0);
    }
    ensure_eq!(exit_code(pid)?, 0);
    Ok(())
}

/// A post-copy report that matches no record waiting for one (here: a process that never
/// left) is rejected and counted, and changes no record.
pub fn a_postcopy_report_that_matches_nothing_is_rejected() -> Result<(), String> {
    let before = kernel::migstats::rejected_reports();
    let records = kernel::migstats::recent();
    let stranger = Pid::new(abi::ClusterId(0), Pid::MAX_LOCAL).ok_or("no pid")?;
    let report = multikernel_proto::message::PostCopyReport {
        pid: stranger,
        whole: true,
        pulled: 1,
        pushed: 1,
        fault_wait_ns: 1,
        residual_ns: 1,
        link_bytes: 1,
    };
    multikernel::migration::stats::postcopy_report(abi::ClusterId(1), &report);
    ensure_eq!(kernel::migstats::rejected_reports(), before + 1);
    ensure!(
        kernel::migstats::recent() == records,
        "a rejected report changed a record"
    );
    Ok(())
}

/// Until the destination reports, a reader sees the post-copy fields 0 and the record not
/// complete; a process that ends there first completes it cut short. The router drops every
/// allowance the destination gives on the post-copy pages portal (and their
/// re-announcements) until the process is killed, so no page can come.
pub fn a_postcopy_record_reads_incomplete_then_cut_short() -> Result<(), String> {
    let pid = spawn_case("dirty", 2)?;
    crate::suites::migration_atomic::arm_router(&alloc::format!(
        "drop 1000000 1 0 {} *",
        multikernel_proto::ports::POSTCOPY_PAGES
    ))?;
    move_by(pid, 1, Strategy::PostCopy)?;
    let recorded = || {
        kernel::migstats::recent()
            .iter()
            .any(|r| r.pid == pid && r.failure.is_none())
    };
    run_until("the record", recorded)?;
    let waiting = read_back(pid)?;
    ensure_eq!(waiting.get("complete")?, 0);
    ensure!(waiting.get("remote_pages")? > 0, "no page stayed behind");
    for zero in [
        "pulled_pages",
        "pushed_pages",
        "fault_wait_ns",
        "residual_ns",
    ] {
        ensure_eq!(waiting.get(zero)?, 0);
    }
    ensure_eq!(waiting.get("pages")?, waiting.get("stop_pages")?);
    kernel::requests::post(kernel::requests::Request::Kill(pid));
    ensure_eq!(exit_code(pid)?, kernel::process::KILLED_EXIT_CODE);
    crate::suites::migration_atomic::arm_router("drop 0 * * * *")?;
    let ended = complete_record_of(pid, Strategy::PostCopy)?;
    ensure_eq!(ended.get("cut_short")?, 1);
    ensure_eq!(ended.get("pulled_pages")? + ended.get("pushed_pages")?, 0);
    adds_up(&ended)
}
