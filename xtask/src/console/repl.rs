//! The interactive prompt: rustyline with history (kept in `target/tessera/console-history`)
//! and completion of command and program names; cluster output is printed above the prompt
//! through rustyline's external printer, so it never lands in the middle of the line typed.

use std::sync::atomic::Ordering;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Context, Editor, Helper, Highlighter, Hinter, Validator};

use super::view::Sink;
use super::{Console, COMMANDS};

#[derive(Helper, Highlighter, Hinter, Validator)]
struct Complete {
    programs: Vec<String>,
}

impl Completer for Complete {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(' ').map_or(0, |i| i + 1);
        let word = &before[start..];
        let first = start == 0;
        let words: Vec<String> = if first {
            COMMANDS
                .iter()
                .map(|(usage, _)| usage.split(' ').next().unwrap_or("").to_string())
                .collect()
        } else if before.starts_with("spawn ") && before[6..].trim_start().find(' ').is_none() {
            self.programs.clone()
        } else if before.starts_with("trace ") {
            vec!["start".into(), "stop".into()]
        } else if before.starts_with("log ") {
            vec!["all".into(), "none".into()]
        } else {
            Vec::new()
        };
        let mut matches: Vec<Pair> = words
            .into_iter()
            .filter(|w| w.starts_with(word))
            .map(|w| Pair {
                display: w.clone(),
                replacement: format!("{w} "),
            })
            .collect();
        matches.dedup_by(|a, b| a.display == b.display);
        Ok((start, matches))
    }
}

/// Reads commands until `shutdown`, Ctrl-D or Ctrl-C. Returns true after a clean shutdown.
pub fn run(console: &Console) -> bool {
    let history = crate::image::output_dir()
        .ok()
        .map(|d| d.join("console-history"));
    run_with_history(console, history)
}

/// [`run`], with the history kept in `history` (none if `None`).
fn run_with_history(console: &Console, history: Option<std::path::PathBuf>) -> bool {
    let mut editor: Editor<Complete, rustyline::history::DefaultHistory> = match Editor::new() {
        Ok(editor) => editor,
        Err(error) => {
            console
                .view
                .say(&format!("console: no line editor ({error}); use --script"));
            return false;
        }
    };
    editor.set_helper(Some(Complete {
        programs: console.programs.clone(),
    }));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    if let Ok(printer) = editor.create_external_printer() {
        console.view.set_sink(Sink::Printer(Box::new(printer)));
    }
    let clean = loop {
        console.view.editing.store(true, Ordering::SeqCst);
        let read = editor.readline("tessera$ ");
        console.view.editing.store(false, Ordering::SeqCst);
        match read {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                match console.execute(line) {
                    Ok(text) => console.view.say(&text),
                    Err(error) => console.view.say(&format!("error: {error}")),
                }
                if line == "shutdown" {
                    break true;
                }
            }
            Err(ReadlineError::Eof) => {
                let _ = console.execute("shutdown");
                break true;
            }
            Err(_) => break false,
        }
    };
    console.view.set_sink(Sink::Plain);
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    clean
}

#[cfg(test)]
mod tests {
    //! A burst of keystrokes on a real terminal (a pty), as `tmux send-keys` or a fast typist
    //! sends them: every command of the burst must be run.

    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::super::hub::Hub;
    use super::super::view::View;
    use super::super::Console;

    /// Set in the child that runs the prompt on the pty.
    const CHILD: &str = "TESSERA_REPL_PTY_CHILD";
    const BURST: usize = 30;

    /// The child: a console without clusters whose prompt reads the pty.
    #[test]
    #[ignore = "run by a_burst_of_keystrokes_is_read_whole, on a pty"]
    fn prompt_on_a_pty() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let console = Console {
            hub: Arc::new(Hub::new(Vec::new())),
            view: Arc::new(View::new(0, true)),
            control: "no-noc-sim.sock".into(),
            programs: vec!["hello".into()],
            trace: Mutex::new(None),
            last_pid: Mutex::new(None),
        };
        assert!(super::run_with_history(&console, None));
    }

    #[test]
    fn a_burst_of_keystrokes_is_read_whole() {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes the two descriptors it opens into the locals; the name and
        // termios arguments may be null, and `size` outlives the call.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &size as *const libc::winsize as *mut libc::winsize,
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and are owned here only.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "console::repl::tests::prompt_on_a_pty"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let mut terminal = std::fs::File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let (mut terminal, output) = (terminal.try_clone().unwrap(), output.clone());
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                // Ends with EIO once the child (the last holder of the pty's slave) exits.
                while let Ok(n @ 1..) = terminal.read(&mut buffer) {
                    output.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            })
        };
        let seen = |text: &str| String::from_utf8_lossy(&output.lock().unwrap()).contains(text);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !seen("tessera$ ") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Every command and Enter (a terminal sends CR) in one write, as a pasted burst.
        let mut burst: String = (0..BURST).map(|i| format!("burst{i}\r")).collect();
        burst.push_str("shutdown\r");
        terminal.write_all(burst.as_bytes()).unwrap();
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        drop(terminal);
        let _ = reader.join();
        let text = String::from_utf8_lossy(&output.lock().unwrap()).to_string();
        let lost: Vec<usize> = (0..BURST)
            .filter(|i| !text.contains(&format!("unknown command `burst{i}`")))
            .collect();
        assert!(
            lost.is_empty(),
            "commands of the burst lost: {lost:?}\n{text}"
        );
        assert!(
            status.success(),
            "the prompt did not shut down: {status}\n{text}"
        );
    }
}
