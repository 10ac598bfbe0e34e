//! The console's commands, each over the monitor's machine-readable requests.

use std::time::{Duration, Instant};

use super::hub::Reply;
use super::{describe, noc_map, trace, Answer, Console, ANSWER_TIMEOUT};

/// How long `migrate` waits for the outcome.
pub const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// One migration record as the monitor's `migrations` rows give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRow {
    pub pid: String,
    pub source: String,
    pub destination: String,
    pub status: String,
    /// preparation, downtime, resume, total (µs), pages, bytes.
    pub numbers: [u64; 6],
}

impl MigrationRow {
    fn parse(row: &[String]) -> Option<MigrationRow> {
        let [pid, source, destination, status, rest @ ..] = row else {
            return None;
        };
        let numbers: Vec<u64> = rest.iter().filter_map(|n| n.parse().ok()).collect();
        Some(MigrationRow {
            pid: pid.clone(),
            source: source.clone(),
            destination: destination.clone(),
            status: status.clone(),
            numbers: numbers.try_into().ok()?,
        })
    }

    pub fn describe(&self) -> String {
        let [prep, down, resume, total, pages, bytes] = self.numbers;
        format!(
            "{:<7} c{}->c{}  {:<10} total {total:>8} us  downtime {down:>8} us  preparation {prep:>7} us  resume {resume:>7} us  {pages:>6} pages {bytes:>9} B",
            self.pid, self.source, self.destination, self.status
        )
    }
}

impl Console {
    pub(super) fn ps(&self) -> Answer {
        let mut text = format!(
            "{:<8} {:<16} {:>7} {:<8} {:>7} {:>10} {:>8}\n",
            "PID", "NAME", "CLUSTER", "STATE", "THREADS", "MEM KiB", "CPU ms"
        );
        let mut silent = Vec::new();
        for (k, answer) in self
            .hub
            .ask_all("ps", ANSWER_TIMEOUT)
            .into_iter()
            .enumerate()
        {
            match answer {
                Ok(reply) => {
                    for row in reply.rows {
                        if let [pid, _parent, name, threads, state, cpu, kib] = row.as_slice() {
                            text.push_str(&format!(
                                "{pid:<8} {name:<16} {k:>7} {state:<8} {threads:>7} {kib:>10} {cpu:>8}\n"
                            ));
                        }
                    }
                }
                Err(error) => silent.push(format!("c{k}: {}", describe(k, error))),
            }
        }
        for line in &silent {
            text.push_str(&format!("(no answer) {line}\n"));
        }
        Ok(text)
    }

    pub(super) fn spawn(&self, args: &[&str]) -> Answer {
        let (cluster, args) = match args.split_last() {
            Some((last, rest)) if last.starts_with('@') => (self.cluster_arg(&last[1..])?, rest),
            _ => (0, args),
        };
        let Some(app) = args.first() else {
            return Err("usage: spawn APP [ARGS] [@CLUSTER]".into());
        };
        if !self.programs.iter().any(|p| p == app) {
            return Err(format!(
                "no program `{app}`; the programs are: {}",
                self.programs.join(", ")
            ));
        }
        let reply = self.ask(cluster, &format!("spawn {}", args.join(" ")))?;
        *self.last_pid.lock().map_err(|_| "poisoned")? = Some(reply.text.clone());
        Ok(format!("started {app} as {} on c{cluster}", reply.text))
    }

    /// Where a pid lives, asked of its birth cluster.
    pub fn locate(&self, pid: &str) -> Result<usize, String> {
        let home = pid
            .split_once('.')
            .and_then(|(c, n)| Some((c.parse::<usize>().ok()?, n.parse::<u32>().ok()?)))
            .map(|(c, _)| c)
            .ok_or_else(|| format!("bad pid `{pid}` (expected CLUSTER.N, e.g. 0.2)"))?;
        if home >= self.clusters() {
            return Err(format!("no such pid {pid}: there is no cluster {home}"));
        }
        let reply = self.ask(home, &format!("where {pid}"))?;
        reply
            .text
            .parse()
            .map_err(|_| format!("c{home} answered `{}`", reply.text))
    }

    pub(super) fn kill(&self, args: &[&str]) -> Answer {
        let [pid] = args else {
            return Err("usage: kill PID".into());
        };
        let at = self.locate(pid)?;
        let home: usize = pid
            .split('.')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        self.ask(home, &format!("kill {pid}"))?;
        Ok(format!("killed {pid} (it lived on c{at})"))
    }

    pub(super) fn migrate(&self, args: &[&str]) -> Answer {
        const USAGE: &str =
            "usage: migrate PID CLUSTER [--strategy stop|pre|post|hybrid] [--throttle [PCT]]";
        let (pid, cluster, strategy, throttle) = match args {
            [pid, cluster] => (pid, cluster, "stop", None),
            [pid, cluster, "--strategy", strategy] => (pid, cluster, *strategy, None),
            [pid, cluster, "--strategy", strategy, "--throttle"] => {
                (pid, cluster, *strategy, Some("throttle".to_string()))
            }
            [pid, cluster, "--strategy", strategy, "--throttle", pct] => {
                (pid, cluster, *strategy, Some(format!("throttle={pct}")))
            }
            _ => return Err(USAGE.into()),
        };
        if throttle.is_some() && !["pre", "pre-copy"].contains(&strategy) {
            return Err("--throttle goes with --strategy pre (it slows pre-copy's process)".into());
        }
        if ![
            "stop",
            "stop-and-copy",
            "pre",
            "pre-copy",
            "post",
            "post-copy",
        ]
        .contains(&strategy)
        {
            return Err(format!(
                "unknown strategy {strategy} (stop, pre, post, hybrid)"
            ));
        }
        let destination = self.cluster_arg(cluster)?;
        let source = self.locate(pid)?;
        if source == destination {
            return Err(format!("{pid} is already on c{destination}"));
        }
        let before = self.records_of(source, pid)?;
        let throttle = throttle.map_or(String::new(), |t| format!(" {t}"));
        self.ask(
            source,
            &format!("migrate {pid} {destination} {strategy}{throttle}"),
        )?;
        let deadline = Instant::now() + MIGRATION_TIMEOUT;
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let outcome = self.ask(source, &format!("outcome {pid}"))?.text;
            if !outcome.starts_with("pending") {
                let records = self.records_of(source, pid)?;
                if records.len() > before.len() {
                    let record = records.last().cloned().ok_or("no record")?;
                    if record.status == "ok" {
                        return Ok(format!("migrated: {}", record.describe()));
                    }
                    return Err(format!("migration failed: {}", record.describe()));
                }
                if let Some(error) = outcome.strip_prefix("failed ") {
                    return Err(format!("migration of {pid} refused: {error}"));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no outcome for {pid} after {} s (last: {outcome})",
                    MIGRATION_TIMEOUT.as_secs()
                ));
            }
        }
    }

    fn records_of(&self, cluster: usize, pid: &str) -> Result<Vec<MigrationRow>, String> {
        let reply = self.ask(cluster, "migrations")?;
        Ok(rows(&reply).into_iter().filter(|r| r.pid == pid).collect())
    }

    /// Every cluster's records (each keeps those that left it); the silent clusters.
    pub fn all_migrations(&self) -> (Vec<MigrationRow>, Vec<String>) {
        let (mut all, mut silent) = (Vec::new(), Vec::new());
        for (k, answer) in self
            .hub
            .ask_all("migrations", ANSWER_TIMEOUT)
            .into_iter()
            .enumerate()
        {
            match answer {
                Ok(reply) => all.extend(rows(&reply)),
                Err(error) => silent.push(format!("c{k}: {}", describe(k, error))),
            }
        }
        (all, silent)
    }

    pub(super) fn migrations(&self) -> Answer {
        let (all, silent) = self.all_migrations();
        let mut text = format!("{} migration(s)\n", all.len());
        for record in &all {
            text.push_str(&record.describe());
            text.push('\n');
        }
        for line in silent {
            text.push_str(&format!("(no answer) {line}\n"));
        }
        Ok(text)
    }

    pub(super) fn noc(&self) -> Answer {
        let stats = noc_map::stats(&self.control)?;
        Ok(noc_map::render(&stats))
    }

    pub(super) fn log(&self, args: &[&str]) -> Answer {
        match args {
            ["all"] => self.view.show_only(None, true),
            ["none"] => self.view.show_only(None, false),
            [k] => self.view.show_only(Some(self.cluster_arg(k)?), false),
            [] => {}
            _ => return Err("usage: log CLUSTER|all|none".into()),
        }
        let shown: Vec<String> = self
            .view
            .shown()
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(k, _)| format!("c{k}"))
            .collect();
        Ok(format!(
            "showing the output of: {}",
            if shown.is_empty() {
                "none".into()
            } else {
                shown.join(" ")
            }
        ))
    }

    pub(super) fn trace(&self, args: &[&str]) -> Answer {
        let mut slot = self.trace.lock().map_err(|_| "poisoned")?;
        match args {
            ["start", file] => {
                if slot.is_some() {
                    return Err("a trace is already recording; `trace stop` first".into());
                }
                *slot = Some(trace::Recorder::start(
                    file.into(),
                    self.view.mark(),
                    &self.control,
                    std::time::Duration::from_millis(200),
                )?);
                Ok(format!(
                    "recording the machine's events; `trace stop` writes {file}"
                ))
            }
            ["stop"] | ["stop", _] => {
                let recorder = slot.take().ok_or("no trace is recording")?;
                drop(slot);
                let (migrations, _) = self.all_migrations();
                recorder.finish(&self.view, migrations.len())
            }
            _ => Err("usage: trace start FILE | trace stop".into()),
        }
    }

    pub(super) fn shutdown(&self) -> Answer {
        let answers = self.hub.ask_all("poweroff", ANSWER_TIMEOUT);
        let silent: Vec<String> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_err())
            .map(|(k, _)| format!("c{k}"))
            .collect();
        if silent.is_empty() {
            Ok(format!("powering off all {} clusters", answers.len()))
        } else {
            Err(format!(
                "powering off; no answer from {} (they will be stopped)",
                silent.join(" ")
            ))
        }
    }
}

fn rows(reply: &Reply) -> Vec<MigrationRow> {
    reply
        .rows
        .iter()
        .filter_map(|r| MigrationRow::parse(r))
        .collect()
}
