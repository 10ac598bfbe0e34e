//! What the thread that called `migrate` on its own process hears, and when (issue 11: the
//! call returns truthfully). It blocks (`BlockReason::Migrating`) until the outcome: the copy
//! of the process that travels answers it 0 (`migration::snapshot`); the source answers it
//! with the error when the migration failed and the process runs on here — but only while
//! that thread still waits in that call, so a late outcome never overwrites a register of a
//! thread that has moved on.

use abi::{Errno, Pid, Tid};
use kernel::process::with_table;
use migration::MigrationError;
use multikernel_proto::migrate::MigrateError;

/// Ends the `migrate` call of the thread that asked for its own process's move, if it still
/// waits for it here (`BlockReason::Migrating`): a thread that moved on, or whose process left,
/// is never touched.
pub(super) fn answer(caller: Option<(Pid, Tid)>, outcome: Result<(), MigrationError>) {
    let Some((pid, tid)) = caller else {
        return;
    };
    with_table(|table| {
        let waiting = table
            .processes
            .get(&pid)
            .and_then(|p| p.uarea.thread(tid))
            .is_some_and(|t| {
                matches!(
                    t.state,
                    uarea::ThreadState::Blocked(uarea::BlockReason::Migrating { .. })
                )
            });
        if waiting {
            table.complete_blocked(pid, tid, outcome.map(|()| 0).map_err(Errno::from));
        }
    });
}

/// The kernel's name for a protocol failure (what `migrate` returns and the record says).
pub(super) fn migration_error(error: MigrateError) -> MigrationError {
    match error {
        MigrateError::Refused | MigrateError::Busy => MigrationError::Refused,
        MigrateError::Timeout => MigrationError::Timeout,
        MigrateError::PeerGone | MigrateError::TransferFailed | MigrateError::BadImage => {
            MigrationError::LinkError
        }
        MigrateError::OutOfMemory => MigrationError::OutOfMemory,
        MigrateError::NoSuchProcess => MigrationError::NoSuchProcess,
        MigrateError::BadDestination => MigrationError::BadDestination,
    }
}
