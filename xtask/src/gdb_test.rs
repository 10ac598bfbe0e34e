//! The `gdb` verdict of `cargo xtask test` (`--suite gdb` alone): the command that
//! `run --gdb` prints really attaches and finds the kernel's symbols.
//!
//! One cluster boots halted under a gdb stub; gdb, in batch mode, runs the printed commands
//! with a hardware breakpoint on `kernel::init` before `continue`, and must stop there with a
//! backtrace through `kernel_main`: the symbols sit where the bootloader mapped the kernel
//! (`abi::types::KERNEL_BASE`). Without gdb on the PATH the verdict says it was skipped.

use anyhow::{Context, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::console::session::gdb_commands;
use crate::image::{self, Kernel};
use crate::qemu::{self, Accel, QemuConfig, QemuGuard};

/// How long the boot to `kernel::init` may take under TCG on a loaded host.
const DEADLINE: Duration = Duration::from_secs(180);

/// Runs the check; Ok(Err(reason)) is a failed verdict.
pub fn gdb_check(accel: Accel) -> Result<Result<String, String>> {
    let Some(gdb) = qemu::which("gdb") else {
        return Ok(Ok(
            "skipped: no gdb on the PATH (apt-get install gdb to run it)".into(),
        ));
    };
    let image = image::build_image(Kernel::Production, false)?;
    // A port nobody listens on: bind one, then let QEMU have it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free TCP port")?
        .port();
    let config = QemuConfig {
        image: &image,
        cmdline: "",
        accel,
        ram_file: None,
    };
    let mut command = config.command()?;
    command
        .args(["-S", "-gdb", &format!("tcp:127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _qemu = QemuGuard::spawn(command)?;
    let log_path = image::output_dir()?.join("logs").join("gdb.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    // The printed commands, with a stop in the kernel before the final `continue`.
    let mut commands = gdb_commands(port, false);
    let last = commands.pop().unwrap_or_default();
    commands.push("hbreak kernel::init".into());
    commands.push(last);
    commands.push("bt".into());
    let mut command = Command::new(gdb);
    command.args(["-batch", "-nx"]);
    for c in &commands {
        command.arg("-ex").arg(c);
    }
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut debugger = QemuGuard::spawn(command).context("starting gdb")?;
    let started = Instant::now();
    while debugger.try_wait()?.is_none() {
        if started.elapsed() > DEADLINE {
            return Ok(Err(format!(
                "gdb did not reach kernel::init within {} s; see {}",
                DEADLINE.as_secs(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&log_path)?;
    let stopped = text.contains("Breakpoint 1, kernel::init ()");
    let backtrace = text
        .lines()
        .any(|l| l.contains(" in tessera_kernel::kernel_main ()"));
    if stopped && backtrace {
        Ok(Ok(format!(
            "gdb stopped in kernel::init, called from kernel_main ({:.1} s)",
            started.elapsed().as_secs_f64()
        )))
    } else {
        Ok(Err(format!(
            "gdb did not stop in kernel::init with a backtrace through kernel_main; see {}",
            log_path.display()
        )))
    }
}
