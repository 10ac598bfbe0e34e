//! `migrate`, `migration_stats` and `migration_stats_ex`: the user-facing triggers of the
//! migration daemon and the records it keeps.

use abi::{ClusterId, Errno, Pid};
use uarea::{BlockReason, ThreadState};

use super::{Call, Outcome};
use crate::migstats::{self, RECORD_LEN};
use crate::process::Table;
use crate::requests::{post, MigrationRequest, Request};

/// `migrate(pid, cluster)`: a process may move itself or one of its children.
///
/// Moving itself, the calling thread blocks (`BlockReason::Migrating`) until the outcome: its
/// call returns 0 on the destination, or the error here (the process then keeps running
/// here, unchanged) — `EBUSY` at once if another migration of it is under way. Moving a child
/// returns 0 once the request is queued; the child carries on either way.
pub fn migrate(table: &mut Table, call: &Call) -> Outcome {
    request(table, call, abi::MigrateOptions::STOP_AND_COPY)
}

/// `migrate_with(pid, cluster, options)`: `migrate` with a strategy (0: stop-and-copy).
pub fn migrate_with(table: &mut Table, call: &Call) -> Outcome {
    match read_options(table, call, call.args[2]) {
        Ok(options) => request(table, call, options),
        Err(errno) => Outcome::Return(Err(errno)),
    }
}

/// The options block at `address` (0: the defaults), checked whole before it is used.
fn read_options(
    table: &mut Table,
    call: &Call,
    address: u64,
) -> Result<abi::MigrateOptions, Errno> {
    if address == 0 {
        return Ok(abi::MigrateOptions::STOP_AND_COPY);
    }
    let size = call.read_user(table, address, 4)?;
    let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
    if !(abi::MigrateOptions::SIZE_V1..=abi::MigrateOptions::MAX_SIZE).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let block = call.read_user(table, address, size)?;
    abi::MigrateOptions::from_bytes(&block).ok_or(Errno::EINVAL)
}

fn request(table: &mut Table, call: &Call, options: abi::MigrateOptions) -> Outcome {
    let Some(target) = Pid::from_arg(call.args[0]) else {
        return Outcome::Return(Err(Errno::EINVAL));
    };
    let destination = call.args[1];
    if destination >= crate::cluster_count() as u64 || destination == table.cluster.0 as u64 {
        return Outcome::Return(Err(Errno::EINVAL));
    }
    let destination = ClusterId(destination as u16);
    let Some(process) = table
        .processes
        .get(&target)
        .filter(|_| table.is_alive(target))
    else {
        return Outcome::Return(Err(Errno::ESRCH));
    };
    if target != call.pid && process.uarea.header.parent != Some(call.pid) {
        return Outcome::Return(Err(Errno::EPERM));
    }
    let caller = (target == call.pid).then_some((call.pid, call.tid));
    let already = process
        .uarea
        .threads
        .iter()
        .any(|t| matches!(t.state, ThreadState::Blocked(BlockReason::Migrating { .. })));
    if caller.is_some() && already {
        return Outcome::Return(Err(Errno::EBUSY)); // another thread's `migrate` is under way
    }
    post(Request::Migrate(MigrationRequest {
        pid: target,
        destination,
        caller,
        options,
    }));
    match caller {
        Some(_) => Outcome::Block(BlockReason::Migrating { destination }),
        None => Outcome::Return(Ok(0)),
    }
}

/// `migration_stats(buf, len)`: the most recent records, 64 bytes each; returns how many there
/// are in all.
pub fn stats(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let [buffer, len, ..] = call.args;
    let records = migstats::recent();
    let fit = (len as usize / RECORD_LEN).min(records.len());
    let mut bytes = alloc::vec::Vec::new();
    bytes
        .try_reserve_exact(fit * RECORD_LEN)
        .map_err(|_| Errno::ENOMEM)?;
    for record in &records[records.len() - fit..] {
        bytes.extend_from_slice(&record.encode());
    }
    // The whole `[buf, buf + len)` must be mapped and writable, checked before the first byte.
    call.write_user(table, buffer, len, &bytes)?;
    Ok(records.len())
}

/// `migration_stats_ex(buf, len, record_size)`: the most recent records with every figure,
/// `record_size` bytes each (the caller's record: cut, or zero-padded past the kernel's);
/// returns how many there are in all.
pub fn stats_ex(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let [buffer, len, record_size, ..] = call.args;
    let fit = abi::records_ex::stats_ex_fit(buffer, len, record_size)?;
    let record_size = record_size as usize;
    let records = migstats::recent();
    let fit = fit.min(records.len());
    let mut bytes = alloc::vec::Vec::new();
    bytes
        .try_reserve_exact(fit * record_size)
        .map_err(|_| Errno::ENOMEM)?;
    for record in &records[records.len() - fit..] {
        record.extended().write_sized(record_size, &mut bytes);
    }
    // As `migration_stats`: the whole `[buf, buf + len)` is checked before the first byte.
    call.write_user(table, buffer, len, &bytes)?;
    Ok(records.len())
}
