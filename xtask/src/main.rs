//! `cargo xtask`: build, boot and test Tessera.
//!
//! Follows the cargo-xtask convention: a host program in the workspace, reached through the
//! `xtask` alias in `.cargo/config.toml`, so the only tools a user needs are rustup and cargo
//! (plus QEMU, which this program installs or names).

mod bench_kernel;
mod image;
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
    /// Run every test: host unit tests, then each in-kernel suite in QEMU.
    Test(test::TestArgs),
    /// Measure: `bench kernel` (syscalls, threads, switches, faults, spawn).
    Bench(BenchArgs),
}

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    what: BenchTarget,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = qemu::Accel::Tcg)]
    accel: qemu::Accel,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchTarget {
    /// Kernel micro-benchmarks and UArea sizes.
    Kernel,
}

fn main() {
    let cli = Cli::parse();
    let result: Result<i32> = match cli.command {
        Command::Build(args) => image::build_command(&args).map(|_| 0),
        Command::Run(args) => run::run(&args),
        Command::Test(args) => test::test(&args),
        Command::Bench(args) => match args.what {
            BenchTarget::Kernel => {
                bench_kernel::bench_kernel(args.accel, args.json.as_deref()).map(|_| 0)
            }
        },
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            std::process::exit(1);
        }
    }
}
