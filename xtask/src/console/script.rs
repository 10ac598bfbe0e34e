//! `cargo xtask run --script FILE`: console commands, one a line, run without a person.
//!
//! Besides the console's commands a script may use:
//!
//! | line | succeeds when |
//! |---|---|
//! | `# ...` | (a comment) |
//! | `wait-output PATTERN TIMEOUT_S` | a console line after the previous wait's match contains PATTERN (the rest of the line but the last word) |
//! | `wait-migration PID TIMEOUT_S` | some cluster holds a successful migration record of PID |
//! | `expect-error COMMAND` | COMMAND fails (bad commands, bad pids) |
//! | `expect-ps PID CLUSTER` | `ps` shows PID on CLUSTER |
//! | `expect-migrations N` | the machine holds N migration records |
//! | `expect-link-traffic SRC DST` | every link of the XY route SRC → DST has carried messages |
//!
//! `$pid` stands for the pid the latest `spawn` answered. The run's exit status is 0 only
//! if every line succeeded (and the machine shut down).

use std::time::{Duration, Instant};

use super::{noc_map, Answer, Console};

/// Runs the script; returns (lines that succeeded, lines that failed).
pub fn run(console: &Console, text: &str) -> (usize, usize) {
    let (mut ok, mut failed) = (0, 0);
    let mut mark = console.view.mark();
    let mut shut_down = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pid = console
            .last_pid
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .unwrap_or_default();
        let line = line.replace("$pid", &pid);
        console.view.say(&format!("console> {line}"));
        let answer = step(console, &line, &mut mark);
        match answer {
            Ok(text) => {
                ok += 1;
                if !text.is_empty() {
                    console.view.say(&text);
                }
            }
            Err(error) => {
                failed += 1;
                console
                    .view
                    .say(&format!("error: {error}\nconsole: FAILED: {line}"));
            }
        }
        shut_down |= line == "shutdown";
    }
    if !shut_down {
        console.view.say("console> shutdown (end of script)");
        if console.execute("shutdown").is_err() {
            failed += 1;
        }
    }
    (ok, failed)
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|_| format!("bad timeout `{text}` (seconds)"))
}

fn step(console: &Console, line: &str, mark: &mut u64) -> Answer {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["wait-output", pattern @ .., timeout] if !pattern.is_empty() => {
            let pattern = pattern.join(" ");
            let deadline = Instant::now() + seconds(timeout)?;
            match console.view.wait_for(*mark, &pattern, deadline) {
                Some((seq, k, text)) => {
                    *mark = seq;
                    Ok(format!("seen on c{k}: {text}"))
                }
                None => Err(format!("no line with `{pattern}` within {timeout} s")),
            }
        }
        ["wait-migration", pid, timeout] => {
            let deadline = Instant::now() + seconds(timeout)?;
            loop {
                let (records, _) = console.all_migrations();
                if let Some(r) = records.iter().find(|r| r.pid == *pid && r.status == "ok") {
                    return Ok(format!("migrated: {}", r.describe()));
                }
                if Instant::now() > deadline {
                    return Err(format!("no migration of {pid} within {timeout} s"));
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        ["expect-error", command @ ..] => match console.execute(&command.join(" ")) {
            Ok(text) => Err(format!("expected an error, got: {text}")),
            Err(error) => Ok(format!("error as expected: {error}")),
        },
        ["expect-ps", pid, cluster] => {
            let table = console.execute("ps")?;
            let found = table.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(pid) && f.get(2) == Some(cluster)
            });
            if found {
                Ok(table)
            } else {
                Err(format!(
                    "ps does not show {pid} on cluster {cluster}:\n{table}"
                ))
            }
        }
        ["expect-migrations", n] => {
            let (records, silent) = console.all_migrations();
            let text = console.execute("migrations")?;
            if records.len().to_string() == *n && silent.is_empty() {
                Ok(text)
            } else {
                Err(format!("expected {n} migration records:\n{text}"))
            }
        }
        ["expect-link-traffic", src, dst] => {
            let (src, dst) = (console.cluster_arg(src)?, console.cluster_arg(dst)?);
            let stats = noc_map::stats(&console.control)?;
            let links = noc_map::link_counters(&stats);
            let path = noc_map::xy_path(console.clusters(), src, dst);
            let idle: Vec<&String> = path
                .iter()
                .filter(|l| links.get(*l).is_none_or(|(m, _)| *m == 0))
                .collect();
            let map = noc_map::render(&stats);
            if idle.is_empty() {
                Ok(format!(
                    "{map}every link of c{src} -> c{dst} ({}) carried traffic",
                    path.join(", ")
                ))
            } else {
                Err(format!("{map}idle links on c{src} -> c{dst}: {idle:?}"))
            }
        }
        _ => console.execute(line),
    }
}
