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
    let history = crate::image::output_dir()
        .ok()
        .map(|d| d.join("console-history"));
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
