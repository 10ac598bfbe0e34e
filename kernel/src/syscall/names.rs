//! Name service calls (see `crate::names`).

use abi::{Errno, Pid};
use alloc::string::String;

use super::Call;
use crate::names::{self, NAME_MAX};
use crate::process::Table;

fn read_name(table: &mut Table, call: &Call) -> Result<String, Errno> {
    let (address, len) = (call.args[0], call.args[1] as usize);
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    super::process::read_string(table, call, address, len, NAME_MAX)
}

/// True if `pid` is the caller or one of its children (here or elsewhere).
fn may_name(table: &Table, call: &Call, pid: Pid) -> bool {
    pid == call.pid
        || table
            .child(call.pid, pid)
            .is_some_and(|c| c.exit_code.is_none())
}

pub fn link(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let name = read_name(table, call)?;
    let pid = Pid::from_arg(call.args[2]).ok_or(Errno::EINVAL)?;
    if !may_name(table, call, pid) {
        return Err(Errno::EPERM);
    }
    match names::link(&name, pid) {
        Ok(()) => Ok(0),
        Err(names::LinkError::Taken) => Err(Errno::EEXIST),
        Err(names::LinkError::Full) => Err(Errno::ENOSPC),
        Err(names::LinkError::Busy) => Err(Errno::EAGAIN),
    }
}

pub fn lookup(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let name = read_name(table, call)?;
    names::lookup(&name)
        .map(|pid| pid.raw() as usize)
        .ok_or(Errno::ENOENT)
}

pub fn unlink(table: &mut Table, call: &Call) -> Result<usize, Errno> {
    let name = read_name(table, call)?;
    let pid = names::lookup(&name).ok_or(Errno::ENOENT)?;
    if !may_name(table, call, pid) {
        return Err(Errno::EPERM);
    }
    names::unlink(&name);
    Ok(0)
}
