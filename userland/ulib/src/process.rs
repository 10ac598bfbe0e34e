//! Processes: identity, placement, spawning, waiting, killing, listing.

use abi::{ClusterId, Errno, Pid, ProcessInfo, Syscall};
use alloc::vec::Vec;

use crate::raw::call;

/// Ends the process with `code`.
pub fn exit(code: i32) -> ! {
    let _ = call(Syscall::Exit, &[code as u64]);
    unreachable!("exit returned")
}

/// This process's global id (it never changes, even across migration).
pub fn getpid() -> Pid {
    call(Syscall::GetPid, &[])
        .ok()
        .and_then(|raw| Pid::from_arg(raw as u64))
        .expect("getpid")
}

/// The cluster this process runs on now.
pub fn cluster_id() -> ClusterId {
    ClusterId(call(Syscall::ClusterIdOf, &[]).unwrap_or(0) as u16)
}

/// Number of clusters in the machine.
pub fn cluster_count() -> usize {
    call(Syscall::ClusterCount, &[]).unwrap_or(1)
}

/// Starts `program` from the boot archive on `cluster` (`None`: here) with `args`.
pub fn spawn(program: &str, cluster: Option<ClusterId>, args: &[&str]) -> Result<Pid, Errno> {
    let mut packed = Vec::new();
    for arg in args {
        packed.extend_from_slice(arg.as_bytes());
        packed.push(0);
    }
    let cluster = cluster.map_or(abi::ANY_CLUSTER, |c| c.0 as u64);
    let raw = call(
        Syscall::Spawn,
        &[
            program.as_ptr() as u64,
            program.len() as u64,
            cluster,
            packed.as_ptr() as u64,
            packed.len() as u64,
        ],
    )?;
    Pid::from_arg(raw as u64).ok_or(Errno::EINVAL)
}

/// Waits for a child (`None`: any) to exit; returns its pid and exit code.
pub fn wait(child: Option<Pid>) -> Result<(Pid, i32), Errno> {
    let mut status = 0i32;
    let target = child.map_or(abi::ANY_CHILD, |p| p.raw() as u64);
    // SAFETY: `status` is ours and writable.
    let raw = unsafe {
        crate::raw::syscall6(
            Syscall::Wait,
            [target, &mut status as *mut i32 as u64, 0, 0, 0, 0],
        )
    }?;
    Ok((Pid::from_arg(raw as u64).ok_or(Errno::EINVAL)?, status))
}

/// Terminates a process (yourself or one of your children).
pub fn kill(pid: Pid) -> Result<(), Errno> {
    call(Syscall::Kill, &[pid.raw() as u64]).map(|_| ())
}

/// The processes of this cluster.
pub fn list() -> Result<Vec<ProcessInfo>, Errno> {
    let mut records = alloc::vec![ProcessInfo::ZERO; 16];
    loop {
        // SAFETY: the buffer holds `records.len()` records of the ABI's layout.
        let total = unsafe {
            crate::raw::syscall6(
                Syscall::ProcList,
                [
                    records.as_mut_ptr() as u64,
                    records.len() as u64,
                    0,
                    0,
                    0,
                    0,
                ],
            )
        }?;
        if total <= records.len() {
            records.truncate(total);
            return Ok(records);
        }
        records.resize(total, ProcessInfo::ZERO);
    }
}

/// This process's own `proc_list` record.
pub fn info() -> Option<ProcessInfo> {
    let me = getpid().raw();
    list().ok()?.into_iter().find(|r| r.pid == me)
}

/// How many times this process has migrated.
pub fn migrations() -> u32 {
    info().map_or(0, |r| r.migrations)
}

/// Moves process `pid` (yourself, or one of your children) to `cluster`. Moving yourself,
/// this returns on the new cluster (or with the error here, where you keep running).
pub fn migrate(pid: Pid, cluster: ClusterId) -> Result<(), Errno> {
    call(Syscall::Migrate, &[pid.raw() as u64, cluster.0 as u64]).map(|_| ())
}

/// [`migrate`] with a strategy and its tuning (`abi::MigrateOptions`), e.g. pre-copy.
pub fn migrate_with(
    pid: Pid,
    cluster: ClusterId,
    options: &abi::MigrateOptions,
) -> Result<(), Errno> {
    let block = options.to_bytes();
    call(
        Syscall::MigrateWith,
        &[pid.raw() as u64, cluster.0 as u64, block.as_ptr() as u64],
    )
    .map(|_| ())
}

/// Publishes `name` for `pid` (yourself or a child) on every cluster.
pub fn name_link(name: &str, pid: Pid) -> Result<(), Errno> {
    call(
        Syscall::NameLink,
        &[name.as_ptr() as u64, name.len() as u64, pid.raw() as u64],
    )
    .map(|_| ())
}

/// The process `name` stands for.
pub fn name_lookup(name: &str) -> Result<Pid, Errno> {
    let raw = call(
        Syscall::NameLookup,
        &[name.as_ptr() as u64, name.len() as u64],
    )?;
    Pid::from_arg(raw as u64).ok_or(Errno::EINVAL)
}

/// Withdraws `name`.
pub fn name_unlink(name: &str) -> Result<(), Errno> {
    call(
        Syscall::NameUnlink,
        &[name.as_ptr() as u64, name.len() as u64],
    )
    .map(|_| ())
}

/// The records of the migrations that left this cluster (the latest 256, oldest first), with
/// every figure (`migration_stats_ex`). A post-copy record reads its post-copy fields 0 until
/// it is `complete`.
pub fn migration_records() -> Result<Vec<abi::MigrationRecordEx>, Errno> {
    const SIZE: usize = abi::MigrationRecordEx::SIZE;
    let mut capacity = 16;
    loop {
        // u64 words: the call wants an 8-aligned buffer.
        let mut words = alloc::vec![0u64; capacity * SIZE / 8];
        // SAFETY: the buffer is `capacity * SIZE` bytes we own, 8-aligned.
        let total = unsafe {
            crate::raw::syscall6(
                Syscall::MigrationStatsEx,
                [
                    words.as_mut_ptr() as u64,
                    (capacity * SIZE) as u64,
                    SIZE as u64,
                    0,
                    0,
                    0,
                ],
            )
        }?;
        if total > capacity {
            capacity = total;
            continue;
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let (records, _) = bytes.as_chunks::<SIZE>();
        return Ok(records
            .iter()
            .take(total)
            .filter_map(|r| abi::MigrationRecordEx::from_prefix(r))
            .collect());
    }
}
