//! `cargo xtask test`: every test there is, with one closing verdict.
//!
//! 0. The lints (`cargo xtask lint`): rustfmt and clippy over every crate, warnings as errors.
//! 1. Host unit and property tests of every crate that runs on the host (`cargo test`).
//! 2. Each in-kernel suite, booted once in QEMU with `suite=NAME` on the kernel command line.
//!    Most suites must pass; the "fatal" suites must end the run with the failure status and a
//!    given report, which shows a kernel error is reported instead of hanging.
//!
//! It prints each suite's result and ends with the line `N passed, N failed`; the exit status
//! is non-zero on any failure or timeout, and the path of every log is printed.

use anyhow::{Context, Result};
use clap::Args;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::image::{self, workspace_root, Kernel, KERNEL_CRATES};
use crate::qemu::{self, Accel, QemuConfig, QemuGuard};
use crate::report::{self, Outcome};

/// Options of `cargo xtask test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Run only the host tests.
    #[arg(long, conflicts_with = "kernel_only")]
    pub host_only: bool,
    /// Run only the in-kernel suites.
    #[arg(long)]
    pub kernel_only: bool,
    /// Run only this in-kernel suite (repeatable); `console` is the scripted session of the
    /// machine console, `gdb` the check of `run --gdb`'s command with a real gdb.
    #[arg(long = "suite")]
    pub suites: Vec<String>,
    /// Seconds each QEMU boot may take before it counts as hung.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
}

use catalog::{Expect, Suite as KernelSuite, SUITES};

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    logs: Vec<PathBuf>,
}

pub fn test(args: &TestArgs) -> Result<i32> {
    let started = Instant::now();
    let mut tally = Tally::default();
    if !args.kernel_only && args.suites.is_empty() {
        let (passed, failed) = crate::lint::lint()?;
        tally.passed += passed;
        tally.failed += failed;
        host_tests(&mut tally)?;
    }
    let only_host_side =
        !args.suites.is_empty() && args.suites.iter().all(|s| s == "console" || s == "gdb");
    if !args.host_only && !only_host_side {
        kernel_suites(args, &mut tally)?;
        if args.suites.is_empty() {
            fuzz_verdict(args, &mut tally)?;
        }
    }
    if !args.host_only && (args.suites.is_empty() || args.suites.iter().any(|s| s == "console")) {
        console_verdict(args, &mut tally)?;
    }
    if !args.host_only && (args.suites.is_empty() || args.suites.iter().any(|s| s == "gdb")) {
        gdb_verdict(args, &mut tally)?;
    }
    eprintln!();
    eprintln!("xtask: logs:");
    for log in &tally.logs {
        eprintln!("  {}", log.display());
    }
    eprintln!(
        "xtask: finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(if tally.failed == 0 { 0 } else { 1 })
}

/// A short fuzz run (`cargo xtask fuzz`, fixed seed) as one verdict, after the kernel suites.
fn fuzz_verdict(args: &TestArgs, tally: &mut Tally) -> Result<()> {
    const SECONDS: u64 = 15;
    const SEED: u64 = 11;
    eprintln!("xtask: fuzz: {SECONDS} s, seed {SEED}, 2 clusters");
    let fuzz = crate::fuzz::FuzzArgs {
        seconds: SECONDS,
        seed: SEED,
        clusters: 2,
        accel: args.accel,
    };
    let code = crate::fuzz::fuzz(&fuzz)?;
    tally.logs.extend(
        (0..fuzz.clusters)
            .map(|k| image::output_dir().map(|d| d.join("logs").join(format!("fuzz-c{k}.log"))))
            .collect::<Result<Vec<_>>>()?,
    );
    if code == 0 {
        tally.passed += 1;
        eprintln!("xtask: fuzz: ok");
    } else {
        tally.failed += 1;
        eprintln!("xtask: fuzz: FAILED (see the fuzz logs below)");
    }
    Ok(())
}

fn host_tests(tally: &mut Tally) -> Result<()> {
    eprintln!("xtask: host tests");
    let log_path = image::output_dir()?.join("logs").join("host-tests.log");
    let mut log = std::fs::File::create(&log_path)?;
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(workspace_root())
        .args(["test", "--workspace"]);
    for krate in KERNEL_CRATES {
        command.args(["--exclude", krate]);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    image::echo(&command);
    let mut child = command.spawn().context("running cargo test")?;
    // cargo's progress goes to stderr, the test harness output to stdout: show both, keep both.
    let stderr = child.stderr.take().context("cargo stderr")?;
    let stderr_thread = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut stdout_text = String::new();
    for line in BufReader::new(child.stdout.take().context("cargo stdout")?).lines() {
        let line = line?;
        println!("{line}");
        stdout_text.push_str(&line);
        stdout_text.push('\n');
    }
    let status = child.wait()?;
    let stderr_text = stderr_thread.join().unwrap_or_default();
    log.write_all(stdout_text.as_bytes())?;
    log.write_all(stderr_text.as_bytes())?;
    let (passed, mut failed) = report::parse_cargo_test_summaries(&stdout_text);
    if !status.success() && failed == 0 {
        failed = 1; // a build error or a crashed test binary
        eprintln!("xtask: cargo test failed before reporting results ({status})");
    }
    eprintln!("xtask: host tests: {passed} passed, {failed} failed");
    tally.passed += passed;
    tally.failed += failed;
    tally.logs.push(log_path);
    Ok(())
}

fn kernel_suites(args: &TestArgs, tally: &mut Tally) -> Result<()> {
    qemu::ensure_installed()?;
    let interrupted = crate::interrupt::interrupted_flag();
    let image = image::build_image(Kernel::Tests, false)?;
    for name in args
        .suites
        .iter()
        .filter(|n| *n != "console" && *n != "gdb")
    {
        if catalog::find(name).is_none() {
            anyhow::bail!(
                "unknown suite `{name}`; known: {}",
                SUITES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let chosen = |s: &&KernelSuite| {
        if args.suites.is_empty() {
            s.in_test_run
        } else {
            args.suites.iter().any(|n| n == s.name)
        }
    };
    for suite in SUITES.iter().filter(chosen) {
        if interrupted.load(Ordering::SeqCst) {
            anyhow::bail!("interrupted");
        }
        let log_path = image::output_dir()?
            .join("logs")
            .join(format!("kernel-{}.log", suite.name));
        if suite.clusters > 1 {
            multi_cluster_suite(&image, suite, args, tally)?;
            continue;
        }
        eprintln!("xtask: in-kernel suite `{}`", suite.name);
        let boot = boot_suite(&image, suite.name, args.timeout, args.accel, &log_path)?;
        tally.logs.push(log_path.clone());
        let parsed = report::parse_kernel_log(&boot.log);
        match suite.expect {
            Expect::Pass => {
                let (passed, mut failed) = (parsed.passed(), parsed.failed());
                for test in &parsed.results {
                    if let Outcome::Failed(reason) = &test.outcome {
                        eprintln!("  FAILED {}: {reason}", test.name);
                    }
                }
                if parsed.missing() > 0 {
                    eprintln!("  {} announced tests never reported", parsed.missing());
                }
                let verdict_ok = boot.exit == Some(qemu::EXIT_SUCCESS);
                if (!verdict_ok || parsed.announced.is_none()) && failed == 0 {
                    failed = 1;
                }
                eprintln!(
                    "xtask: suite `{}`: {passed} passed, {failed} failed ({}; {:.1} s)",
                    suite.name,
                    boot.describe_exit(),
                    boot.seconds
                );
                if failed > 0 {
                    eprintln!("  full log: {}", log_path.display());
                }
                tally.passed += passed;
                tally.failed += failed;
            }
            Expect::Fatal(needles) => {
                let missing: Vec<&str> = needles
                    .iter()
                    .copied()
                    .filter(|n| !boot.log.contains(n))
                    .collect();
                let ok = boot.exit == Some(qemu::EXIT_FAILURE) && missing.is_empty();
                if ok {
                    eprintln!(
                        "xtask: suite `{}`: ok (fatal error reported, failure exit; {:.1} s)",
                        suite.name, boot.seconds
                    );
                    tally.passed += 1;
                } else {
                    eprintln!(
                        "xtask: suite `{}`: FAILED: expected a failure exit with {:?}; got {}, missing {:?}\n  full log: {}",
                        suite.name,
                        needles,
                        boot.describe_exit(),
                        missing,
                        log_path.display()
                    );
                    tally.failed += 1;
                }
            }
        }
    }
    Ok(())
}

/// The scripted machine-console session, counted as one verdict.
fn console_verdict(args: &TestArgs, tally: &mut Tally) -> Result<()> {
    eprintln!("xtask: machine console, scripted session on 4 clusters");
    let started = Instant::now();
    match crate::console_test::console_session(args.accel)? {
        Ok(what) => {
            eprintln!(
                "xtask: console session: ok ({what}; {:.1} s)",
                started.elapsed().as_secs_f64()
            );
            tally.passed += 1;
        }
        Err(reason) => {
            eprintln!("xtask: console session: FAILED: {reason}");
            tally.failed += 1;
        }
    }
    for k in 0..4 {
        tally.logs.push(
            image::output_dir()?
                .join("logs")
                .join(format!("console-c{k}.log")),
        );
    }
    Ok(())
}

/// `run --gdb`'s printed command, run by gdb against one cluster: one verdict.
fn gdb_verdict(args: &TestArgs, tally: &mut Tally) -> Result<()> {
    eprintln!("xtask: gdb attached to one cluster with the printed command");
    match crate::gdb_test::gdb_check(args.accel)? {
        Ok(what) => {
            eprintln!("xtask: gdb: ok ({what})");
            tally.passed += 1;
        }
        Err(reason) => {
            eprintln!("xtask: gdb: FAILED: {reason}");
            tally.failed += 1;
        }
    }
    tally
        .logs
        .push(image::output_dir()?.join("logs").join("gdb.log"));
    Ok(())
}

pub struct BootResult {
    /// QEMU's exit status; `None` if it timed out or died by signal.
    pub exit: Option<i32>,
    pub timed_out: bool,
    pub log: String,
    pub seconds: f64,
}

impl BootResult {
    pub fn describe_exit(&self) -> String {
        match (self.timed_out, self.exit) {
            (true, _) => "timed out".into(),
            (false, Some(code)) => format!("QEMU exit {code}"),
            (false, None) => "QEMU killed by a signal".into(),
        }
    }
}

/// Boots the test kernel once with `suite=NAME`, streaming verdict lines to the terminal.
pub fn boot_suite(
    image: &Path,
    suite: &str,
    timeout: u64,
    accel: Accel,
    log_path: &Path,
) -> Result<BootResult> {
    let cmdline = format!("suite={suite}");
    let config = QemuConfig {
        image,
        cmdline: &cmdline,
        accel,
        ram_file: None,
    };
    let mut command = config.command()?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut guard = QemuGuard::spawn(command)?;
    let stdout = guard.child().stdout.take().context("QEMU stdout")?;
    let mut stderr = guard.child().stderr.take().context("QEMU stderr")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("test ") || line.starts_with("suite ") || line.starts_with("!!!") {
                eprintln!("  {line}");
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let interrupted = crate::interrupt::interrupted_flag();
    let deadline = started + Duration::from_secs(timeout);
    let (exit, timed_out) = loop {
        if let Some(status) = guard.try_wait()? {
            break (status.code(), false);
        }
        if interrupted.load(Ordering::SeqCst) {
            break (None, false);
        }
        if Instant::now() >= deadline {
            eprintln!("  timed out after {timeout} s");
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard);
    let mut log = reader.join().unwrap_or_default();
    let qemu_errors = stderr_reader.join().unwrap_or_default();
    if !qemu_errors.trim().is_empty() {
        eprintln!("  QEMU said: {}", qemu_errors.trim());
        log.push_str("\n--- QEMU stderr ---\n");
        log.push_str(&qemu_errors);
    }
    std::fs::write(log_path, &log).with_context(|| format!("writing {}", log_path.display()))?;
    Ok(BootResult {
        exit,
        timed_out,
        log,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Boots `suite.clusters` clusters once and counts every cluster's verdicts (`cK/NAME`).
fn multi_cluster_suite(
    image: &Path,
    suite: &KernelSuite,
    args: &TestArgs,
    tally: &mut Tally,
) -> Result<()> {
    eprintln!(
        "xtask: in-kernel suite `{}` on {} clusters",
        suite.name, suite.clusters
    );
    let clusters = suite.clusters;
    let cmdline = |_k: usize| format!("suite={} clusters={clusters}", suite.name);
    let spec = crate::cluster::Spec {
        name: &format!("kernel-{}", suite.name),
        clusters,
        image,
        accel: args.accel,
        cmdline: &cmdline,
        guest_faults: true,
        model: crate::cluster::NocModel::default(),
        interactive: false,
        show: |line| {
            line.starts_with("test ") && !line.contains(" ... ok") || line.starts_with("!!!")
        },
        sink: None,
        gdb: None,
    };
    let machine = crate::cluster::start(&spec)?;
    tally.logs.extend(machine.logs.iter().cloned());
    let logs = machine.logs.clone();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let outcome = machine.wait(Some(deadline))?;
    let (mut passed, mut failed) = (0, 0);
    for (k, console) in outcome.consoles.iter().enumerate() {
        let parsed = report::parse_kernel_log(console);
        let mut cluster_failed = parsed.failed();
        for test in &parsed.results {
            if let Outcome::Failed(reason) = &test.outcome {
                eprintln!("  FAILED c{k}/{}: {reason}", test.name);
            }
        }
        if parsed.missing() > 0 {
            eprintln!(
                "  c{k}: {} announced tests never reported",
                parsed.missing()
            );
        }
        let verdict_ok = outcome.exits[k] == Some(qemu::EXIT_SUCCESS);
        if (!verdict_ok || parsed.announced.is_none()) && cluster_failed == 0 {
            eprintln!(
                "  c{k}: ended with {:?} (expected exit {})",
                outcome.exits[k],
                qemu::EXIT_SUCCESS
            );
            cluster_failed = 1;
        }
        if cluster_failed > 0 {
            eprintln!("  full log: {}", logs[k].display());
        }
        passed += parsed.passed();
        failed += cluster_failed;
    }
    let how = if outcome.timed_out {
        "timed out".to_string()
    } else {
        format!(
            "all joined {:.1} s, all booted {:.1} s",
            outcome.all_joined_s.unwrap_or(f64::NAN),
            outcome.all_booted_s.unwrap_or(f64::NAN)
        )
    };
    eprintln!(
        "xtask: suite `{}`: {passed} passed, {failed} failed across {clusters} clusters ({how}; {:.1} s)",
        suite.name, outcome.seconds
    );
    tally.passed += passed;
    tally.failed += failed;
    Ok(())
}
