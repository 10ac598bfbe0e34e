//! Booting N clusters: noc-sim (the router and ivshmem server) plus one QEMU per cluster.
//!
//! noc-sim listens on `DIR/c{k}.sock`; QEMU k's `ivshmem-doorbell` device connects there and
//! becomes ivshmem peer (= cluster) k. The serial output of every cluster is merged on our
//! stdout with a `[cK]` prefix (coloured on a terminal) and saved to one log per cluster
//! under `target/tessera/logs/`. Every child is held by a [`QemuGuard`], so all of them die
//! with this process whatever the exit path.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::guest_ram::RamFiles;
use crate::image::{self, echo, workspace_root};
use crate::qemu::{Accel, QemuConfig, QemuGuard};

/// Modelled chip settings passed to noc-sim (its defaults are MPPA-like).
#[derive(Clone, Debug)]
pub struct NocModel {
    pub hop_latency_ns: u64,
    pub link_mbps: u64,
}

impl Default for NocModel {
    fn default() -> Self {
        NocModel {
            hop_latency_ns: 50,
            link_mbps: 1600,
        }
    }
}

/// What to boot.
pub struct Spec<'a> {
    /// Short name: socket directory and log files (`{name}-c{k}.log`).
    pub name: &'a str,
    pub clusters: usize,
    pub image: &'a Path,
    pub accel: Accel,
    /// Kernel command line of cluster k.
    pub cmdline: &'a dyn Fn(usize) -> String,
    /// Let guests ask noc-sim for fault injection (tests).
    pub guest_faults: bool,
    pub model: NocModel,
    /// Give our stdin to cluster 0's serial console.
    pub interactive: bool,
    /// Echo every console line (`run`), or only lines this filter accepts (`test`).
    pub show: fn(&str) -> bool,
    /// The machine console: every console line goes here as (cluster, line) instead of
    /// stdout (noc-sim's as [`NOC_LINE`]), and every cluster's serial input is kept for it
    /// ([`Machine::take_inputs`]).
    pub sink: Option<Sender<(usize, String)>>,
    /// Start this cluster's QEMU with a gdb stub on this TCP port, halted (`-S -gdb`).
    pub gdb: Option<(usize, u16)>,
}

/// A kernel's boot banner (`Tessera 0.1.0 microkernel - cluster 3 of 16 - ...`): the
/// cluster is up.
pub fn is_banner(line: &str) -> bool {
    line.starts_with("Tessera ")
}

/// The cluster index of noc-sim's lines in a [`Spec::sink`].
pub const NOC_LINE: usize = usize::MAX;

/// A running machine: the router and the clusters.
pub struct Machine {
    noc: QemuGuard,
    qemus: Vec<QemuGuard>,
    relays: Vec<JoinHandle<String>>,
    noc_relay: Option<JoinHandle<()>>,
    pub logs: Vec<PathBuf>,
    pub started: Instant,
    /// noc-sim's control socket (`stats`, fault injection).
    pub control: PathBuf,
    joined: Arc<Mutex<Option<(usize, f64)>>>,
    banners: Arc<Mutex<Vec<f64>>>,
    clusters: usize,
    /// Cluster 0's serial input when it is not the terminal (monitor commands).
    console_input: Option<std::process::ChildStdin>,
    /// Last: removed after every QEMU and noc-sim is gone.
    _ram: RamFiles,
}

/// Builds the host noc-sim binary and returns its path.
pub fn build_noc_sim() -> Result<PathBuf> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace_root()).args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "noc-sim",
    ]);
    echo(&command);
    let status = command.status().context("building noc-sim")?;
    if !status.success() {
        bail!("building noc-sim failed ({status})");
    }
    Ok(workspace_root().join("target/release/noc-sim"))
}

const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// Starts noc-sim, waits for its sockets, then starts every cluster.
pub fn start(spec: &Spec) -> Result<Machine> {
    if !(1..=20).contains(&spec.clusters) {
        bail!("--clusters must be 1..=20 (got {})", spec.clusters);
    }
    let noc_sim = build_noc_sim()?;
    let dir = image::output_dir()?.join("noc").join(spec.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let control = dir.join("control.sock");
    // Ctrl-C only raises a flag, so the run unwinds and the RAM files below are removed.
    let _ = crate::interrupt::interrupted_flag();
    let ram_size = crate::guest_ram::ram_size(&crate::qemu::machine_args()?);
    let ram = RamFiles::create(spec.name, spec.clusters, ram_size)?;

    let mut command = Command::new(&noc_sim);
    command
        .arg("--dir")
        .arg(&dir)
        .arg("--clusters")
        .arg(spec.clusters.to_string())
        .arg("--control")
        .arg(&control)
        .arg("--hop-latency-ns")
        .arg(spec.model.hop_latency_ns.to_string())
        .arg("--link-mbps")
        .arg(spec.model.link_mbps.to_string());
    for (k, path) in ram.paths().iter().enumerate() {
        command.arg("--ram").arg(format!("{k}={}", path.display()));
    }
    if spec.guest_faults {
        command.arg("--guest-faults");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut noc = QemuGuard::spawn(command).context("starting noc-sim")?;
    let joined = Arc::new(Mutex::new(None));
    let noc_relay = {
        let stdout = noc.child().stdout.take().context("noc-sim stdout")?;
        let stderr = noc.child().stderr.take().context("noc-sim stderr")?;
        let log_path = image::output_dir()?
            .join("logs")
            .join(format!("{}-noc-sim.log", spec.name));
        let log = Arc::new(Mutex::new(
            std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?,
        ));
        let joined = joined.clone();
        let clusters = spec.clusters;
        let log2 = log.clone();
        let show_all = spec.interactive;
        let sink = spec.sink.clone();
        let sink2 = spec.sink.clone();
        std::thread::spawn(move || {
            let err_thread = std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut log) = log2.lock() {
                        let _ = writeln!(log, "{line}");
                    }
                    if let Some(sink) = &sink2 {
                        let _ = sink.send((NOC_LINE, line));
                    } else if show_all || line.contains("asked") {
                        eprintln!("[noc] {line}");
                    }
                }
            });
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut log) = log.lock() {
                    let _ = writeln!(log, "{line}");
                }
                if line.contains("clusters joined in") {
                    let secs = started.elapsed().as_secs_f64();
                    if let Ok(mut joined) = joined.lock() {
                        *joined = Some((clusters, secs));
                    }
                    if sink.is_none() {
                        eprintln!("xtask: all {clusters} clusters joined the NoC {secs:.2} s after start ({line})");
                    }
                } else if let Some(sink) = &sink {
                    let _ = sink.send((NOC_LINE, line));
                } else if show_all && !line.starts_with("summary:") {
                    eprintln!("[noc] {line}");
                }
            }
            let _ = err_thread.join();
        })
    };

    // noc-sim creates the sockets before it listens; wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(0..spec.clusters).all(|k| dir.join(format!("c{k}.sock")).exists()) {
        if let Some(status) = noc.try_wait()? {
            bail!("noc-sim exited early ({status}); see its log under target/tessera/logs/");
        }
        if Instant::now() > deadline {
            bail!("noc-sim did not create its sockets in {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let colour = std::io::stdout().is_terminal();
    let banners = Arc::new(Mutex::new(Vec::new()));
    let mut qemus = Vec::new();
    let mut relays = Vec::new();
    let mut logs = Vec::new();
    let mut console_input = None;
    for k in 0..spec.clusters {
        let cmdline = (spec.cmdline)(k);
        let config = QemuConfig {
            image: spec.image,
            cmdline: &cmdline,
            accel: spec.accel,
            ram_file: Some(ram.path(k)),
        };
        let mut command = config.command()?;
        command
            .arg("-chardev")
            .arg(format!(
                "socket,path={},id=noc",
                dir.join(format!("c{k}.sock")).display()
            ))
            .arg("-device")
            .arg("ivshmem-doorbell,chardev=noc,vectors=1");
        if let Some((_, port)) = spec.gdb.filter(|(cluster, _)| *cluster == k) {
            command
                .arg("-S")
                .arg("-gdb")
                .arg(format!("tcp:127.0.0.1:{port}"));
        }
        command
            .stdin(if spec.sink.is_some() {
                Stdio::piped()
            } else if k == 0 && spec.interactive {
                Stdio::inherit()
            } else if k == 0 {
                // A pipe the caller may write monitor commands to (`console_input`).
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = QemuGuard::spawn(command)?;
        if k == 0 && spec.sink.is_none() {
            console_input = guard.child().stdin.take();
        }
        let stdout = guard.child().stdout.take().context("QEMU stdout")?;
        let stderr = guard.child().stderr.take().context("QEMU stderr")?;
        let log_path = image::output_dir()?
            .join("logs")
            .join(format!("{}-c{k}.log", spec.name));
        let mut log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        logs.push(log_path);
        let prefix = if colour {
            format!("\x1b[{}m[c{k}]\x1b[0m ", COLOURS[k % COLOURS.len()])
        } else {
            format!("[c{k}] ")
        };
        let show = spec.show;
        let sink = spec.sink.clone();
        let banners = banners.clone();
        let clusters = spec.clusters;
        relays.push(std::thread::spawn(move || {
            let err = std::thread::spawn(move || {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
                text
            });
            let mut text = String::new();
            let mut banner = false;
            // Bytes, not `lines()`: a line that is not UTF-8 must not end the relay (QEMU
            // would then block on a full pipe and the rest of the console be lost).
            let mut reader = BufReader::new(stdout);
            let mut bytes = Vec::new();
            loop {
                bytes.clear();
                match reader.read_until(b'\n', &mut bytes) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&bytes)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if !banner && is_banner(&line) {
                    banner = true;
                    let secs = started.elapsed().as_secs_f64();
                    if let Ok(mut banners) = banners.lock() {
                        banners.push(secs);
                        if banners.len() == clusters && sink.is_none() {
                            eprintln!("xtask: all {clusters} clusters booted (last banner {secs:.2} s after start)");
                        }
                    }
                }
                if let Some(sink) = &sink {
                    let _ = sink.send((k, line.clone()));
                } else if show(&line) {
                    println!("{prefix}{line}");
                }
                let _ = writeln!(log, "{line}");
                text.push_str(&line);
                text.push('\n');
            }
            let qemu_errors = err.join().unwrap_or_default();
            if !qemu_errors.trim().is_empty() {
                eprintln!("{prefix}QEMU said: {}", qemu_errors.trim());
                let _ = writeln!(log, "--- QEMU stderr ---\n{qemu_errors}");
                text.push_str("\n--- QEMU stderr ---\n");
                text.push_str(&qemu_errors);
            }
            text
        }));
        qemus.push(guard);
    }
    Ok(Machine {
        noc,
        qemus,
        relays,
        noc_relay: Some(noc_relay),
        logs,
        started,
        control,
        joined,
        banners,
        clusters: spec.clusters,
        console_input,
        _ram: ram,
    })
}

/// How a machine's run ended.
pub struct Outcome {
    /// Exit status of each QEMU (`None`: still running when stopped, or killed by a signal).
    pub exits: Vec<Option<i32>>,
    pub timed_out: bool,
    pub interrupted: bool,
    /// Console text of each cluster.
    pub consoles: Vec<String>,
    pub seconds: f64,
    /// Seconds from start until noc-sim saw every cluster (None if it never did).
    pub all_joined_s: Option<f64>,
    /// Seconds from start until every cluster printed its boot banner.
    pub all_booted_s: Option<f64>,
}

impl Machine {
    /// Host process ids of the cluster QEMUs (index = cluster) and of noc-sim.
    pub fn pids(&mut self) -> (Vec<u32>, u32) {
        let qemus = self.qemus.iter_mut().map(|g| g.child().id()).collect();
        (qemus, self.noc.child().id())
    }

    /// Every cluster's serial input (when started with a [`Spec::sink`]), index = cluster.
    pub fn take_inputs(&mut self) -> Vec<Option<ChildStdin>> {
        self.qemus
            .iter_mut()
            .map(|g| g.child().stdin.take())
            .collect()
    }

    /// Types `line` (and a newline) on cluster 0's serial console, where its kernel monitor
    /// reads; `false` if there is no such input (interactive runs) or it is closed.
    pub fn type_on_console(&mut self, line: &str) -> bool {
        use std::io::Write;
        self.console_input.as_mut().is_some_and(|input| {
            input
                .write_all(format!("{line}\n").as_bytes())
                .and_then(|_| input.flush())
                .is_ok()
        })
    }

    /// Clusters that have printed their boot banner so far.
    pub fn booted(&self) -> usize {
        self.banners.lock().map_or(0, |b| b.len())
    }

    /// Waits until every cluster has exited (or `deadline` / Ctrl-C), then stops everything.
    pub fn wait(mut self, deadline: Option<Instant>) -> Result<Outcome> {
        let interrupted_flag = crate::interrupt::interrupted_flag();
        let mut exits: Vec<Option<i32>> = vec![None; self.qemus.len()];
        let mut done = vec![false; self.qemus.len()];
        let (mut timed_out, mut interrupted) = (false, false);
        loop {
            for (k, guard) in self.qemus.iter_mut().enumerate() {
                if !done[k] {
                    if let Some(status) = guard.try_wait()? {
                        done[k] = true;
                        exits[k] = status.code();
                    }
                }
            }
            if done.iter().all(|d| *d) {
                break;
            }
            if interrupted_flag.load(Ordering::SeqCst) {
                eprintln!("\nxtask: interrupted; stopping {} clusters", self.clusters);
                interrupted = true;
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                eprintln!("\nxtask: timeout reached; stopping every cluster");
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.qemus.clear(); // kills the rest
                            // noc-sim exits by itself once every cluster left; give it a moment for its summary.
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && self.noc.try_wait()?.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(self.noc);
        let consoles = self
            .relays
            .drain(..)
            .map(|r| r.join().unwrap_or_default())
            .collect();
        if let Some(relay) = self.noc_relay.take() {
            let _ = relay.join();
        }
        let all_joined_s = self.joined.lock().ok().and_then(|j| j.map(|(_, s)| s));
        let all_booted_s = self
            .banners
            .lock()
            .ok()
            .filter(|b| b.len() == self.clusters)
            .and_then(|b| b.iter().copied().reduce(f64::max));
        Ok(Outcome {
            exits,
            timed_out,
            interrupted,
            consoles,
            seconds: self.started.elapsed().as_secs_f64(),
            all_joined_s,
            all_booted_s,
        })
    }
}
