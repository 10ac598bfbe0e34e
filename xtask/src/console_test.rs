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
    // The stop-and-copy move, the pre-copy one and the pre-copy that may throttle.
    if migrations != 3 {
        return Ok(Err(format!(
            "the trace holds {migrations} migration spans, not 3"
        )));
    }
    let console_c1 = image::output_dir()?.join("logs").join("console-c1.log");
    let text = std::fs::read_to_string(&console_c1)
        .with_context(|| format!("reading {}", console_c1.display()))?;
    if let Err(error) = long_lines_whole(&text, LONG_LINES, LONG_LINE_BYTES) {
        return Ok(Err(format!("{error} (see {})", console_c1.display())));
    }
    Ok(Ok(format!(
        "exit 0, nothing left running, trace of {events} events, {LONG_LINES} lines of {LONG_LINE_BYTES} bytes whole"
    )))
}

/// What the script's `spawn lines 4096 4 @1` writes.
const LONG_LINES: usize = 4;
const LONG_LINE_BYTES: usize = 4096;

/// Line `k` of the `lines` app (`userland/apps/lines`): `Lk:`, then the letters
/// `a + (7 i + k) mod 26` up to `len` bytes.
fn long_line(k: usize, len: usize) -> String {
    let mut line = format!("L{k}:");
    line.truncate(len);
    for i in line.len()..len {
        line.push((b'a' + ((7 * i + k) % 26) as u8) as char);
    }
    line
}

/// Every line of `lines` is on the console as one `[pPID lines] ...` line, every byte there.
fn long_lines_whole(console: &str, count: usize, len: usize) -> Result<(), String> {
    for k in 0..count {
        let expected = long_line(k, len);
        let whole = console.lines().any(|l| {
            l.strip_suffix(expected.as_str())
                .is_some_and(|tag| tag.starts_with("[p") && tag.ends_with(" lines] "))
        });
        if !whole {
            let pieces = console
                .lines()
                .filter(|l| l.contains(&format!("L{k}:")))
                .count();
            return Err(format!(
                "line {k} of `lines` ({len} bytes) is not on the console whole ({pieces} line(s) start it)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_checked_byte_for_byte() {
        let lines: Vec<String> = (0..2)
            .map(|k| format!("[p1.1 lines] {}", long_line(k, 300)))
            .collect();
        assert!(long_line(1, 300).starts_with("L1:wdk"));
        assert_eq!(long_line(1, 300).len(), 300);
        let whole = lines.join("\n");
        assert!(long_lines_whole(&whole, 2, 300).is_ok());
        // Split in two tagged lines, as the kernel printed lines over 200 bytes.
        let split = format!("{}\n[p1.1 lines] {}", &lines[0][..213], &lines[0][213..]);
        assert!(long_lines_whole(&split, 1, 300).is_err());
        // One byte changed or missing.
        let changed = lines[1].replacen("L1:wdk", "L1:wdz", 1);
        assert!(long_lines_whole(&changed, 2, 300).is_err());
        assert!(long_lines_whole(&lines[0][..lines[0].len() - 1], 1, 300).is_err());
    }
}
