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
        let line = &mut process.console;
        for &byte in bytes {
            let shown = match byte {
                b'\n' => {
                    flush_console(pid, name, line);
                    continue;
                }
                b'\r' => continue,
                0x20..=0x7E | b'\t' => byte as char,
                _ => '?',
            };
            // The line grows (fallibly: its length is the user's choice) up to the limit;
            // without memory, what it holds is printed first.
            if line.len() >= CONSOLE_LINE_MAX || line.try_reserve(1).is_err() {
                flush_console(pid, name, line);
                if line.try_reserve(1).is_err() {
                    continue;
                }
            }
            line.push(shown);
        }
    }
}

/// Lines of process output kept for the monitor's `console` command and for tests, and
/// their bytes in all (lines are up to 4 KiB: the count alone would let them hold 2 MiB).
const CONSOLE_HISTORY: usize = 512;
const CONSOLE_HISTORY_BYTES: usize = 64 * 1024;

struct History {
    lines: VecDeque<(Pid, String)>,
    bytes: usize,
}

static HISTORY: Mutex<History> = Mutex::new(History {
    lines: VecDeque::new(),
    bytes: 0,
});

/// Prints a complete console line of a process: `[p1.3 hello] text`.
pub(super) fn flush_console(pid: Pid, name: &str, line: &mut String) {
    if line.is_empty() {
        return;
    }
    hal::println!("[p{pid} {name}] {line}");
    let line = core::mem::take(line);
    let mut history = HISTORY.lock();
    while !history.lines.is_empty()
        && (history.lines.len() >= CONSOLE_HISTORY
            || history.bytes + line.len() > CONSOLE_HISTORY_BYTES)
    {
        if let Some((_, old)) = history.lines.pop_front() {
            history.bytes -= old.len();
        }
    }
    if history.lines.try_reserve(1).is_ok() {
        history.bytes += line.len();
        history.lines.push_back((pid, line));
    }
}

/// The recent console lines of `pid` (all processes if `None`), oldest first.
pub fn console_history(pid: Option<Pid>) -> Vec<String> {
    hal::cpu::without_interrupts(|| {
        HISTORY
            .lock()
            .lines
            .iter()
            .filter(|(p, _)| pid.is_none_or(|pid| pid == *p))
            .map(|(_, line)| line.clone())
            .collect()
    })
}
