//! Process-level calls: exit, console, clocks, spawn/wait/kill/list, anonymous memory.

use abi::{ClockId, Errno, MapFlags, Pid, ProcessInfo, Prot};
use alloc::string::String;
use alloc::vec::Vec;
use uarea::{Backing, BlockReason, Perms, Segment, SegmentKind};

use super::{Call, Outcome};
use crate::process::memory::{self, PAGE, USER_START};
use crate::process::{Table, KILLED_EXIT_CODE};

/// Most bytes one `write` may carry.
pub const WRITE_MAX: usize = 64 * 1024;
/// Longest program name `spawn` accepts.
pub const PROGRAM_NAME_MAX: usize = 64;
/// Longest program name of a spawn on another cluster (it travels in one NoC message).
pub const REMOTE_NAME_MAX: usize = 32;
/// Longest argument block of a spawn on another cluster.
pub const REMOTE_ARGS_MAX: usize = 64;

pub fn exit(table: &mut Table, call: &Call) -> Outcome {
    table.exit_process(call.pid, call.args[0] as i32);
    Outcome::Gone
}

pub fn write(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let (address, len) = (call.args[0], call.args[1] as usize);
    if len > WRITE_MAX {
        return Err(Errno::EINVAL);
    }
    let mut bytes = alloc::vec::Vec::new();
    bytes.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    bytes.resize(len, 0);
    let process = call.process(table)?;
    memory::copy_from_user(
        &mut process.space,
        &process.uarea.memory,
        address,
        &mut bytes,
    )?;
    table.console_write(call.pid, &bytes);
    Ok(len)
}

pub fn clock_ns(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    match ClockId::try_from(call.args[0])? {
        ClockId::Monotonic => Ok(hal::clock::now_ns() as usize),
        ClockId::ProcessCpu => {
            let process = call.process(table)?;
            let running = crate::process::scheduler::current_slice_ns();
            Ok((process.uarea.counters.cpu_time_ns + running) as usize)
        }
        // Per-thread CPU time is not tracked yet.
        ClockId::ThreadCpu => Err(Errno::ENOSYS),
    }
}

/// Reads a user string of at most `max` bytes (`ENAMETOOLONG` beyond).
pub(super) fn read_string(
    table: &mut Table,
    call: &Call,
    address: u64,
    len: usize,
    max: usize,
) -> Result<String, Errno> {
    if len > max {
        return Err(Errno::ENAMETOOLONG);
    }
    String::from_utf8(call.read_user(table, address, len)?).map_err(|_| Errno::EINVAL)
}

pub fn spawn(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let [name_at, name_len, cluster, args_at, args_len, _] = call.args;
    if args_len as usize > abi::SPAWN_ARGS_MAX {
        return Err(Errno::E2BIG);
    }
    if name_len == 0 {
        return Err(Errno::EINVAL);
    }
    let name = read_string(table, call, name_at, name_len as usize, PROGRAM_NAME_MAX)?;
    let args_text = read_string(table, call, args_at, args_len as usize, abi::SPAWN_ARGS_MAX)?;
    let args: Vec<&str> = args_text.split('\0').filter(|a| !a.is_empty()).collect();
    if cluster != abi::ANY_CLUSTER && cluster != table.cluster.0 as u64 {
        if cluster >= crate::cluster_count() as u64 {
            return Err(Errno::EINVAL);
        }
        // Another cluster: the spawner daemons create it there with a pid born here (this
        // cluster stays its home, so its exit is reported back to `wait`).
        if name.len() > REMOTE_NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if args_text.len() > REMOTE_ARGS_MAX {
            return Err(Errno::E2BIG);
        }
        if crate::ramdisk::find(&name).is_none() {
            return Err(Errno::ENOENT);
        }
        if table.children_of(call.pid) >= abi::limits::CHILDREN_PER_PROCESS {
            return Err(Errno::EAGAIN);
        }
        let pid = table.reserve_pid().ok_or(Errno::EAGAIN)?;
        let target = abi::ClusterId(cluster as u16);
        let posted = table.add_child(call.pid, pid, target).and_then(|()| {
            crate::requests::try_post(crate::requests::Request::Spawn(
                crate::requests::RemoteSpawn {
                    pid,
                    parent: call.pid,
                    cluster: target,
                    program: name,
                    args: args_text,
                },
            ))
        });
        if let Err(errno) = posted {
            table.forget_child(call.pid, pid);
            table.unreserve_pid(pid);
            return Err(errno);
        }
        return Ok(pid.raw() as usize);
    }
    let pid = table.spawn(&name, &args, Some(call.pid))?;
    Ok(pid.raw() as usize)
}

pub fn wait(table: &mut Table, call: &Call) -> Outcome {
    let [target, status_at, ..] = call.args;
    let child = match target {
        abi::ANY_CHILD => None,
        raw => match Pid::from_arg(raw) {
            Some(pid) => Some(pid),
            None => return Outcome::Return(Err(Errno::EINVAL)),
        },
    };
    let result = (|| {
        if status_at != 0 {
            // Check the status word is writable before reaping anything.
            let process = call.process(table)?;
            memory::copy_to_user(
                &mut process.space,
                &process.uarea.memory,
                status_at,
                &0i32.to_le_bytes(),
            )?;
        }
        table.reap_child(call.pid, child)
    })();
    match result {
        Err(errno) => Outcome::Return(Err(errno)),
        Ok(None) => Outcome::Block(BlockReason::ChildWait { pid: child }),
        Ok(Some((pid, code))) => {
            if status_at != 0 {
                if let Ok(process) = call.process(table) {
                    let _ = memory::copy_to_user(
                        &mut process.space,
                        &process.uarea.memory,
                        status_at,
                        &code.to_le_bytes(),
                    );
                }
            }
            Outcome::Return(Ok(pid.raw() as usize))
        }
    }
}

/// A process may kill itself and its own children (see `docs/abi.md`), wherever they live.
pub fn kill(table: &mut Table, call: &Call) -> Outcome {
    let Some(target) = Pid::from_arg(call.args[0]) else {
        return Outcome::Return(Err(Errno::EINVAL));
    };
    if target == call.pid {
        table.exit_process(target, KILLED_EXIT_CODE);
        return Outcome::Gone;
    }
    let Some(child) = table.child(call.pid, target) else {
        let exists = table.is_alive(target);
        return Outcome::Return(Err(if exists { Errno::EPERM } else { Errno::ESRCH }));
    };
    if child.exit_code.is_some() {
        return Outcome::Return(Err(Errno::ESRCH)); // ended, not yet reaped
    }
    let here_and_running = table
        .processes
        .get(&target)
        .is_some_and(|p| p.uarea.exit.exit_code.is_none() && !p.uarea.is_frozen());
    if here_and_running {
        table.exit_process(target, KILLED_EXIT_CODE);
        return Outcome::Return(Ok(0));
    }
    // Elsewhere, or migrating: the daemons deliver the kill where it lives (a migration in
    // flight applies it to whichever copy survives). Its exit reaches us as news.
    let posted = crate::requests::try_post(crate::requests::Request::Kill(target));
    Outcome::Return(posted.map(|()| 0))
}

/// Writes up to `capacity` records; returns how many processes there are in all.
pub fn proc_list(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let [buffer, capacity, ..] = call.args;
    // The whole buffer the caller claims must be mapped (docs/abi.md), checked before use.
    let len = capacity
        .checked_mul(ProcessInfo::SIZE as u64)
        .ok_or(Errno::EFAULT)?;
    let records = table.list();
    let count = records.len().min(capacity as usize);
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(count * ProcessInfo::SIZE)
        .map_err(|_| Errno::ENOMEM)?;
    for record in &records[..count] {
        bytes.extend_from_slice(&record.to_bytes());
    }
    call.write_user(table, buffer, len, &bytes)?;
    Ok(records.len())
}

pub fn mmap(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let [address, len, prot, flags, ..] = call.args;
    let prot = Prot::from_bits(prot).ok_or(Errno::EINVAL)?;
    let flags = MapFlags::from_bits(flags).ok_or(Errno::EINVAL)?;
    if len == 0 || prot.contains(Prot::WRITE | Prot::EXEC) {
        return Err(Errno::EINVAL);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::ENOMEM)?;
    if len > memory::MMAP_MAX_LEN {
        return Err(Errno::ENOMEM);
    }
    let process = call.process(table)?;
    let map = &mut process.uarea.memory;
    if map.segments.len() >= uarea::MAX_SEGMENTS
        || map.mapped_bytes().saturating_add(len) > abi::limits::MAPPED_BYTES_PER_PROCESS
    {
        return Err(Errno::ENOMEM);
    }
    let start = if flags.contains(MapFlags::FIXED) {
        let end = address.checked_add(len).ok_or(Errno::EINVAL)?;
        if !address.is_multiple_of(PAGE) || address < USER_START || end > memory::STACK_TOP {
            return Err(Errno::EINVAL);
        }
        if !memory::is_free(map, address, len) {
            return Err(Errno::EEXIST);
        }
        address
    } else {
        let hint = if address == 0 {
            map.mmap_cursor
        } else {
            address
        };
        memory::place_mapping(map, hint, len).ok_or(Errno::ENOMEM)?
    };
    map.insert(Segment {
        start,
        len,
        perms: Perms::from(prot),
        kind: SegmentKind::Mmap,
        backing: Backing::Anonymous,
    });
    if !flags.contains(MapFlags::FIXED) {
        // `place_mapping` checked `start + len <= MMAP_END`.
        map.mmap_cursor = map.mmap_cursor.max(start + len);
    }
    Ok(start as usize)
}

pub fn munmap(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let [address, len, ..] = call.args;
    if address % PAGE != 0 || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::EINVAL)?;
    let process = call.process(table)?;
    memory::unmap_range(&mut process.space, &mut process.uarea.memory, address, len)?;
    Ok(0)
}
