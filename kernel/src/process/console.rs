//! Process console output: each complete line printed tagged with its process, and the
//! recent lines kept for the monitor and the tests.

use abi::Pid;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use spin::Mutex;

use super::{Table, CONSOLE_LINE_MAX};

impl Table {
    /// Appends console output of `pid`, printing each complete line tagged with the process.
    pub fn console_write(&mut self, pid: Pid, bytes: &[u8]) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        let name = &process.uarea.header.name;
        for &byte in bytes {
            match byte {
                b'\n' => flush_console(pid, name, &mut process.console),
                b'\r' => {}
                0x20..=0x7E | b'\t' => process.console.push(byte as char),
                _ => process.console.push('?'),
            }
            if process.console.len() >= CONSOLE_LINE_MAX {
                flush_console(pid, name, &mut process.console);
            }
        }
    }
}

/// Lines of process output kept for the monitor's `console` command and for tests.
const CONSOLE_HISTORY: usize = 512;
static HISTORY: Mutex<VecDeque<(Pid, String)>> = Mutex::new(VecDeque::new());

/// Prints a complete console line of a process: `[p1.3 hello] text`.
pub(super) fn flush_console(pid: Pid, name: &str, line: &mut String) {
    if !line.is_empty() {
        hal::println!("[p{pid} {name}] {line}");
        let mut history = HISTORY.lock();
        if history.len() == CONSOLE_HISTORY {
            history.pop_front();
        }
        history.push_back((pid, core::mem::take(line)));
    }
}

/// The recent console lines of `pid` (all processes if `None`), oldest first.
pub fn console_history(pid: Option<Pid>) -> Vec<String> {
    hal::cpu::without_interrupts(|| {
        HISTORY
            .lock()
            .iter()
            .filter(|(p, _)| pid.is_none_or(|pid| pid == *p))
            .map(|(_, line)| line.clone())
            .collect()
    })
}
