//! Starting QEMU, and making sure it never outlives us.
//!
//! Every QEMU child is held by a [`QemuGuard`] that kills it on drop, so an error, a timeout
//! or Ctrl-C in xtask cannot leave a QEMU running (after hermit-os's xtask). On Linux the child
//! also gets `PR_SET_PDEATHSIG`, which covers the case where xtask itself is killed outright.

use anyhow::{bail, Context, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

use crate::image::{echo, workspace_root};

pub const QEMU: &str = "qemu-system-x86_64";
/// Status QEMU exits with when the kernel writes 0x10 to isa-debug-exit.
pub const EXIT_SUCCESS: i32 = 33;
/// Status for 0x11.
pub const EXIT_FAILURE: i32 = 35;

/// Finds `qemu-system-x86_64`; installs it with apt-get when running as root.
pub fn ensure_installed() -> Result<()> {
    if which(QEMU).is_some() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || which("apt-get").is_none() {
        bail!(
            "{QEMU} is not installed. Install it with:\n    sudo apt-get install -y qemu-system-x86"
        );
    }
    eprintln!("xtask: {QEMU} is missing; installing Debian's qemu-system-x86 (running as root)");
    for args in [
        &["update", "-qq"][..],
        &[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "qemu-system-x86",
        ][..],
    ] {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        echo(&command);
        let status = command.status().context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
    }
    if which(QEMU).is_none() {
        bail!("{QEMU} still missing after installing qemu-system-x86");
    }
    Ok(())
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

/// The machine every cluster runs on, read from `qemu/cluster.args` (one argument per line,
/// `#` comments), so it can be changed without touching xtask.
pub fn machine_args() -> Result<Vec<String>> {
    let path = workspace_root().join("qemu").join("cluster.args");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect())
}

/// How QEMU should accelerate the guest.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Accel {
    /// Software emulation: works everywhere.
    #[default]
    Tcg,
    /// KVM: hung the bootloader on this project's machines, so opt in only where it works.
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// A QEMU invocation for one cluster.
pub struct QemuConfig<'a> {
    pub image: &'a Path,
    pub cmdline: &'a str,
    pub accel: Accel,
    /// Back the guest's RAM with this shared file (for noc-sim's DMA engine).
    pub ram_file: Option<&'a Path>,
}

impl QemuConfig<'_> {
    /// The full command; the caller decides where stdio goes.
    pub fn command(&self) -> Result<Command> {
        let mut command = Command::new(QEMU);
        let mut args = machine_args()?;
        if let Some(file) = self.ram_file {
            // BRIEF §8: a shared memory-backend-file makes guest-physical A = file offset A.
            let size = crate::guest_ram::ram_size(&args);
            if file.display().to_string().contains(',') {
                bail!("the RAM file path cannot contain ',' (QEMU option syntax)");
            }
            let machine = args
                .iter()
                .position(|a| a == "-machine")
                .and_then(|i| args.get_mut(i + 1))
                .context("qemu/cluster.args has no -machine")?;
            machine.push_str(",memory-backend=ram0");
            args.push("-object".into());
            args.push(format!(
                "memory-backend-file,id=ram0,size={size},mem-path={},share=on",
                file.display()
            ));
        }
        command.args(args);
        command.arg("-accel").arg(self.accel.name());
        command
            .arg("-drive")
            // snapshot=on: many clusters boot the same image, and QEMU locks a writable one.
            .arg(format!(
                "format=raw,snapshot=on,file={}",
                self.image.display()
            ));
        if !self.cmdline.is_empty() {
            if self.cmdline.contains(',') {
                bail!("the kernel command line cannot contain ',' (QEMU option syntax)");
            }
            command
                .arg("-fw_cfg")
                .arg(format!("name=opt/tessera/cmdline,string={}", self.cmdline));
        }
        Ok(command)
    }
}

/// Owns a running QEMU and kills it when dropped.
pub struct QemuGuard {
    child: Option<Child>,
}

impl QemuGuard {
    /// Spawns `command` (echoing it), tied to our lifetime.
    pub fn spawn(mut command: Command) -> Result<Self> {
        echo(&command);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and only affects the child.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {QEMU}"))?;
        Ok(QemuGuard { child: Some(child) })
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Non-blocking check for exit.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child().try_wait()?)
    }
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
