//! The kernel monitor: a line-oriented console on the serial port, so a person at
//! `cargo xtask run` can inspect the cluster, start and stop programs, and power it off.
//!
//! It is polled on every pass of the scheduler loop (at least once per quantum), so it stays
//! responsive while user threads compute, and costs one port read when nobody types.
//! Lines starting with `@@` are requests of the host console in the machine-readable mode
//! of [`machine`]; [`query`] is the hook through which the daemons answer about migrations.

pub mod machine;
pub mod query;

use alloc::string::String;
use alloc::vec::Vec;

use crate::process::with_table;

/// What `info` shows (set once at boot).
static MACHINE: spin::Once<hal::MachineInfo> = spin::Once::new();
static MONITOR: spin::Mutex<Option<Monitor>> = spin::Mutex::new(None);

/// Starts the monitor on the serial console.
pub fn init(machine: hal::MachineInfo) {
    MACHINE.call_once(|| machine);
    *MONITOR.lock() = Some(Monitor::new());
}

/// Consumes waiting console input (if the monitor was started).
pub fn poll() {
    if let Some(monitor) = MONITOR.lock().as_mut() {
        monitor.poll();
    }
}

const PROMPT: &str = "tessera> ";

/// Line editor state.
pub struct Monitor {
    line: String,
    prompted: bool,
    /// A host console sent a machine request: stop prompting (the prompt would start the
    /// next line of other output).
    attached: bool,
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    pub fn new() -> Self {
        hal::println!("kernel monitor ready; type `help`.");
        Monitor {
            line: String::new(),
            prompted: false,
            attached: false,
        }
    }

    /// Consumes whatever input is waiting; never blocks.
    pub fn poll(&mut self) {
        if !self.prompted && !self.attached {
            hal::print!("{PROMPT}");
        }
        self.prompted = true;
        while let Some(byte) = hal::serial::try_read_byte() {
            match byte {
                b'\r' | b'\n' => {
                    let line = core::mem::take(&mut self.line);
                    if let Some(request) = line.trim().strip_prefix("@@") {
                        self.attached = true;
                        machine::execute(request);
                    } else {
                        hal::println!();
                        execute(line.trim());
                    }
                    self.prompted = false;
                    return;
                }
                0x08 | 0x7F => {
                    if self.line.pop().is_some() {
                        hal::print!("\x08 \x08");
                    }
                }
                0x20..=0x7E if self.line.len() < 256 => {
                    self.line.push(byte as char);
                    // Machine requests are not echoed.
                    if !self.line.starts_with('@') {
                        hal::serial::write_bytes(&[byte]);
                    }
                }
                _ => {}
            }
        }
    }
}

fn execute(command: &str) {
    let mut words = command.split_ascii_whitespace();
    match words.next() {
        None => {}
        Some("help") => hal::println!(
            "commands:\n  \
             ps [all]           list processes (of every cluster with `all`)\n  \
             spawn NAME [ARGS]  start a program from the boot archive\n  \
             kill PID           stop a process (PID as shown by ps, e.g. 0.2)\n  \
             migrate PID C [S]  move a process to cluster C (any cluster; S = stop|pre|post|hybrid)\n  \
             migrate PID C pre throttle[=PCT]  pre-copy, throttling (up to PCT %) a process that outruns the link\n  \
             migrations         the migrations that left this cluster, with their times\n  \
             names              the name service: names and the pids they stand for\n  \
             programs           list the programs in the boot archive\n  \
             info, mem, uptime  cluster, memory and clock\n  \
             log LEVEL          error, warn, info, debug, trace or off\n  \
             poweroff           power the cluster off\n  \
             (Ctrl-C in the terminal stops QEMU at any time)"
        ),
        Some("info") => {
            if let Some(machine) = MACHINE.get() {
                crate::print_banner(machine);
            }
        }
        Some("mem") => {
            let (heap_size, heap_used) = hal::heap::stats();
            hal::println!(
                "frames: {} free of {} ({} KiB each); heap: {} KiB used of {} KiB",
                hal::frames::free_count(),
                hal::frames::total_count(),
                hal::frames::FRAME_SIZE / 1024,
                heap_used / 1024,
                heap_size / 1024
            );
        }
        Some("uptime") => {
            let ns = hal::clock::now_ns();
            hal::println!(
                "{} {}.{:03} s, {} timer interrupts, {} halts (tickless)",
                if hal::clock::is_chip_time() {
                    "chip time"
                } else {
                    "up"
                },
                ns / 1_000_000_000,
                (ns / 1_000_000) % 1000,
                hal::clock::ticks(),
                hal::timer::halts()
            );
        }
        Some("ps") => {
            if words.next() == Some("all") {
                crate::requests::post(crate::requests::Request::ListMachine);
                hal::println!("asking every cluster; their processes follow as `[cN] ...` lines");
            }
            let records = with_table(|t| t.list());
            hal::println!(
                "{:<8} {:<8} {:<16} {:>7} {:>8} {:>10} {:>10}",
                "PID",
                "PARENT",
                "NAME",
                "THREADS",
                "STATE",
                "CPU ms",
                "MAPPED KiB"
            );
            for r in records {
                print_record(&r, "");
            }
        }
        Some("programs") => {
            for file in crate::ramdisk::files() {
                hal::println!("  {:<16} {:>8} bytes", file.name, file.data.len());
            }
        }
        Some("spawn") => {
            let Some(name) = words.next() else {
                hal::println!("usage: spawn NAME [ARGS...]");
                return;
            };
            let args: Vec<&str> = words.collect();
            match with_table(|t| t.spawn(name, &args, None)) {
                Ok(pid) => hal::println!("started {name} as {pid}"),
                Err(error) => hal::println!("cannot start {name}: {error:?}"),
            }
        }
        // The daemons end it here, hold it for a migration in flight, or pass it on to
        // wherever the process lives.
        Some("kill") => match words.next().and_then(parse_pid) {
            Some(pid) => crate::requests::post(crate::requests::Request::Kill(pid)),
            None => hal::println!("usage: kill PID (e.g. 0.2)"),
        },
        Some("migrate") => {
            let pid = words.next().and_then(parse_pid);
            let cluster = words.next().and_then(|c| c.parse::<u16>().ok());
            let options = abi::MigrateOptions::from_words(words);
            match (pid, cluster, options) {
                (Some(pid), Some(cluster), Some(options))
                    if (cluster as u32) < crate::cluster_count() =>
                {
                    crate::requests::post(crate::requests::Request::Migrate(
                        crate::requests::MigrationRequest {
                            pid,
                            destination: abi::ClusterId(cluster),
                            caller: None,
                            options,
                        },
                    ));
                    hal::println!(
                        "migration of {pid} to cluster {cluster} ({}{}) requested",
                        options.strategy.name(),
                        if options.throttle_max_pct > 0 { ", throttled if it outruns the link" } else { "" }
                    );
                }
                _ => hal::println!(
                    "usage: migrate PID CLUSTER [stop|pre [throttle[=PCT]]|post|hybrid] (cluster < {})",
                    crate::cluster_count()
                ),
            }
        }
        Some("names") => {
            for (name, pid) in crate::names::all() {
                hal::println!("{name:<32} {pid}");
            }
        }
        Some("migrations") => {
            for r in crate::migstats::recent() {
                let post = &r.phases.postcopy;
                hal::println!(
                    "{} c{}->c{} {:<28} {:<13} total {:>7} us  downtime {:>7} us  {:>6} pages ({} pulled, {} pushed){}",
                    r.pid,
                    r.source.0,
                    r.destination.0,
                    r.failure.unwrap_or("ok"),
                    r.strategy.name(),
                    r.total_ns / 1000,
                    r.downtime_ns / 1000,
                    r.pages,
                    post.pulled,
                    post.pushed,
                    if r.phases.complete { "" } else { ", post-copy under way" }
                );
            }
        }
        Some("log") => match words.next().and_then(|level| level.parse().ok()) {
            Some(level) => hal::logger::set_level(level),
            None => hal::println!("usage: log error|warn|info|debug|trace|off"),
        },
        Some("poweroff") => hal::power::poweroff(),
        Some(other) => hal::println!("unknown command `{other}`; type `help`"),
    }
}

/// Parses `CLUSTER.LOCAL` (as `ps` prints) or a raw number.
pub fn parse_pid(text: &str) -> Option<abi::Pid> {
    match text.split_once('.') {
        Some((cluster, local)) => {
            abi::Pid::new(abi::ClusterId(cluster.parse().ok()?), local.parse().ok()?)
        }
        None => abi::Pid::from_raw(text.parse().ok()?),
    }
}

/// One `ps` line; `from` names the reporting cluster for `ps all` (empty: here).
pub fn print_record(r: &abi::ProcessInfo, from: &str) {
    let name = core::str::from_utf8(r.name_bytes()).unwrap_or("?");
    let state = state_name(r);
    let pid = r.pid().map(|p| alloc::format!("{p}")).unwrap_or_default();
    let parent = abi::Pid::from_raw(r.parent)
        .map(|p| alloc::format!("{p}"))
        .unwrap_or("-".into());
    hal::println!(
        "{from}{pid:<8} {parent:<8} {name:<16} {:>7} {state:>8} {:>10} {:>10}",
        r.threads,
        r.cpu_time_ns / 1_000_000,
        r.mapped_bytes / 1024
    );
}

/// A process state as `ps` shows it.
pub fn state_name(r: &abi::ProcessInfo) -> &'static str {
    match r.state() {
        Some(abi::ProcessState::Running) => "running",
        Some(abi::ProcessState::Blocked) => "blocked",
        Some(abi::ProcessState::Frozen) => "frozen",
        Some(abi::ProcessState::Zombie) => "zombie",
        None => "?",
    }
}
