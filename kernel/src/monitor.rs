//! The kernel monitor: a line-oriented console on the serial port, so a person at
//! `cargo xtask run` can inspect the cluster and power it off.

use alloc::string::String;

use crate::Boot;

const PROMPT: &str = "tessera> ";

/// Runs the monitor forever, sleeping between keystrokes.
pub fn run(boot: &Boot) -> ! {
    hal::println!("kernel monitor ready; type `help`.");
    hal::print!("{PROMPT}");
    let mut line = String::new();
    loop {
        let Some(byte) = hal::serial::try_read_byte() else {
            hal::cpu::wait_for_interrupt();
            continue;
        };
        match byte {
            b'\r' | b'\n' => {
                hal::println!();
                execute(line.trim(), boot);
                line.clear();
                hal::print!("{PROMPT}");
            }
            0x08 | 0x7F => {
                if line.pop().is_some() {
                    hal::print!("\x08 \x08");
                }
            }
            0x20..=0x7E if line.len() < 256 => {
                line.push(byte as char);
                hal::serial::write_bytes(&[byte]);
            }
            _ => {}
        }
    }
}

fn execute(command: &str, boot: &Boot) {
    let mut words = command.split_ascii_whitespace();
    match words.next() {
        None => {}
        Some("help") => hal::println!(
            "commands: help, info, mem, uptime, log LEVEL, poweroff\n  \
             (Ctrl-C in the terminal stops QEMU at any time)"
        ),
        Some("info") => crate::print_banner(&boot.machine),
        Some("mem") => {
            let (heap_size, heap_used) = hal::heap::stats();
            hal::println!(
                "frames: {} free of {} ({} KiB each); heap: {} KiB used of {} KiB",
                hal::frames::free_count(),
                hal::frames::total_count(),
                hal::frames::FRAME_SIZE / 1024,
                heap_used / 1024,
                heap_size / 1024
            );
        }
        Some("uptime") => {
            let ns = hal::clock::now_ns();
            hal::println!(
                "up {}.{:03} s, {} timer ticks",
                ns / 1_000_000_000,
                (ns / 1_000_000) % 1000,
                hal::clock::ticks()
            );
        }
        Some("log") => match words.next().and_then(|level| level.parse().ok()) {
            Some(level) => hal::logger::set_level(level),
            None => hal::println!("usage: log error|warn|info|debug|trace|off"),
        },
        Some("poweroff") => hal::power::poweroff(),
        Some(other) => hal::println!("unknown command `{other}`; type `help`"),
    }
}
