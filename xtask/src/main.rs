//! `cargo xtask`: build, boot and test Tessera.
//!
//! Follows the cargo-xtask convention: a host program in the workspace, reached through the
//! `xtask` alias in `.cargo/config.toml`, so the only tools a user needs are rustup and cargo
//! (plus QEMU, which this program installs or names).

mod bench;
mod cluster;
mod console;
mod console_test;
mod fuzz;
mod gdb_test;
mod guest_ram;
mod image;
mod interrupt;
mod lint;
mod modgraph;
mod qemu;
mod report;
mod run;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Build, boot and test the Tessera multikernel.
#[derive(Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the kernel and its BIOS disk image.
    Build(image::BuildArgs),
    /// Build and boot Tessera under QEMU, with the serial console on this terminal.
    Run(run::RunArgs),
    /// Run every test: the lints, host unit tests, then each in-kernel suite in QEMU.
    Test(test::TestArgs),
    /// rustfmt and clippy (warnings as errors) over every crate, userland included.
    Lint,
    /// Fuzz the system calls on every cluster next to a neighbour and the monitor.
    Fuzz(fuzz::FuzzArgs),
    /// Measure: `bench idle / noc / migration / kernel --json FILE` (see `bench --help`).
    Bench(bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<i32> = match cli.command {
        Command::Build(args) => image::build_command(&args).map(|_| 0),
        Command::Run(args) => run::run(&args),
        Command::Test(args) => test::test(&args),
        Command::Lint => lint::lint_command(),
        Command::Fuzz(args) => fuzz::fuzz(&args),
        Command::Bench(args) => bench::bench(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            std::process::exit(1);
        }
    }
}
