//! QEMU's own live migration of a whole cluster VM (issue 13, item 8), measured in the same
//! run as Tessera's process migration: one production kernel booted alone (no noc-sim, so
//! no ivshmem device and no shared RAM file: QEMU's default anonymous RAM) with an `app=`
//! on its command line, a second QEMU with `-incoming tcp:127.0.0.1:PORT`, QMP `migrate`,
//! and `query-migrate` polled until it completes for QEMU's own total time and downtime
//! (whole milliseconds: QMP has no finer figure). QEMU's migration parameters stay at their
//! defaults. The destination must report `running` afterwards.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::image::{self, Kernel};
use crate::qemu::{Accel, QemuConfig, QemuGuard};

/// One whole-VM migration, QEMU's figures.
#[derive(Debug, Clone)]
pub struct VmMigration {
    pub total_us: u64,
    pub downtime_us: u64,
    pub setup_us: u64,
    pub ram_transferred_bytes: u64,
}

/// A QMP connection (one command at a time; events are skipped).
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn connect(path: &Path, within: Duration) -> Result<Qmp> {
        let deadline = Instant::now() + within;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(error) if Instant::now() > deadline => {
                    return Err(error).with_context(|| format!("QMP socket {}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            bail!("no QMP greeting on {}: {greeting}", path.display());
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("QMP closed");
        }
        serde_json::from_str(&line).with_context(|| format!("QMP sent {line:?}"))
    }

    /// Runs `command`; its `return` value.
    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let request = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{request}")?;
        loop {
            let reply = self.read()?;
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                bail!("QMP {command}: {error}");
            }
            // An asynchronous event: not our answer.
        }
    }
}

/// Starts one VM with a QMP socket, its serial console saved to `log` and kept in `lines`.
fn start_vm(
    image: &Path,
    cmdline: &str,
    accel: Accel,
    qmp: &Path,
    incoming: Option<u16>,
    log: PathBuf,
) -> Result<(QemuGuard, Arc<Mutex<Vec<String>>>)> {
    let config = QemuConfig {
        image,
        cmdline,
        accel,
        ram_file: None,
    };
    let mut command = config.command()?;
    command
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()));
    if let Some(port) = incoming {
        command
            .arg("-incoming")
            .arg(format!("tcp:127.0.0.1:{port}"));
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut guard = QemuGuard::spawn(command)?;
    let stdout = guard.child().stdout.take().context("QEMU stdout")?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = lines.clone();
    let mut file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut bytes = Vec::new();
        while matches!(reader.read_until(b'\n', &mut bytes), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&bytes).trim_end().to_string();
            let _ = writeln!(file, "{line}");
            if let Ok(mut kept) = kept.lock() {
                kept.push(line);
            }
            bytes.clear();
        }
    });
    Ok((guard, lines))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Boots the production kernel running `app_cmdline` (e.g. `app=mgs:1000:0`), waits for
/// its `ready`, lets it run `settle`, and migrates the whole VM to a second QEMU.
pub fn migrate_vm(
    label: &str,
    app_cmdline: &str,
    accel: Accel,
    settle: Duration,
) -> Result<VmMigration> {
    let image = image::build_image(Kernel::Production, false)?;
    let dir = image::output_dir()?.join("qemu-vm");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let logs = image::output_dir()?.join("logs");
    let (source_qmp, destination_qmp) = (dir.join("source.qmp"), dir.join("destination.qmp"));
    let _ = std::fs::remove_file(&source_qmp);
    let _ = std::fs::remove_file(&destination_qmp);
    let source_log = logs.join(format!("qemu-vm-{label}-source.log"));
    let (_source, source_lines) = start_vm(
        &image,
        app_cmdline,
        accel,
        &source_qmp,
        None,
        source_log.clone(),
    )?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !source_lines
        .lock()
        .is_ok_and(|l| l.iter().any(|l| l.contains("] ready")))
    {
        if Instant::now() > deadline {
            bail!(
                "the VM's app never said ready; see {}",
                source_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = free_port()?;
    let (_destination, _) = start_vm(
        &image,
        app_cmdline,
        accel,
        &destination_qmp,
        Some(port),
        logs.join(format!("qemu-vm-{label}-destination.log")),
    )?;
    let mut source = Qmp::connect(&source_qmp, Duration::from_secs(30))?;
    let mut destination = Qmp::connect(&destination_qmp, Duration::from_secs(30))?;
    std::thread::sleep(settle);
    eprintln!("xtask: QMP migrate {label}: tcp:127.0.0.1:{port}");
    source.execute("migrate", json!({ "uri": format!("tcp:127.0.0.1:{port}") }))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let info = loop {
        let info = source.execute("query-migrate", json!({}))?;
        match info["status"].as_str() {
            Some("completed") => break info,
            Some("failed") | Some("cancelled") => bail!("QEMU's migration ended: {info}"),
            _ if Instant::now() > deadline => bail!("QEMU's migration did not finish: {info}"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // The destination takes over once it has loaded the last state.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = destination.execute("query-status", json!({}))?;
        if status["status"] == "running" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the destination VM is not running after the migration: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ms = |key: &str| info[key].as_u64().unwrap_or(0) * 1000;
    Ok(VmMigration {
        total_us: ms("total-time"),
        downtime_us: ms("downtime"),
        setup_us: ms("setup-time"),
        ram_transferred_bytes: info["ram"]["transferred"].as_u64().unwrap_or(0),
    })
}
