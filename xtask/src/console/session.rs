//! A console session over a booted machine: `cargo xtask run --clusters N` (N > 1) and the
//! scripted session of `cargo xtask test`.
//!
//! Boot with a progress line, print the topology once, then hand the keyboard (or the
//! script) to the machine console; `shutdown` powers every cluster off and the run ends
//! with status 0 and nothing left running (every child is held by a guard).

use std::sync::atomic::Ordering;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::boot::BootProgress;
use super::hub::Hub;
use super::view::{Sink, View};
use super::{noc_map, Console};
use crate::cluster::{self, NOC_LINE};

/// What to run on the machine.
pub struct Session<'a> {
    pub name: &'a str,
    pub clusters: usize,
    pub image: &'a std::path::Path,
    pub accel: crate::qemu::Accel,
    pub cmdline: &'a dyn Fn(usize) -> String,
    /// The script's text, or `None` for the interactive prompt.
    pub script: Option<String>,
    pub quiet: bool,
    pub gdb: Option<(usize, u16)>,
    pub timeout: Option<u64>,
    /// The kernel was built with the dev profile (where its symbols are).
    pub debug: bool,
}

/// How it ended.
pub struct Ended {
    pub status: i32,
    /// Host pids of every QEMU and of noc-sim (to check none is left).
    pub pids: Vec<u32>,
    pub logs: Vec<std::path::PathBuf>,
}

/// The longest a boot may take before the console starts anyway.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(session: &Session) -> Result<Ended> {
    let n = session.clusters;
    let (lines, incoming) = channel();
    let spec = cluster::Spec {
        name: session.name,
        clusters: n,
        image: session.image,
        accel: session.accel,
        cmdline: session.cmdline,
        guest_faults: false,
        model: cluster::NocModel::default(),
        interactive: true,
        show: |_| true,
        sink: Some(lines),
        gdb: session.gdb,
    };
    let mut machine = cluster::start(&spec)?;
    drop(spec);
    // Drawn from here on, below the commands echoed while starting. The cluster under gdb
    // stays halted until the debugger continues it.
    let expected = n - usize::from(session.gdb.is_some());
    let progress = Arc::new(BootProgress::new(
        indicatif::ProgressBar::no_length(),
        n,
        expected,
    ));
    let (qemus, noc) = machine.pids();
    let mut pids = qemus;
    pids.push(noc);
    let logs = machine.logs.clone();
    let hub = Arc::new(Hub::new(machine.take_inputs()));
    let view = Arc::new(View::new(n, session.quiet));
    view.set_sink(Sink::Bar(progress.bar().clone()));
    {
        let (hub, view, progress) = (hub.clone(), view.clone(), progress.clone());
        std::thread::spawn(move || {
            for (k, line) in incoming {
                progress.line(k, &line);
                if k == NOC_LINE {
                    view.cluster_line(k, &line);
                } else if let Some(line) = hub.take_line(&line) {
                    view.cluster_line(k, &line);
                }
            }
        });
    }
    if let Some((k, port)) = session.gdb {
        view.say(&gdb_hint(k, port, session.debug));
    }
    let interrupted = crate::interrupt::interrupted_flag();
    while !progress.done() && machine.started.elapsed() < BOOT_TIMEOUT {
        progress.tick();
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    progress.bar().finish_and_clear();
    view.set_sink(Sink::Plain);
    view.say(&format!(
        "xtask: {}/{n} clusters booted in {:.1} s",
        progress.booted(),
        machine.started.elapsed().as_secs_f64()
    ));
    view.say(&noc_map::topology(n));
    let console = Console {
        hub,
        view: view.clone(),
        control: machine.control.clone(),
        programs: crate::image::user_programs().unwrap_or_default(),
        trace: Mutex::new(None),
        last_pid: Mutex::new(None),
    };
    let verdict: Arc<Mutex<Option<bool>>> = Arc::new(Mutex::new(None));
    let script = session.script.clone();
    let verdict2 = verdict.clone();
    std::thread::spawn(move || {
        let good = match script {
            Some(text) => {
                let (ok, failed) = super::script::run(&console, &text);
                console.view.say(&format!(
                    "console: script: {ok} commands ok, {failed} failed"
                ));
                failed == 0
            }
            None => {
                console.view.say(
                    "type `help` for the commands; `shutdown` or Ctrl-D powers the machine off",
                );
                super::repl::run(&console)
            }
        };
        if let Ok(mut verdict) = verdict2.lock() {
            *verdict = Some(good);
        }
    });
    let deadline = session
        .timeout
        .map(|s| Instant::now() + Duration::from_secs(s));
    let outcome = machine.wait(deadline)?;
    let good = verdict.lock().ok().and_then(|v| *v);
    let status = if outcome.interrupted {
        130
    } else if outcome.timed_out {
        124
    } else if good == Some(false) || outcome.exits.iter().any(|e| *e != Some(0)) {
        1
    } else {
        0
    };
    Ok(Ended { status, pids, logs })
}

/// The exact gdb command line for the cluster under a gdb stub.
pub fn gdb_hint(k: usize, port: u16, debug: bool) -> String {
    let words: Vec<String> = gdb_commands(port, debug)
        .iter()
        .map(|c| {
            format!(
                "-ex {}",
                if c.contains(' ') {
                    format!("'{c}'")
                } else {
                    c.clone()
                }
            )
        })
        .collect();
    format!(
        "xtask: cluster {k} waits for gdb on port {port}; in another terminal:\n    gdb {}\n  (symbols of a user program: docs/apps.md, \"Debugging\")",
        words.join(" ")
    )
}

/// The gdb commands (each one `-ex`) that attach to a stub on `port` with the kernel's
/// symbols and let the cluster run. The kernel is position-independent and linked at 0; the
/// bootloader maps it at [`abi::types::KERNEL_BASE`], hence the offset.
pub fn gdb_commands(port: u16, debug: bool) -> Vec<String> {
    let elf = crate::image::workspace_root()
        .join("target")
        .join(crate::image::KERNEL_TARGET)
        .join(if debug { "debug" } else { "release" })
        .join("tessera-kernel");
    vec![
        format!(
            "symbol-file -o {:#x} {}",
            abi::types::KERNEL_BASE,
            elf.display()
        ),
        format!("target remote 127.0.0.1:{port}"),
        "continue".into(),
    ]
}

/// True if a host process with this pid still exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(false)
}
