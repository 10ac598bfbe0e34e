//! The control socket: one-line text commands, one-line replies.
//!
//! ```text
//! stats                  → JSON summary on one line
//! corrupt N [CLUSTER]    → damage the next N forwarded messages (to CLUSTER)
//! drop N SRC DST PORT KIND → lose the next N messages SRC → DST on PORT whose first
//!                          payload byte is KIND (each field a number or `*`; N = 0 clears)
//! dma-corrupt N          → flip a bit in the data of the next N DMA transfers
//! dma-drop N             → never complete the next N DMA transfers
//! dma-peer-gone N        → fail the next N DMA transfers as if the receiver vanished
//! cut A B MS             → lose every message and DMA transfer between clusters A and B
//!                          (either way) for MS milliseconds, then heal (MS = 0 heals now)
//! isolate C MS           → the same between cluster C and every other cluster
//! kill CLUSTER           → disconnect a cluster as if its QEMU had exited
//! quit                   → print the summary and exit
//! ```
//! Replies are `ok ...`, `error: ...` or the JSON object.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use anyhow::{Context, Result};

/// Which forwarded messages a `drop` fault loses: every field that is `Some` must match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropFilter {
    /// Messages still to lose.
    pub remaining: u64,
    pub src: Option<u16>,
    pub dst: Option<u16>,
    pub port: Option<u16>,
    /// The first payload byte (the daemons' message kind).
    pub kind: Option<u8>,
}

impl DropFilter {
    /// True if a message with these fields is to be lost (and counts it).
    pub fn take(&mut self, src: u16, dst: u16, port: u16, first_byte: Option<u8>) -> bool {
        let matches = self.remaining > 0
            && self.src.is_none_or(|s| s == src)
            && self.dst.is_none_or(|d| d == dst)
            && self.port.is_none_or(|p| p == port)
            && self.kind.is_none_or(|k| Some(k) == first_byte);
        if matches {
            self.remaining -= 1;
        }
        matches
    }
}

/// A parsed control command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Stats,
    Corrupt {
        count: u64,
        cluster: Option<u16>,
    },
    Drop(DropFilter),
    DmaCorrupt(u64),
    DmaDrop(u64),
    DmaPeerGone(u64),
    /// Cut the pair (a, b) for `ms` milliseconds (0 heals).
    Cut {
        a: u16,
        b: u16,
        ms: u64,
    },
    /// Cut `cluster` off from all others for `ms` milliseconds (0 heals).
    Isolate {
        cluster: u16,
        ms: u64,
    },
    Kill(u16),
    Quit,
}

impl Command {
    /// Fault injection (what `--guest-faults` lets a guest ask for).
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Command::Corrupt { .. }
                | Command::Drop(_)
                | Command::DmaCorrupt(_)
                | Command::DmaDrop(_)
                | Command::DmaPeerGone(_)
                | Command::Cut { .. }
                | Command::Isolate { .. }
        )
    }

    pub fn parse(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |s: &str| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
        let cluster = |s: &str| s.parse::<u16>().map_err(|e| format!("{s:?}: {e}"));
        match words.as_slice() {
            ["stats"] => Ok(Command::Stats),
            ["quit"] => Ok(Command::Quit),
            ["corrupt", n] => Ok(Command::Corrupt {
                count: num(n)?,
                cluster: None,
            }),
            ["corrupt", n, c] => Ok(Command::Corrupt {
                count: num(n)?,
                cluster: Some(num(c)? as u16),
            }),
            ["dma-corrupt", n] => Ok(Command::DmaCorrupt(num(n)?)),
            ["dma-drop", n] => Ok(Command::DmaDrop(num(n)?)),
            ["dma-peer-gone", n] => Ok(Command::DmaPeerGone(num(n)?)),
            ["drop", n, src, dst, port, kind] => {
                let any = |s: &str| -> Result<Option<u64>, String> {
                    if s == "*" {
                        Ok(None)
                    } else {
                        num(s).map(Some)
                    }
                };
                Ok(Command::Drop(DropFilter {
                    remaining: num(n)?,
                    src: any(src)?.map(|v| v as u16),
                    dst: any(dst)?.map(|v| v as u16),
                    port: any(port)?.map(|v| v as u16),
                    kind: any(kind)?.map(|v| v as u8),
                }))
            }
            ["cut", a, b, ms] => Ok(Command::Cut {
                a: cluster(a)?,
                b: cluster(b)?,
                ms: num(ms)?,
            }),
            ["isolate", c, ms] => Ok(Command::Isolate {
                cluster: cluster(c)?,
                ms: num(ms)?,
            }),
            ["kill", c] => Ok(Command::Kill(num(c)? as u16)),
            _ => Err(format!(
                "unknown command {line:?} (stats | corrupt N [CLUSTER] | drop N SRC DST PORT KIND | dma-corrupt N | dma-drop N | dma-peer-gone N | cut A B MS | isolate C MS | kill CLUSTER | quit)"
            )),
        }
    }
}

/// Listening control socket and its open connections (non-blocking).
pub struct ControlServer {
    pub listener: UnixListener,
    pub conns: Vec<(UnixStream, Vec<u8>)>,
}

impl ControlServer {
    pub fn bind(path: &Path) -> Result<ControlServer> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("bind control socket {}", path.display()))?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener,
            conns: Vec::new(),
        })
    }

    pub fn accept(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            if s.set_nonblocking(true).is_ok() {
                self.conns.push((s, Vec::new()));
            }
        }
    }

    /// Reads from connection `i`; returns complete lines, and whether the
    /// connection is closed.
    pub fn read_lines(&mut self, i: usize) -> (Vec<String>, bool) {
        let (s, buf) = &mut self.conns[i];
        let mut tmp = [0u8; 1024];
        let mut closed = false;
        loop {
            match s.read(&mut tmp) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            if buf.len() > 64 * 1024 {
                closed = true;
                break;
            }
        }
        let mut lines = Vec::new();
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line).trim().to_string());
        }
        (lines, closed)
    }

    pub fn reply(&mut self, i: usize, text: &str) {
        let s = &mut self.conns[i].0;
        let _ = s.set_nonblocking(false);
        let _ = s
            .write_all(text.as_bytes())
            .and_then(|_| s.write_all(b"\n"));
        let _ = s.set_nonblocking(true);
    }
}

/// Client side: sends one command, returns the one-line reply.
pub fn request(path: &Path, command: &str) -> Result<String> {
    let mut s = UnixStream::connect(path).with_context(|| format!("connect {}", path.display()))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    writeln!(s, "{command}")?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .context("read control reply")?;
    Ok(line.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(Command::parse("stats"), Ok(Command::Stats));
        assert_eq!(
            Command::parse(" corrupt 3 "),
            Ok(Command::Corrupt {
                count: 3,
                cluster: None
            })
        );
        assert_eq!(
            Command::parse("corrupt 1 2"),
            Ok(Command::Corrupt {
                count: 1,
                cluster: Some(2)
            })
        );
        assert_eq!(Command::parse("kill 4"), Ok(Command::Kill(4)));
        assert_eq!(Command::parse("dma-drop 2"), Ok(Command::DmaDrop(2)));
        assert_eq!(Command::parse("dma-corrupt 1"), Ok(Command::DmaCorrupt(1)));
        assert_eq!(
            Command::parse("dma-peer-gone 3"),
            Ok(Command::DmaPeerGone(3))
        );
        assert!(Command::parse("dma-drop").is_err());
        assert!(Command::parse("corrupt x").is_err());
        assert!(Command::parse("reboot").is_err());
    }

    #[test]
    fn parse_cut_and_isolate() {
        assert_eq!(
            Command::parse("cut 0 2 1500"),
            Ok(Command::Cut {
                a: 0,
                b: 2,
                ms: 1500
            })
        );
        assert_eq!(
            Command::parse("cut 3 1 0"),
            Ok(Command::Cut { a: 3, b: 1, ms: 0 })
        );
        assert_eq!(
            Command::parse("isolate 1 250"),
            Ok(Command::Isolate {
                cluster: 1,
                ms: 250
            })
        );
        assert!(Command::parse("cut 0 2").is_err());
        assert!(Command::parse("cut 0 x 10").is_err());
        assert!(
            Command::parse("cut 0 70000 10").is_err(),
            "not a cluster id"
        );
        assert!(Command::parse("isolate 1").is_err());
        assert!(Command::parse("isolate 1 -5").is_err());
        // Guests may ask for them, as for the other faults.
        assert!(Command::parse("cut 0 1 10").unwrap().is_fault());
        assert!(Command::parse("isolate 0 10").unwrap().is_fault());
        assert!(!Command::parse("kill 0").unwrap().is_fault());
    }

    #[test]
    fn drop_filter_matches_only_its_messages_and_counts_down() {
        let Ok(Command::Drop(mut filter)) = Command::parse("drop 2 0 1 65280 18") else {
            panic!("drop did not parse");
        };
        assert!(!filter.take(1, 0, 0xFF00, Some(18)), "other direction");
        assert!(!filter.take(0, 1, 0xFE00, Some(18)), "other port");
        assert!(!filter.take(0, 1, 0xFF00, Some(17)), "other kind");
        assert!(!filter.take(0, 1, 0xFF00, None), "empty payload");
        assert!(filter.take(0, 1, 0xFF00, Some(18)));
        assert!(filter.take(0, 1, 0xFF00, Some(18)));
        assert!(!filter.take(0, 1, 0xFF00, Some(18)), "only two");
        let Ok(Command::Drop(mut any)) = Command::parse("drop 1 * * * *") else {
            panic!("wildcards did not parse");
        };
        assert!(any.take(3, 2, 7, None));
        assert!(Command::parse("drop 1 0 1 65280").is_err());
        assert!(Command::parse("drop 1 x 1 2 3").is_err());
    }
}
