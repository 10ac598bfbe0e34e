//! The multikernel layer: the daemons every cluster runs beside its microkernel, talking to
//! the other clusters only over the NoC.
//!
//! Today that is the migration daemon (both ends of every migration, plus the home-cluster
//! location registry and remote exit reports); it is stepped on every pass of the scheduler
//! loop, so migrations progress while user threads run.

#![no_std]

extern crate alloc;

pub mod migrator;
pub mod protocol;

use abi::{ClusterId, Pid};
use kernel::process::{with_table, MigrationRequest};
use migration::MigrationError;
use spin::Mutex;

static DAEMON: Mutex<Option<migrator::Daemon>> = Mutex::new(None);

/// Starts the daemons (if this cluster is on a NoC) and hooks them, and the kernel monitor,
/// into the scheduler loop.
pub fn init(cmdline: &kernel::Cmdline) {
    kernel::process::scheduler::set_kernel_work(work);
    if !hal::noc::present() {
        return;
    }
    match migrator::Daemon::new() {
        Ok(mut daemon) => {
            daemon.refusing = cmdline.has("migrate_refuse");
            *DAEMON.lock() = Some(daemon);
        }
        Err(error) => log::error!("migration daemon not started: {error:?}"),
    }
}

/// Kernel work, once per scheduler pass: the NoC, the daemons, the console.
fn work() {
    if hal::noc::present() {
        kernel::noc::pump();
    }
    if let Some(daemon) = DAEMON.lock().as_mut() {
        daemon.step();
    }
    kernel::monitor::poll();
    // Tickless: work queued during this pass for the daemons (an exit report from a kill,
    // a monitor `migrate` or `ps all`) must not wait for the next interrupt.
    let queued = with_table(|t| {
        !(t.remote_exits.is_empty()
            && t.migration_requests.is_empty()
            && t.remote_spawns.is_empty()
            && t.remote_kills.is_empty())
    }) || kernel::process::MACHINE_LIST_REQUESTED
        .load(core::sync::atomic::Ordering::SeqCst);
    if queued {
        hal::timer::wake_by(0);
    }
}

fn with_daemon<R>(f: impl FnOnce(&mut migrator::Daemon) -> R) -> Option<R> {
    hal::cpu::without_interrupts(|| DAEMON.lock().as_mut().map(f))
}

/// Asks for `pid` to migrate to `destination` (wherever it lives now).
pub fn request_migration(pid: Pid, destination: ClusterId) {
    with_table(|table| {
        table.migration_requests.push_back(MigrationRequest {
            pid,
            destination,
            caller: None,
        })
    });
}

/// The outcome of the latest migration of `pid` that left from this cluster.
pub fn outcome(pid: Pid) -> Option<Result<ClusterId, MigrationError>> {
    with_daemon(|d| d.outcome(pid)).flatten()
}

/// Where a process born here lives now (`None`: here, or gone).
pub fn location(pid: Pid) -> Option<ClusterId> {
    with_daemon(|d| d.location(pid)).flatten()
}

/// Makes `cluster` refuse (or accept again) incoming migrations: draining a cluster, and
/// the tests of the refusal path.
pub fn set_refusing(cluster: ClusterId, refusing: bool) {
    with_daemon(|d| d.set_refusing_on(cluster, refusing));
}
