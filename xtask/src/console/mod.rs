//! The machine console of `cargo xtask run`: one prompt for the whole machine.
//!
//! It talks to every cluster through its serial console, in the kernel monitor's
//! machine-readable mode ([`hub`]), and to noc-sim through its control socket (`noc`). The
//! commands are in [`commands`], the NoC heat map in [`noc_map`], the migration timeline in
//! [`trace`], the interactive line editor in [`repl`], `--script` in [`script`] and the boot
//! progress line in [`boot`].

pub mod boot;
pub mod commands;
pub mod hub;
pub mod noc_map;
pub mod repl;
pub mod script;
pub mod session;
pub mod trace;
pub mod trace_svg;
pub mod view;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub::{AskError, Hub};
use view::View;

/// How long a cluster may take to answer one request (TCG on a loaded host is slow).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The console's commands, for `help` and completion: (usage, what it does).
pub const COMMANDS: &[(&str, &str)] = &[
    ("help", "this list"),
    (
        "ps",
        "every process on every cluster (clusters that do not answer are marked)",
    ),
    (
        "spawn APP [ARGS] [@CLUSTER]",
        "start a program (on cluster 0 unless @CLUSTER)",
    ),
    (
        "migrate PID CLUSTER [--strategy stop|pre|post|hybrid] [--throttle [PCT]]",
        "move a process (pre-copy with --throttle slows it if it outruns the link); answers with the outcome and its record",
    ),
    ("kill PID", "stop a process, wherever it lives"),
    (
        "migrations",
        "every migration in the machine, with its metrics",
    ),
    (
        "noc",
        "per-link load of the mesh: a heat map, messages and bytes",
    ),
    ("log CLUSTER|all|none", "whose console output is shown"),
    (
        "trace start FILE | trace stop",
        "record a migration timeline (Chrome trace JSON)",
    ),
    ("programs", "the programs in the boot image"),
    ("topology", "the mesh and where each cluster sits"),
    (
        "shutdown",
        "power off every cluster and leave (also Ctrl-D)",
    ),
];

/// Everything the commands need.
pub struct Console {
    pub hub: Arc<Hub>,
    pub view: Arc<View>,
    /// noc-sim's control socket.
    pub control: PathBuf,
    pub programs: Vec<String>,
    pub trace: Mutex<Option<trace::Recorder>>,
    /// The pid of the latest `spawn` (`$pid` in scripts).
    pub last_pid: Mutex<Option<String>>,
}

/// The outcome of one command: text to show, or the error.
pub type Answer = Result<String, String>;

impl Console {
    pub fn clusters(&self) -> usize {
        self.hub.clusters()
    }

    /// Runs one command line.
    pub fn execute(&self, line: &str) -> Answer {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return Ok(String::new());
        };
        match verb {
            "help" => Ok(help()),
            "ps" => self.ps(),
            "spawn" => self.spawn(args),
            "migrate" => self.migrate(args),
            "kill" => self.kill(args),
            "migrations" => self.migrations(),
            "noc" => self.noc(),
            "log" => self.log(args),
            "trace" => self.trace(args),
            "programs" => Ok(self.programs.join("  ")),
            "topology" => Ok(noc_map::topology(self.clusters())),
            "shutdown" => self.shutdown(),
            other => Err(format!("unknown command `{other}`; type `help`")),
        }
    }

    /// A cluster number from text, checked against the machine.
    pub fn cluster_arg(&self, text: &str) -> Result<usize, String> {
        let n = self.clusters();
        text.parse::<usize>()
            .ok()
            .filter(|k| *k < n)
            .ok_or_else(|| {
                format!(
                    "bad cluster `{text}`: the machine has clusters 0..{}",
                    n - 1
                )
            })
    }

    /// Asks one cluster, mapping the failures to the text shown.
    pub fn ask(&self, cluster: usize, command: &str) -> Result<hub::Reply, String> {
        self.hub
            .ask(cluster, command, ANSWER_TIMEOUT)
            .map_err(|e| describe(cluster, e))
    }
}

/// An answer error as shown.
pub fn describe(cluster: usize, error: AskError) -> String {
    match error {
        AskError::Refused(text) => text,
        AskError::NoAnswer => format!(
            "cluster {cluster} did not answer within {} s",
            ANSWER_TIMEOUT.as_secs()
        ),
    }
}

fn help() -> String {
    let mut text = String::from("commands:\n");
    for (usage, what) in COMMANDS {
        text.push_str(&format!("  {usage:<32} {what}\n"));
    }
    text.push_str(
        "PIDs are CLUSTER.N as `ps` shows them (0.2 = born on cluster 0, second process)",
    );
    text
}
