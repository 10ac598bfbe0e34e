//! Building kernels and BIOS disk images.
//!
//! Kernels are built for `x86_64-unknown-none` with a nested `cargo build`, the user programs
//! for the user target (`userland/x86_64-tessera-user.json`) and packed into a ustar boot
//! archive; the `bootloader` crate then puts a stripped kernel (loading debug info through
//! BIOS disk calls would slow the boot) and the archive (as its ramdisk) into a bootable disk
//! image. The unstripped ELFs stay in `target/` for symbolising.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// Crates that only build for the bare-metal target.
pub const KERNEL_CRATES: &[&str] = &["hal", "kernel", "migration", "multikernel", "tessera-tests"];

/// Options of `cargo xtask build`.
#[derive(Args, Clone, Debug)]
pub struct BuildArgs {
    /// Build the kernel with the dev profile (unoptimised, slower to boot).
    #[arg(long)]
    pub debug: bool,
}

/// A kernel binary this workspace produces.
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// The production kernel (`kernel/`).
    Production,
    /// The test kernel with the in-kernel suites (`tests/`).
    Tests,
}

impl Kernel {
    fn package_and_bin(self) -> (&'static str, &'static str) {
        match self {
            Kernel::Production => ("multikernel", "tessera-kernel"),
            Kernel::Tests => ("tessera-tests", "tessera-tests"),
        }
    }
}

/// The workspace root (parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .into()
}

/// `target/tessera`, where images and logs go.
pub fn output_dir() -> Result<PathBuf> {
    let dir = workspace_root().join("target").join("tessera");
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `run --quiet`: only the console is shown, so no command is echoed and cargo builds
/// print only their warnings and errors.
static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet() {
    QUIET.store(true, Ordering::SeqCst);
}

/// `--quiet` for a cargo build under `run --quiet`.
fn quiet_cargo(command: &mut Command) {
    if QUIET.load(Ordering::SeqCst) {
        command.arg("--quiet");
    }
}

/// Echoes a command the way a shell user would type it (not under `run --quiet`).
pub fn echo(command: &Command) {
    if QUIET.load(Ordering::SeqCst) {
        return;
    }
    let args: Vec<String> = command
        .get_args()
        .map(|a| {
            let a = a.to_string_lossy();
            if a.contains(' ') || a.is_empty() {
                format!("'{a}'")
            } else {
                a.into_owned()
            }
        })
        .collect();
    eprintln!(
        "$ {} {}",
        command.get_program().to_string_lossy(),
        args.join(" ")
    );
}

/// Builds a kernel ELF and returns its path.
pub fn build_kernel(kernel: Kernel, debug: bool) -> Result<PathBuf> {
    let (package, bin) = kernel.package_and_bin();
    let mut command = Command::new(cargo());
    command.current_dir(workspace_root()).args([
        "build",
        "--package",
        package,
        "--bin",
        bin,
        "--target",
        KERNEL_TARGET,
    ]);
    if !debug {
        command.arg("--release");
    }
    quiet_cargo(&mut command);
    echo(&command);
    let status = command
        .status()
        .context("running cargo build for the kernel")?;
    if !status.success() {
        bail!("building {package} failed ({status})");
    }
    let profile = if debug { "debug" } else { "release" };
    Ok(workspace_root()
        .join("target")
        .join(KERNEL_TARGET)
        .join(profile)
        .join(bin))
}

/// `llvm-objcopy` from the toolchain's `llvm-tools-preview` component, if installed.
fn llvm_objcopy() -> Option<PathBuf> {
    let sysroot = Command::new("rustc")
        .current_dir(workspace_root())
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout).ok()?.trim());
    let host = Command::new("rustc")
        .current_dir(workspace_root())
        .args(["--print", "host-tuple"])
        .output()
        .ok()?;
    let host = String::from_utf8(host.stdout).ok()?.trim().to_string();
    let path = sysroot
        .join("lib/rustlib")
        .join(host)
        .join("bin/llvm-objcopy");
    path.exists().then_some(path)
}

/// The user programs: one per directory under `userland/apps/`.
pub fn user_programs() -> Result<Vec<String>> {
    let apps = workspace_root().join("userland").join("apps");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&apps).with_context(|| format!("listing {}", apps.display()))? {
        let entry = entry?;
        if entry.path().join("Cargo.toml").exists() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Builds the userland workspace (SDK and every app) for the user target.
pub fn build_userland() -> Result<Vec<(String, PathBuf)>> {
    let dir = workspace_root().join("userland");
    let mut command = Command::new(cargo());
    command
        .current_dir(&dir)
        .args(["build", "--release", "--workspace"]);
    quiet_cargo(&mut command);
    echo(&command);
    let status = command
        .status()
        .context("running cargo build for userland")?;
    if !status.success() {
        bail!("building userland failed ({status})");
    }
    let bin_dir = dir
        .join("target")
        .join("x86_64-tessera-user")
        .join("release");
    user_programs()?
        .into_iter()
        .map(|name| {
            let path = bin_dir.join(&name);
            if !path.exists() {
                bail!(
                    "userland app `{name}` built no binary at {}",
                    path.display()
                );
            }
            Ok((name, path))
        })
        .collect()
}

/// Packs the user programs (debug info stripped) into the ustar boot archive.
pub fn pack_ramdisk(programs: &[(String, PathBuf)]) -> Result<PathBuf> {
    let out = output_dir()?;
    let staging = out.join("ramdisk");
    std::fs::create_dir_all(&staging)?;
    let archive_path = out.join("ramdisk.tar");
    let file = std::fs::File::create(&archive_path)
        .with_context(|| format!("creating {}", archive_path.display()))?;
    let mut archive = tar::Builder::new(file);
    for (name, path) in programs {
        let stripped = staging.join(name);
        strip(path, &stripped)?;
        archive
            .append_path_with_name(&stripped, name)
            .with_context(|| format!("adding {name} to the boot archive"))?;
    }
    archive.finish().context("writing the boot archive")?;
    Ok(archive_path)
}

/// Copies an ELF without its debug sections.
fn strip(elf: &Path, out: &Path) -> Result<()> {
    match llvm_objcopy() {
        Some(objcopy) => {
            let status = Command::new(&objcopy)
                .arg("--strip-debug")
                .arg(elf)
                .arg(out)
                .status()
                .with_context(|| format!("running {}", objcopy.display()))?;
            if !status.success() {
                bail!("stripping {} failed", elf.display());
            }
        }
        None => {
            std::fs::copy(elf, out).with_context(|| format!("copying {}", elf.display()))?;
        }
    }
    Ok(())
}

/// Builds a kernel, the userland and the BIOS disk image that carries both; returns the
/// image path.
pub fn build_image(kernel: Kernel, debug: bool) -> Result<PathBuf> {
    let elf = build_kernel(kernel, debug)?;
    let programs = build_userland()?;
    let ramdisk = pack_ramdisk(&programs)?;
    let out = output_dir()?;
    let (_, bin) = kernel.package_and_bin();
    let stripped = out.join(format!("{bin}.stripped"));
    strip(&elf, &stripped)?;
    let image = out.join(format!("{bin}.img"));
    // Only the bootloader's warnings reach the console, and nothing is drawn on the (unused)
    // framebuffer: both cost boot time under TCG.
    let mut boot_config = bootloader::BootConfig::default();
    boot_config.frame_buffer_logging = false;
    boot_config.log_level = bootloader_boot_config::LevelFilter::Warn;
    bootloader::BiosBoot::new(&stripped)
        .set_ramdisk(&ramdisk)
        .set_boot_config(&boot_config)
        .create_disk_image(&image)
        .with_context(|| format!("creating the BIOS disk image {}", image.display()))?;
    Ok(image)
}

pub fn build_command(args: &BuildArgs) -> Result<()> {
    let image = build_image(Kernel::Production, args.debug)?;
    eprintln!("xtask: disk image ready: {}", image.display());
    Ok(())
}
