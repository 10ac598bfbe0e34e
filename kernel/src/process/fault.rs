//! Faults raised by user code: demand-zero paging, or the death of the faulting process
//! alone, with a one-line report. The kernel and the other processes carry on.

use hal::trap::{page_fault_cause, ExceptionInfo, TrapFrame};
use uarea::Perms;

use super::memory;
use super::scheduler::{leave, Leave};
use super::{with_table, KILLED_EXIT_CODE};

const PAGE_FAULT: u8 = 14;
const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 2;
const PF_FETCH: u64 = 0x10;

/// Installs the handler into the HAL.
pub fn init() {
    hal::trap::set_user_fault_handler(user_fault);
}

fn user_fault(frame: &mut TrapFrame, info: &ExceptionInfo) {
    if info.vector == PAGE_FAULT && info.error_code & PF_PRESENT == 0 {
        let address = info.address.unwrap_or(0);
        let access = if info.error_code & PF_FETCH != 0 {
            Perms::X
        } else if info.error_code & PF_WRITE != 0 {
            Perms::W
        } else {
            Perms::R
        };
        // Post-copy: a page still at the cluster the process left. Wait for it here, then
        // re-execute the faulting instruction.
        let remote = with_table(|table| {
            let (pid, _) = table.current?;
            let process = table.processes.get(&pid)?;
            process.space.is_remote(address).then_some(pid)
        });
        if let Some(pid) = remote {
            let reason = super::remote::wait_for(pid, address & !0xFFF, false);
            leave(frame, Leave::Blocked(reason));
        }
        let resolved = with_table(|table| {
            let Some((pid, _)) = table.current else {
                return false;
            };
            let Some(process) = table.processes.get_mut(&pid) else {
                return false;
            };
            let ok =
                memory::ensure_page(&mut process.space, &process.uarea.memory, address, access)
                    .is_ok();
            if ok {
                process.uarea.counters.page_faults += 1;
            }
            ok
        });
        if resolved {
            return;
        }
    }
    kill_current(frame, info)
}

fn kill_current(frame: &TrapFrame, info: &ExceptionInfo) -> ! {
    with_table(|table| {
        let Some((pid, tid)) = table.current else {
            return;
        };
        let detail = match info.address {
            Some(address) => {
                let (present, access, _) = page_fault_cause(info.error_code);
                alloc::format!(" at {address:#x} ({access}, {present})")
            }
            None => alloc::string::String::new(),
        };
        let report = alloc::format!(
            "killed: {} {}{detail} in thread {} at rip {:#x}\n",
            info.mnemonic,
            info.name,
            tid.0,
            frame.rip
        );
        table.console_write(pid, report.as_bytes());
        table.exit_process(pid, KILLED_EXIT_CODE);
    });
    leave(frame, Leave::Gone)
}
