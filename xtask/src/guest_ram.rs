//! Each cluster's RAM as a shared file, so noc-sim's DMA engine can reach guest memory.
//!
//! QEMU backs cluster k's RAM with `-object memory-backend-file,…,mem-path=FILE,share=on`
//! (`-machine q35,memory-backend=ram0`); noc-sim maps the same FILE (`--ram k=FILE`) and
//! reads guest-physical address A at file offset A (BRIEF §8; true below 4 GiB).
//!
//! The files live in `/dev/shm` (RAM, not disk), are named `tessera-<xtask pid>-<run>-c<k>.ram`
//! and belong to a [`RamFiles`] guard that removes them when dropped — on normal exit, on an
//! error, on a panic (unwinding), and on Ctrl-C/SIGTERM (the handler only raises a flag, so the
//! run unwinds normally). A run killed with SIGKILL cannot clean up, so every new run first
//! removes files whose xtask is no longer alive ([`sweep_stale`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const DIR: &str = "/dev/shm";
const PREFIX: &str = "tessera-";

/// The RAM files of one run; removed on drop.
pub struct RamFiles {
    paths: Vec<PathBuf>,
}

impl RamFiles {
    /// Creates `clusters` files of `size` bytes (sparse: pages cost memory only once touched).
    pub fn create(run: &str, clusters: usize, size: u64) -> Result<RamFiles> {
        sweep_stale();
        let dir = if Path::new(DIR).is_dir() {
            PathBuf::from(DIR)
        } else {
            std::env::temp_dir()
        };
        let mut files = RamFiles { paths: Vec::new() };
        for k in 0..clusters {
            let path = dir.join(format!("{PREFIX}{}-{run}-c{k}.ram", std::process::id()));
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating guest RAM file {}", path.display()))?;
            files.paths.push(path.clone());
            file.set_len(size)
                .with_context(|| format!("sizing {} to {size} bytes", path.display()))?;
        }
        Ok(files)
    }

    pub fn path(&self, k: usize) -> &Path {
        &self.paths[k]
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl Drop for RamFiles {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes RAM files left by runs whose xtask process is gone (killed with SIGKILL).
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .filter(|rest| rest.ends_with(".ram"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The guest RAM size from the machine arguments (`-m 256M`), in bytes.
pub fn ram_size(machine_args: &[String]) -> u64 {
    let value = machine_args
        .iter()
        .position(|a| a == "-m")
        .and_then(|i| machine_args.get(i + 1))
        .map(String::as_str)
        .unwrap_or("128M");
    let value = value.split(',').next().unwrap_or(value);
    let (digits, shift) = match value.as_bytes().last() {
        Some(b'G' | b'g') => (&value[..value.len() - 1], 30),
        Some(b'M' | b'm') => (&value[..value.len() - 1], 20),
        Some(b'K' | b'k') => (&value[..value.len() - 1], 10),
        _ => (value, 20), // QEMU's default unit is MiB
    };
    digits.parse::<u64>().unwrap_or(128) << shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_size_follows_qemu_syntax() {
        let args = |m: &str| vec!["-machine".into(), "q35".into(), "-m".into(), m.to_string()];
        assert_eq!(ram_size(&args("256M")), 256 << 20);
        assert_eq!(ram_size(&args("1G")), 1 << 30);
        assert_eq!(ram_size(&args("64")), 64 << 20);
    }

    #[test]
    fn files_are_removed_on_drop_and_on_panic() {
        let files = RamFiles::create("unit", 2, 1 << 20).unwrap();
        let paths = files.paths().to_vec();
        assert!(paths.iter().all(|p| p.exists()));
        assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), 1 << 20);
        drop(files);
        assert!(paths.iter().all(|p| !p.exists()));
        let paths = std::panic::catch_unwind(|| {
            let files = RamFiles::create("unit-panic", 1, 4096).unwrap();
            let paths = files.paths().to_vec();
            std::panic::panic_any(paths);
        })
        .unwrap_err()
        .downcast::<Vec<PathBuf>>()
        .unwrap();
        assert!(paths.iter().all(|p| !p.exists()));
    }
}
