//! `cargo xtask run`: boot one cluster with its serial console on this terminal.

use anyhow::{Context, Result};
use clap::Args;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::image::{self, Kernel};
use crate::qemu::{self, Accel, QemuConfig, QemuGuard};

/// Options of `cargo xtask run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Kernel command line, e.g. "quantum_ms=5 log=debug" or "poweroff" (boot, then power off).
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Start a user program at boot: `NAME[:ARG...][@CLUSTER]`, e.g. `hello@1`, `mgs:500@0`
    /// (repeatable; cluster 0 when omitted). The programs are the directories of
    /// `userland/apps/`.
    #[arg(long = "app", value_name = "NAME[:ARG...][@CLUSTER]")]
    pub apps: Vec<String>,
    /// QEMU accelerator (TCG works everywhere; KVM only where proven).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Stop QEMU after this many seconds (default: run until it powers off or Ctrl-C).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Build the kernel with the dev profile.
    #[arg(long)]
    pub debug: bool,
    /// Number of clusters (1..=20): noc-sim plus one QEMU each. 1 boots a single QEMU
    /// without a NoC.
    #[arg(long, default_value_t = 4)]
    pub clusters: usize,
    /// Run the machine console's commands in FILE instead of the prompt (one a line; see
    /// README, "The machine console"); the exit status says whether every one succeeded.
    #[arg(long, value_name = "FILE")]
    pub script: Option<std::path::PathBuf>,
    /// Show only the console: no cluster output (`log` in the console changes what is
    /// shown), no echoed commands, cargo's builds only on a warning or an error.
    #[arg(long)]
    pub quiet: bool,
    /// Start cluster CLUSTER halted, with a gdb stub on TCP port 1234 + CLUSTER; prints the
    /// gdb command line.
    #[arg(long, value_name = "CLUSTER")]
    pub gdb: Option<usize>,
    /// Kernel log level of every cluster: error, warn, info, debug, trace or off.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// The kernel command line of cluster `k`: the common options plus its `--app` programs.
pub fn cluster_cmdline(args: &RunArgs, k: usize) -> String {
    let mut cmdline = args.cmdline.clone();
    if let Some(level) = &args.log_level {
        cmdline.push_str(&format!(" log={level}"));
    }
    for app in args.apps.iter().filter_map(|a| AppSpec::parse(a).ok()) {
        if app.cluster as usize == k {
            cmdline.push_str(&format!(" app={}", app.kernel_word()));
        }
    }
    cmdline.trim().to_string()
}

/// Checks every `--app` before anything boots.
fn check_apps(args: &RunArgs) -> Result<()> {
    for app in &args.apps {
        let app = AppSpec::parse(app)?;
        app.check_exists()?;
        if app.cluster as usize >= args.clusters {
            anyhow::bail!(
                "--app {}@{}: there are only {} clusters (0..{})",
                app.name,
                app.cluster,
                args.clusters,
                args.clusters - 1
            );
        }
    }
    Ok(())
}

pub fn run(args: &RunArgs) -> Result<i32> {
    if args.quiet {
        image::set_quiet();
    }
    qemu::ensure_installed()?;
    check_apps(args)?;
    let interrupted = crate::interrupt::interrupted_flag();
    let image = image::build_image(Kernel::Production, args.debug)?;
    if args.clusters != 1 {
        return run_clusters(args, &image);
    }
    let log_path = image::output_dir()?.join("logs").join("run-c0.log");
    let mut log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;

    let cmdline = cluster_cmdline(args, 0);
    let config = QemuConfig {
        image: &image,
        cmdline: &cmdline,
        accel: args.accel,
        ram_file: None,
    };
    let mut command = config.command()?;
    match args.gdb {
        Some(0) => {
            command.args(["-S", "-gdb", "tcp:127.0.0.1:1234"]);
            eprintln!("{}", crate::console::session::gdb_hint(0, 1234, args.debug));
        }
        Some(k) => anyhow::bail!("--gdb {k}: there is only cluster 0"),
        None => {}
    }
    command
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let mut guard = QemuGuard::spawn(command)?;
    let mut serial = guard.child().stdout.take().context("QEMU stdout")?;

    // Relay the console to the terminal and the log, timing the boot banner.
    let relay = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        let mut line = Vec::new();
        let mut banner_seen = false;
        let mut stdout = std::io::stdout();
        while let Ok(n) = serial.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let _ = stdout.write_all(&buffer[..n]);
            let _ = stdout.flush();
            let _ = log.write_all(&buffer[..n]);
            for &byte in &buffer[..n] {
                if byte == b'\n' {
                    if !banner_seen && line.starts_with(b"Tessera ") {
                        banner_seen = true;
                        let secs = started.elapsed().as_secs_f64();
                        eprintln!("xtask: boot banner {secs:.2} s after QEMU started");
                    }
                    line.clear();
                } else if line.len() < 256 {
                    line.push(byte);
                }
            }
        }
    });

    let deadline = args.timeout.map(|secs| started + Duration::from_secs(secs));
    let status = loop {
        if let Some(status) = guard.try_wait()? {
            break Ok(status);
        }
        if interrupted.load(Ordering::SeqCst) {
            eprintln!("\nxtask: interrupted; stopping QEMU");
            break Err(130);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            eprintln!("\nxtask: --timeout reached; stopping QEMU");
            break Err(124);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(guard);
    let _ = relay.join();
    eprintln!("xtask: console log: {}", log_path.display());
    match status {
        Err(code) => Ok(code),
        Ok(status) => match status.code() {
            Some(0) => {
                eprintln!("xtask: the kernel powered off");
                Ok(0)
            }
            Some(code) => {
                eprintln!("xtask: QEMU exited with status {code} (the kernel reported a failure)");
                Ok(code)
            }
            None => {
                eprintln!("xtask: QEMU was killed by a signal");
                Ok(1)
            }
        },
    }
}

/// `run --clusters N` (N > 1): noc-sim and N QEMUs under the machine console.
fn run_clusters(args: &RunArgs, image: &std::path::Path) -> Result<i32> {
    let cmdline = |k: usize| cluster_cmdline(args, k);
    if let Some(k) = args.gdb.filter(|k| *k >= args.clusters) {
        anyhow::bail!("--gdb {k}: there are only {} clusters", args.clusters);
    }
    let script = match &args.script {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the script {}", path.display()))?,
        ),
        None => None,
    };
    let session = crate::console::session::Session {
        name: "run",
        clusters: args.clusters,
        image,
        accel: args.accel,
        cmdline: &cmdline,
        script,
        quiet: args.quiet,
        gdb: args.gdb.map(|k| (k, 1234 + k as u16)),
        timeout: args.timeout,
        debug: args.debug,
    };
    let ended = crate::console::session::run(&session)?;
    eprintln!("xtask: console logs:");
    for log in &ended.logs {
        eprintln!("  {}", log.display());
    }
    Ok(ended.status)
}

/// A program to start at boot, from `--app NAME[:ARG...][@CLUSTER]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub name: String,
    pub args: Vec<String>,
    pub cluster: u32,
}

impl AppSpec {
    pub fn parse(text: &str) -> Result<Self> {
        let (program, cluster) = match text.rsplit_once('@') {
            Some((program, cluster)) => (
                program,
                cluster
                    .parse()
                    .with_context(|| format!("`{cluster}` in `{text}` is not a cluster number"))?,
            ),
            None => (text, 0),
        };
        let mut parts = program.split(':');
        let name = parts.next().unwrap_or_default().to_string();
        if name.is_empty() || text.contains(char::is_whitespace) || text.contains(',') {
            anyhow::bail!(
                "bad --app `{text}`: expected NAME[:ARG...][@CLUSTER] without spaces or commas"
            );
        }
        Ok(AppSpec {
            name,
            args: parts.map(String::from).collect(),
            cluster,
        })
    }

    /// Fails with the list of programs if this one does not exist.
    pub fn check_exists(&self) -> Result<()> {
        let programs = image::user_programs()?;
        if !programs.contains(&self.name) {
            anyhow::bail!(
                "no program `{}`; the programs are: {}",
                self.name,
                programs.join(", ")
            );
        }
        Ok(())
    }

    /// The `app=` value for the kernel command line.
    pub fn kernel_word(&self) -> String {
        core::iter::once(self.name.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(":")
    }
}

#[cfg(test)]
mod tests {
    use super::AppSpec;

    #[test]
    fn parses_app_specs() {
        let spec = AppSpec::parse("mgs:500:2@3").unwrap();
        assert_eq!(
            spec,
            AppSpec {
                name: "mgs".into(),
                args: vec!["500".into(), "2".into()],
                cluster: 3
            }
        );
        assert_eq!(spec.kernel_word(), "mgs:500:2");
        assert_eq!(AppSpec::parse("hello").unwrap().cluster, 0);
        assert!(AppSpec::parse("hello@x").is_err());
        assert!(AppSpec::parse("@1").is_err());
        assert!(AppSpec::parse("a b").is_err());
    }
}
