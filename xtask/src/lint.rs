//! `cargo xtask lint`: formatting and clippy over every crate — the host crates, the kernel
//! crates (for the bare-metal target) and the userland workspace (for the user target) —
//! with warnings as errors — and the module graph of every crate (no import cycles).
//! `cargo xtask test` runs it first, so CI does.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

use crate::image::{self, workspace_root, KERNEL_CRATES, KERNEL_TARGET};

/// One lint step: what it checks and the cargo arguments, run in `dir`.
struct Step {
    what: &'static str,
    dir: &'static str,
    args: Vec<String>,
}

fn steps() -> Vec<Step> {
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let mut host = words("clippy --workspace --all-targets");
    for krate in KERNEL_CRATES {
        host.extend(["--exclude".into(), (*krate).into()]);
    }
    host.extend(words("-- -D warnings"));
    let mut kernel = words("clippy --release --target");
    kernel.push(KERNEL_TARGET.into());
    for krate in KERNEL_CRATES {
        kernel.extend(["--package".into(), (*krate).into()]);
    }
    kernel.extend(words("-- -D warnings"));
    vec![
        Step {
            what: "rustfmt, workspace",
            dir: ".",
            args: words("fmt --all --check"),
        },
        Step {
            what: "rustfmt, userland",
            dir: "userland",
            args: words("fmt --all --check"),
        },
        Step {
            what: "clippy, host crates",
            dir: ".",
            args: host,
        },
        Step {
            what: "clippy, kernel crates",
            dir: ".",
            args: kernel,
        },
        Step {
            what: "clippy, userland",
            dir: "userland",
            args: words("clippy --release --workspace -- -D warnings"),
        },
    ]
}

/// Runs every step; returns (passed, failed), printing what failed and how to see it.
pub fn lint() -> Result<(usize, usize)> {
    let (mut passed, mut failed) = (0, 0);
    let cycles = crate::modgraph::cycles()?;
    if cycles.is_empty() {
        eprintln!("xtask: lint: no import cycles between the modules of a crate: ok");
        passed += 1;
    } else {
        for cycle in &cycles {
            eprintln!("xtask: lint: import cycle: {cycle}");
        }
        failed += 1;
    }
    for step in steps() {
        let dir = workspace_root().join(step.dir);
        if run(&dir, &step)? {
            eprintln!("xtask: lint: {}: ok", step.what);
            passed += 1;
        } else {
            eprintln!(
                "xtask: lint: {}: FAILED (run `cargo {}` in {} to see why)",
                step.what,
                step.args.join(" "),
                dir.display()
            );
            failed += 1;
        }
    }
    Ok((passed, failed))
}

fn run(dir: &Path, step: &Step) -> Result<bool> {
    let mut command = Command::new(image::cargo());
    command.current_dir(dir).args(&step.args);
    image::echo(&command);
    let status = command
        .status()
        .with_context(|| format!("running cargo for {}", step.what))?;
    Ok(status.success())
}

/// `cargo xtask lint` on its own.
pub fn lint_command() -> Result<i32> {
    let (passed, failed) = lint()?;
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}
