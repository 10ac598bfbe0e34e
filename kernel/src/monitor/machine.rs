//! The monitor's machine-readable mode, for the host console (`cargo xtask run`).
//!
//! A request is one input line `@@ID COMMAND [ARGS]` (ID a decimal request id chosen by the
//! host). The answer is zero or more `@@ID row FIELD...` lines, then exactly one
//! `@@ID ok [TEXT]` or `@@ID err TEXT` line; every answer line starts a line of its own, so
//! the host filters them out of the displayed log. Fields are separated by one space and
//! never contain one. Commands:
//!
//! | request | rows | final line |
//! |---|---|---|
//! | `ps` | `PID PARENT NAME THREADS STATE CPU_MS MAPPED_KIB` | `ok` |
//! | `programs` | `NAME BYTES` | `ok` |
//! | `spawn NAME [ARGS]` | — | `ok PID` |
//! | `kill PID` | — | `ok` / `err no such pid` |
//! | `where PID` (on its birth cluster) | — | `ok CLUSTER` / `err no such pid` |
//! | `migrate PID CLUSTER [STRATEGY [throttle[=PCT]]]` (where it lives) | — | `ok` (requested) / `err ...` |
//! | `outcome PID` | — | `ok pending PHASE`, `ok done CLUSTER`, `ok failed ERROR`, `ok none` |
//! | `migrations` | `PID SRC DST STATUS PREP_US DOWN_US RESUME_US TOTAL_US PAGES BYTES` | `ok` |
//! | `log LEVEL` | — | `ok` |
//! | `poweroff` | — | `ok`, then the cluster powers off |
//!
//! Human output (`tessera>` and its commands) is unchanged; once a machine request arrives
//! the monitor stops printing its prompt, which would otherwise start other lines.

use abi::{ClusterId, Pid};
use alloc::string::String;
use alloc::vec::Vec;

use super::{parse_pid, query, state_name};
use crate::process::with_table;

/// Runs one request (the line without its `@@`).
pub fn execute(request: &str) {
    let (id, command) = request.split_once(' ').unwrap_or((request, ""));
    let Ok(id) = id.parse::<u64>() else {
        hal::println!("@@0 err bad request id `{id}`");
        return;
    };
    let mut words = command.split_ascii_whitespace();
    let verb = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    match answer(id, verb, &args) {
        Ok(text) if text.is_empty() => hal::println!("@@{id} ok"),
        Ok(text) => hal::println!("@@{id} ok {text}"),
        Err(text) => hal::println!("@@{id} err {text}"),
    }
    if verb == "poweroff" {
        hal::power::poweroff();
    }
}

fn pid_arg(args: &[&str], at: usize) -> Result<Pid, String> {
    let text = args.get(at).ok_or("missing PID")?;
    parse_pid(text).ok_or_else(|| alloc::format!("bad pid `{text}`"))
}

fn here() -> ClusterId {
    ClusterId(hal::noc::cluster())
}

fn answer(id: u64, verb: &str, args: &[&str]) -> Result<String, String> {
    match verb {
        "ps" => {
            for r in with_table(|t| t.list()) {
                let name = core::str::from_utf8(r.name_bytes()).unwrap_or("?");
                let pid = r.pid().map(|p| alloc::format!("{p}")).unwrap_or_default();
                let parent = Pid::from_raw(r.parent)
                    .map(|p| alloc::format!("{p}"))
                    .unwrap_or("-".into());
                hal::println!(
                    "@@{id} row {pid} {parent} {name} {} {} {} {}",
                    r.threads,
                    state_name(&r),
                    r.cpu_time_ns / 1_000_000,
                    r.mapped_bytes / 1024
                );
            }
            Ok(String::new())
        }
        "programs" => {
            for file in crate::ramdisk::files() {
                hal::println!("@@{id} row {} {}", file.name, file.data.len());
            }
            Ok(String::new())
        }
        "spawn" => {
            let name = args.first().ok_or("usage: spawn NAME [ARGS]")?;
            with_table(|t| t.spawn(name, &args[1..], None))
                .map(|pid| alloc::format!("{pid}"))
                .map_err(|error| alloc::format!("cannot start {name}: {error:?}"))
        }
        "kill" => {
            let pid = pid_arg(args, 0)?;
            locate(pid)?;
            crate::requests::post(crate::requests::Request::Kill(pid));
            Ok(String::new())
        }
        "where" => locate(pid_arg(args, 0)?).map(|c| alloc::format!("{}", c.0)),
        "migrate" => {
            let pid = pid_arg(args, 0)?;
            let count = crate::cluster_count();
            let destination = args
                .get(1)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| u32::from(*c) < count)
                .ok_or_else(|| alloc::format!("bad cluster (0..{})", count.saturating_sub(1)))?;
            if !with_table(|t| t.is_alive(pid)) {
                return Err(alloc::format!("{pid} does not live on c{}", here().0));
            }
            if destination == here().0 {
                return Err(alloc::format!("{pid} is already on c{destination}"));
            }
            let options = abi::MigrateOptions::from_words(args.iter().skip(2).copied())
                .ok_or_else(|| {
                    alloc::format!(
                        "bad strategy {} (stop, pre, pre throttle[=PCT], post, hybrid)",
                        args.get(2..).unwrap_or_default().join(" ")
                    )
                })?;
            crate::requests::post(crate::requests::Request::Migrate(
                crate::requests::MigrationRequest {
                    pid,
                    destination: ClusterId(destination),
                    caller: None,
                    options,
                },
            ));
            Ok(String::new())
        }
        "outcome" => {
            let pid = pid_arg(args, 0)?;
            let queries = query::queries().ok_or("no migration daemon on this cluster")?;
            if let Some(phase) = (queries.phase)(pid) {
                return Ok(alloc::format!("pending {phase}"));
            }
            Ok(match (queries.outcome)(pid) {
                Some(Ok(cluster)) => alloc::format!("done {}", cluster.0),
                Some(Err(error)) => alloc::format!("failed {}", error.replace(' ', "_")),
                None => "none".into(),
            })
        }
        "migrations" => {
            for r in crate::migstats::recent() {
                hal::println!(
                    "@@{id} row {} {} {} {} {} {} {} {} {} {}",
                    r.pid,
                    r.source.0,
                    r.destination.0,
                    r.failure.unwrap_or("ok").replace(' ', "_"),
                    r.preparation_ns / 1000,
                    r.downtime_ns / 1000,
                    r.resume_ns / 1000,
                    r.total_ns / 1000,
                    r.pages,
                    r.bytes
                );
            }
            Ok(String::new())
        }
        "log" => {
            let level = args
                .first()
                .and_then(|l| l.parse().ok())
                .ok_or("bad level")?;
            hal::logger::set_level(level);
            Ok(String::new())
        }
        "poweroff" => Ok(String::new()),
        other => Err(alloc::format!("unknown request `{other}`")),
    }
}

/// Where `pid` lives, asked on any cluster: here if it is in the table; for a pid born
/// here, wherever the location registry says.
fn locate(pid: Pid) -> Result<ClusterId, String> {
    if with_table(|t| t.is_alive(pid)) {
        return Ok(here());
    }
    if pid.birth_cluster() != here() {
        return Err(alloc::format!(
            "{pid} is not here; ask c{}",
            pid.birth_cluster().0
        ));
    }
    query::queries()
        .and_then(|q| (q.location)(pid))
        .ok_or_else(|| alloc::format!("no such pid {pid}"))
}
