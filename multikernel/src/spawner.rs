//! The spawner: processes created on, killed on and exiting on other clusters.
//!
//! A process spawned elsewhere gets a pid born at its parent's cluster, which stays its home:
//! the home records where it lives, and wherever it ends its exit is reported home (which
//! frees its number). Its parent, wherever it lives by then, hears of the exit as news
//! (`kernel::process::children`), where its `wait` finds it. A kill goes to where the process lives, asked of its home
//! (or followed along forwarding pointers) when this cluster does not host it.

use abi::{ClusterId, Pid};
use kernel::process::{with_table, Table, KILLED_EXIT_CODE};
use kernel::requests::{ChildNews, RemoteSpawn};

use crate::chip;
use crate::forwarding::MailForwarder;
use crate::outbox::Outbox;
use crate::registry::LocationRegistry;
use multikernel_proto::message::{heapless_str, Message};

/// Exit code reported for a remote spawn that could not create the process (`-ENOENT`).
pub const SPAWN_FAILED: i32 = -2;

#[derive(Default)]
pub struct Spawner;

impl Spawner {
    /// Asks `spawn.cluster` to create the process; its parent is here.
    pub fn spawn_remote(
        &mut self,
        spawn: RemoteSpawn,
        registry: &mut LocationRegistry,
        out: &mut Outbox,
    ) {
        let (Ok(program), Ok(args)) = (
            heapless_str::Name::try_from(spawn.program.as_str()),
            heapless_str::Args::try_from(spawn.args.as_str()),
        ) else {
            with_table(|table| {
                table.record_remote_exit(spawn.pid, SPAWN_FAILED);
                table.child_news(spawn.parent, spawn.pid, ChildNews::Exited(SPAWN_FAILED));
            });
            return;
        };
        registry.set(spawn.pid, spawn.cluster);
        out.send(
            spawn.cluster,
            Message::Spawn {
                pid: spawn.pid,
                parent: spawn.parent,
                program,
                args,
            },
        );
    }

    /// Another cluster asks for a process here. If it cannot be created, its home frees the
    /// number and its parent (wherever it lives now) hears of an exit with `SPAWN_FAILED`.
    pub fn on_spawn(
        &mut self,
        from: ClusterId,
        (pid, parent, program, args): (Pid, Pid, &str, &str),
        out: &mut Outbox,
    ) {
        let args: alloc::vec::Vec<&str> = args.split('\0').filter(|a| !a.is_empty()).collect();
        let result = with_table(|table| table.spawn_as(pid, program, &args, Some(parent)));
        if let Err(error) = result {
            log::warn!("remote spawn of `{program}` as {pid} failed: {error:?}");
            out.send(
                from,
                Message::Exited {
                    pid,
                    code: SPAWN_FAILED,
                },
            );
            kernel::requests::post(kernel::requests::Request::ChildNews {
                parent,
                child: pid,
                news: ChildNews::Exited(SPAWN_FAILED),
            });
        }
    }

    /// A process born elsewhere exited here: its home hears of it.
    pub fn report_exit(&mut self, pid: Pid, code: i32, out: &mut Outbox) {
        out.send(pid.birth_cluster(), Message::Exited { pid, code });
    }

    /// A process born here exited elsewhere.
    pub fn on_exited(&mut self, pid: Pid, code: i32, registry: &mut LocationRegistry) {
        registry.forget(pid);
        with_table(|table| table.record_remote_exit(pid, code));
    }

    /// Ends `pid` here, or passes the kill on towards where it lives.
    pub fn kill(
        &mut self,
        table: &mut Table,
        pid: Pid,
        forwarder: &MailForwarder,
        registry: &LocationRegistry,
        out: &mut Outbox,
    ) {
        if table.is_alive(pid) {
            table.exit_process(pid, KILLED_EXIT_CODE);
            return;
        }
        let next = forwarder
            .next_hop(pid, registry)
            .or_else(|| (pid.birth_cluster() != chip::here()).then_some(pid.birth_cluster()));
        if let Some(cluster) = next.filter(|c| *c != chip::here()) {
            out.send(cluster, Message::Kill { pid });
        }
    }
}
