//! The scripted machine-console session of `cargo xtask test` (`xtask/scripts/console-session.txt`):
//! boot 4 clusters, spawn, migrate, list, read the NoC, get errors right, trace, shut down.
//! One verdict: the script succeeded, the run exited 0, no QEMU or noc-sim is left, and the
//! trace is valid Chrome trace JSON.

use anyhow::{Context, Result};

use crate::console::session::{alive, run, Session};
use crate::image::{self, workspace_root, Kernel};

/// Runs the session; Ok(Err(reason)) is a failed verdict.
pub fn console_session(accel: crate::qemu::Accel) -> Result<Result<String, String>> {
    let image = image::build_image(Kernel::Production, false)?;
    let script_path = workspace_root().join("xtask/scripts/console-session.txt");
    let script = std::fs::read_to_string(&script_path)
        .with_context(|| format!("reading {}", script_path.display()))?;
    let trace_path = workspace_root().join("target/tessera/console-trace.json");
    let _ = std::fs::remove_file(&trace_path);
    let cmdline = |_k: usize| String::new();
    let session = Session {
        name: "console",
        clusters: 4,
        image: &image,
        accel,
        cmdline: &cmdline,
        script: Some(script),
        quiet: true,
        gdb: None,
        timeout: Some(240),
        debug: false,
    };
    // The script runs from the workspace root (its trace path is relative to it).
    std::env::set_current_dir(workspace_root())?;
    let ended = run(&session)?;
    if ended.status != 0 {
        return Ok(Err(format!(
            "the session ended with status {}",
            ended.status
        )));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let left: Vec<u32> = ended.pids.iter().copied().filter(|p| alive(*p)).collect();
    if !left.is_empty() {
        return Ok(Err(format!("host processes left running: {left:?}")));
    }
    let text = std::fs::read_to_string(&trace_path)
        .with_context(|| format!("reading {}", trace_path.display()))?;
    let trace: serde_json::Value = match serde_json::from_str(&text) {
        Ok(trace) => trace,
        Err(error) => return Ok(Err(format!("the trace is not JSON: {error}"))),
    };
    let events = match crate::console::trace::check(&trace) {
        Ok(n) => n,
        Err(error) => return Ok(Err(format!("the trace is not a Chrome trace: {error}"))),
    };
    let migrations = crate::console::trace::migration_spans(&trace);
    if migrations != 1 {
        return Ok(Err(format!(
            "the trace holds {migrations} migration spans, not 1"
        )));
    }
    Ok(Ok(format!(
        "exit 0, nothing left running, trace of {events} events"
    )))
}
