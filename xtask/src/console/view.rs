//! What the person at the console sees: every cluster's lines tagged `[cK]` (coloured on a
//! terminal), printed above the prompt and never into it (rustyline's external printer),
//! above the boot progress bar while booting, or plainly in a script. `log` chooses the
//! clusters shown; `--quiet` shows none. Every line is also kept, so a script can wait for it.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::cluster::NOC_LINE;

const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];
/// Lines kept for `wait-output`.
const KEPT: usize = 20_000;

/// Where lines go now.
pub enum Sink {
    Plain,
    Bar(indicatif::ProgressBar),
    Printer(Box<dyn rustyline::ExternalPrinter + Send>),
}

struct State {
    sink: Sink,
    /// Clusters whose output is shown (`log`).
    shown: Vec<bool>,
    /// (sequence number, cluster, line), newest last.
    kept: VecDeque<(u64, usize, String)>,
    /// When each kept line arrived (parallel to `kept`).
    arrivals: VecDeque<Instant>,
    seq: u64,
}

pub struct View {
    state: Mutex<State>,
    /// The line editor is reading (the external printer prints above its prompt); between
    /// two prompts lines are printed plainly, or rustyline would run them together.
    pub editing: std::sync::atomic::AtomicBool,
    arrived: Condvar,
    quiet: bool,
    colour: bool,
}

impl View {
    pub fn new(clusters: usize, quiet: bool) -> View {
        View {
            state: Mutex::new(State {
                sink: Sink::Plain,
                shown: vec![true; clusters],
                kept: VecDeque::new(),
                arrivals: VecDeque::new(),
                seq: 0,
            }),
            arrived: Condvar::new(),
            editing: std::sync::atomic::AtomicBool::new(false),
            quiet,
            colour: std::io::stdout().is_terminal(),
        }
    }

    pub fn set_sink(&self, sink: Sink) {
        if let Ok(mut state) = self.state.lock() {
            state.sink = sink;
        }
    }

    /// `log CLUSTER` / `log all` / `log none`.
    pub fn show_only(&self, cluster: Option<usize>, all: bool) {
        if let Ok(mut state) = self.state.lock() {
            for (k, shown) in state.shown.iter_mut().enumerate() {
                *shown = all || Some(k) == cluster;
            }
        }
    }

    pub fn shown(&self) -> Vec<bool> {
        self.state
            .lock()
            .map(|s| s.shown.clone())
            .unwrap_or_default()
    }

    /// A console line of cluster `k` (or noc-sim).
    pub fn cluster_line(&self, k: usize, line: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.seq += 1;
        let seq = state.seq;
        if state.kept.len() == KEPT {
            state.kept.pop_front();
            state.arrivals.pop_front();
        }
        state.kept.push_back((seq, k, line.to_string()));
        state.arrivals.push_back(Instant::now());
        let shown = !self.quiet && (k == NOC_LINE || state.shown.get(k).copied().unwrap_or(false));
        if shown && !line.starts_with("summary:") {
            let tag = if k == NOC_LINE {
                "noc".to_string()
            } else {
                format!("c{k}")
            };
            let text = if self.colour {
                let colour = if k == NOC_LINE {
                    "90"
                } else {
                    COLOURS[k % COLOURS.len()]
                };
                format!("\x1b[{colour}m[{tag}]\x1b[0m {line}")
            } else {
                format!("[{tag}] {line}")
            };
            emit(&mut state.sink, text, self.editing());
        }
        drop(state);
        self.arrived.notify_all();
    }

    /// Console output (answers, tables, errors): always shown.
    pub fn say(&self, text: &str) {
        if let Ok(mut state) = self.state.lock() {
            emit(&mut state.sink, text.trim_end().to_string(), self.editing());
        }
    }

    /// The sequence number of the newest line.
    pub fn mark(&self) -> u64 {
        self.state.lock().map(|s| s.seq).unwrap_or(0)
    }

    /// The lines kept after `since`: (arrival, cluster, line).
    pub fn lines_since(&self, since: u64) -> Vec<(Instant, usize, String)> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        state
            .kept
            .iter()
            .zip(&state.arrivals)
            .filter(|((seq, _, _), _)| *seq > since)
            .map(|((_, k, line), at)| (*at, *k, line.clone()))
            .collect()
    }

    /// Waits until a line after `since` contains `pattern`; returns its (seq, cluster, line).
    pub fn wait_for(
        &self,
        since: u64,
        pattern: &str,
        deadline: Instant,
    ) -> Option<(u64, usize, String)> {
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(hit) = state
                .kept
                .iter()
                .find(|(seq, _, line)| *seq > since && line.contains(pattern))
            {
                return Some(hit.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self.arrived.wait_timeout(state, left).ok()?.0;
        }
    }
}

impl View {
    fn editing(&self) -> bool {
        self.editing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn emit(sink: &mut Sink, text: String, editing: bool) {
    match sink {
        Sink::Printer(_) if !editing => println!("{text}"),
        Sink::Plain => println!("{text}"),
        // A hidden bar (stderr not a terminal: scripts, pipes) would drop the line.
        Sink::Bar(bar) if bar.is_hidden() => println!("{text}"),
        Sink::Bar(bar) => bar.println(text),
        Sink::Printer(printer) => {
            if let Err(error) = printer.print(text.clone()) {
                println!("{text} ({error})");
            }
        }
    }
}
