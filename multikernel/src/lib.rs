//! The multikernel layer: the daemons every cluster runs beside its microkernel, talking to
//! the other clusters only over the NoC.
//!
//! One module per daemon, each owning its state and ports; [`daemons`] routes work to them:
//!
//! | daemon | module | serves |
//! |---|---|---|
//! | migration, source side | [`migration::source`] | `migrate` requests for processes here |
//! | migration, destination side | [`migration::destination`] | offers and images from other clusters |
//! | location registry | [`registry`] | where the processes born here live now |
//! | mail forwarding | [`forwarding`] | user mail for processes that moved |
//! | portal relay | [`portal_relay`] | user portal transfers between clusters |
//! | spawner | [`spawner`] | remote spawn, remote kill, exit reports |
//! | names | [`names`] | name-service replication |
//! | listing | [`listing`] | `ps all` |
//!
//! They are stepped on every pass of the scheduler loop, so migrations progress while user
//! threads run. The kernel reaches them only through `kernel::requests`; the monitor and the
//! tests through the functions below.

#![no_std]

extern crate alloc;

pub mod chip;
pub mod daemons;
pub mod forwarding;
pub mod listing;
pub mod migration;

/// Exit code of a process whose old cluster left during post-copy with some of its pages.
pub use migration::PAGES_LOST_EXIT;
pub mod names;
pub mod outbox;
pub mod portal_relay;
pub mod ports;
pub mod registry;
pub mod spawner;

use ::migration::MigrationError;
use abi::{ClusterId, Pid};
use kernel::process::with_table;
use kernel::requests::{post, MigrationRequest, Request};
use spin::Mutex;

pub use spawner::SPAWN_FAILED;

/// Work that makes no progress for this long is abandoned (generous: TCG on a loaded
/// two-core host can stall a cluster for seconds).
pub const STALL_NS: u64 = 20_000_000_000;

static DAEMONS: Mutex<Option<daemons::Daemons>> = Mutex::new(None);

/// Starts the daemons (if this cluster is on a NoC) and hooks them, and the kernel monitor,
/// into the scheduler loop.
pub fn init(cmdline: &kernel::Cmdline) {
    kernel::process::scheduler::set_kernel_work(work);
    if !hal::noc::present() {
        return;
    }
    kernel::monitor::query::set_queries(kernel::monitor::query::Queries {
        location,
        phase: |pid| migration_phase(pid).map(|phase| alloc::format!("{phase:?}")),
        outcome: |pid| outcome(pid).map(|o| o.map_err(|error| alloc::format!("{error:?}"))),
    });
    match daemons::Daemons::new() {
        Ok(mut daemons) => {
            daemons
                .destination
                .set_refusing(cmdline.has("migrate_refuse"));
            *DAEMONS.lock() = Some(daemons);
        }
        Err(error) => log::error!("multikernel daemons not started: {error:?}"),
    }
}

/// Kernel work, once per scheduler pass: the NoC, the daemons, the console.
fn work() {
    if hal::noc::present() {
        kernel::noc::pump();
    }
    let congested = match DAEMONS.lock().as_mut() {
        Some(daemons) => {
            daemons.step();
            daemons.out.is_congested()
        }
        None => {
            serve_alone();
            false
        }
    };
    kernel::monitor::poll();
    // Tickless: work queued during this pass for the daemons (an exit report from a kill,
    // a monitor `migrate` or `ps all`) must not wait for the next interrupt — unless the
    // daemons take none until their outbox drains (they poll meanwhile).
    if kernel::requests::pending() && !congested {
        hal::timer::wake_by(0);
    }
}

/// A cluster without a NoC has no daemons: what the kernel asks is served here (a kill of a
/// local process) or has nobody to go to, and is dropped rather than kept forever.
fn serve_alone() {
    for request in kernel::requests::take_all() {
        if let Request::Kill(pid) = request {
            with_table(|table| {
                if table.is_alive(pid) {
                    table.exit_process(pid, kernel::process::KILLED_EXIT_CODE);
                }
            });
        }
    }
}

fn with_daemons<R>(f: impl FnOnce(&mut daemons::Daemons) -> R) -> Option<R> {
    hal::cpu::without_interrupts(|| DAEMONS.lock().as_mut().map(f))
}

/// Asks for `pid` to migrate to `destination` (wherever it lives now), stop-and-copy.
pub fn request_migration(pid: Pid, destination: ClusterId) {
    request_migration_with(pid, destination, abi::MigrateOptions::STOP_AND_COPY);
}

/// Asks for `pid` to migrate to `destination` (wherever it lives now) as `options` say.
pub fn request_migration_with(pid: Pid, destination: ClusterId, options: abi::MigrateOptions) {
    post(Request::Migrate(MigrationRequest {
        pid,
        destination,
        caller: None,
        options,
    }));
}

/// The outcome of the latest migration of `pid` that left from this cluster.
pub fn outcome(pid: Pid) -> Option<Result<ClusterId, MigrationError>> {
    with_daemons(|d| d.source.outcome(pid)).flatten()
}

/// Where the migration of `pid` leaving from this cluster stands, if one is under way.
pub fn migration_phase(pid: Pid) -> Option<migration::source::Phase> {
    with_daemons(|d| d.source.phase(pid)).flatten()
}

/// True when no migration is leaving, arriving or waiting for a confirmation here.
pub fn migrations_idle() -> bool {
    with_daemons(|d| d.source.is_idle() && d.destination.is_idle()).unwrap_or(true)
}

/// True while this cluster keeps post-copy pages for a process that moved to `cluster`.
pub fn serves_postcopy_to(cluster: ClusterId) -> bool {
    with_daemons(|d| d.source.serves_postcopy_to(cluster)).unwrap_or(false)
}

/// Where a process born here lives now (`None`: here, or gone).
pub fn location(pid: Pid) -> Option<ClusterId> {
    with_daemons(|d| d.registry.get(pid)).flatten()
}

/// Makes `cluster` refuse (or accept again) incoming migrations: draining a cluster, and
/// the tests of the refusal path.
pub fn set_refusing(cluster: ClusterId, refusing: bool) {
    with_daemons(|d| d.set_refusing_on(cluster, refusing));
}
