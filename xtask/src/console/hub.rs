//! The host end of the monitor's machine-readable mode (`kernel/src/monitor/machine.rs`):
//! requests written to a cluster's serial input as `@@ID COMMAND`, answers read back from
//! its console as `@@ID row ...` lines closed by `@@ID ok ...` or `@@ID err ...`.
//!
//! Every console line of every cluster passes through [`Hub::take_line`]: answers are routed
//! to the request waiting for them and never shown; everything else goes on to the display.

use std::collections::HashMap;
use std::io::Write;
use std::process::ChildStdin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A cluster's answer to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The `row` lines, split into fields.
    pub rows: Vec<Vec<String>>,
    /// The text after `ok`.
    pub text: String,
}

/// Why a request got no `ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// The cluster answered `err TEXT`.
    Refused(String),
    /// No answer in time (or its input is closed).
    NoAnswer,
}

struct Pending {
    rows: Vec<Vec<String>>,
    done: Sender<Result<Reply, AskError>>,
}

/// Serial inputs of every cluster and the requests waiting for answers.
pub struct Hub {
    inputs: Vec<Mutex<Option<ChildStdin>>>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
}

/// A prompt the monitor printed before the console attached, stuck to the next line.
const PROMPT: &str = "tessera> ";

impl Hub {
    pub fn new(inputs: Vec<Option<ChildStdin>>) -> Hub {
        Hub {
            inputs: inputs.into_iter().map(Mutex::new).collect(),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn clusters(&self) -> usize {
        self.inputs.len()
    }

    /// Takes an answer line; returns the line to display otherwise (prompt removed).
    pub fn take_line(&self, line: &str) -> Option<String> {
        let mut line = line;
        while let Some(rest) = line.strip_prefix(PROMPT) {
            line = rest;
        }
        let Some(answer) = line.strip_prefix("@@") else {
            return Some(line.to_string());
        };
        let mut words = answer.split(' ');
        let id: u64 = words.next()?.parse().ok()?;
        let kind = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        let mut pending = self.pending.lock().ok()?;
        match kind {
            "row" => {
                if let Some(p) = pending.get_mut(&id) {
                    p.rows.push(rest.iter().map(|s| s.to_string()).collect());
                }
            }
            "ok" | "err" => {
                if let Some(p) = pending.remove(&id) {
                    let result = if kind == "ok" {
                        Ok(Reply {
                            rows: p.rows,
                            text: rest.join(" "),
                        })
                    } else {
                        Err(AskError::Refused(rest.join(" ")))
                    };
                    let _ = p.done.send(result);
                }
            }
            _ => {}
        }
        None
    }

    /// Sends a request; the receiver gets the answer.
    pub fn send(&self, cluster: usize, command: &str) -> Receiver<Result<Reply, AskError>> {
        let (done, answer) = channel();
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let Some(input) = self.inputs.get(cluster) else {
            let _ = done.send(Err(AskError::NoAnswer));
            return answer;
        };
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(
                id,
                Pending {
                    rows: Vec::new(),
                    done: done.clone(),
                },
            );
        }
        let written = input.lock().ok().and_then(|mut input| {
            let stdin = input.as_mut()?;
            stdin
                .write_all(format!("@@{id} {command}\n").as_bytes())
                .ok()?;
            stdin.flush().ok()
        });
        if written.is_none() {
            if let Ok(mut pending) = self.pending.lock() {
                pending.remove(&id);
            }
            let _ = done.send(Err(AskError::NoAnswer));
        }
        answer
    }

    /// Asks one cluster and waits up to `timeout`.
    pub fn ask(&self, cluster: usize, command: &str, timeout: Duration) -> Result<Reply, AskError> {
        self.send(cluster, command)
            .recv_timeout(timeout)
            .unwrap_or(Err(AskError::NoAnswer))
    }

    /// Asks every cluster at once; one answer per cluster, in order.
    pub fn ask_all(&self, command: &str, timeout: Duration) -> Vec<Result<Reply, AskError>> {
        let deadline = Instant::now() + timeout;
        let answers: Vec<_> = (0..self.clusters())
            .map(|k| self.send(k, command))
            .collect();
        answers
            .into_iter()
            .map(|a| {
                let left = deadline.saturating_duration_since(Instant::now());
                a.recv_timeout(left).unwrap_or(Err(AskError::NoAnswer))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_routed_and_hidden() {
        let hub = Hub::new(vec![None]);
        let (done, answer) = channel();
        hub.pending.lock().unwrap().insert(
            7,
            Pending {
                rows: Vec::new(),
                done,
            },
        );
        assert_eq!(
            hub.take_line("tessera> [c0] hello"),
            Some("[c0] hello".into())
        );
        assert_eq!(hub.take_line("@@7 row 0.1 - counter 1"), None);
        assert_eq!(hub.take_line("tessera> @@7 ok done"), None);
        let reply = answer.try_recv().unwrap().unwrap();
        assert_eq!(reply.rows, vec![vec!["0.1", "-", "counter", "1"]]);
        assert_eq!(reply.text, "done");
        assert_eq!(
            hub.ask(0, "ps", Duration::from_millis(10)),
            Err(AskError::NoAnswer)
        );
    }
}
