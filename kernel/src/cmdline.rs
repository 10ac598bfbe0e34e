//! The kernel command line: `key=value` and bare-flag words separated by spaces, passed by
//! `cargo xtask` through QEMU's fw_cfg (`opt/tessera/cmdline`).
//!
//! Known keys: `quantum_ms=N` (scheduling quantum of new processes, default 10; also the
//! bound on how long a running user thread keeps kernel work waiting — the kernel is tickless,
//! and the old `hz=` is ignored with a warning),
//! `log=LEVEL` (error, warn, info, debug, trace),
//! `poweroff` (power off right after boot), `suite=NAME` (test kernel only).
//! Unknown words are kept so other layers can read them, and reported once at boot.

const MAX_LEN: usize = 512;

/// The command line as given, with helpers to look keys up.
pub struct Cmdline {
    buffer: [u8; MAX_LEN],
    len: usize,
}

impl Cmdline {
    /// Reads the command line from the firmware; empty if there is none.
    pub fn from_firmware() -> Self {
        let mut cmdline = Cmdline {
            buffer: [0; MAX_LEN],
            len: 0,
        };
        cmdline.len =
            hal::fwcfg::read_file("opt/tessera/cmdline", &mut cmdline.buffer).unwrap_or(0);
        cmdline
    }

    /// The whole command line (invalid UTF-8 reads as empty).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buffer[..self.len])
            .unwrap_or("")
            .trim_end_matches('\0')
    }

    /// Every word.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.as_str().split_ascii_whitespace()
    }

    /// The value of `key=value`, if present (the last one wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.words()
            .filter_map(|word| word.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }

    /// True if the bare word `flag` is present.
    pub fn has(&self, flag: &str) -> bool {
        self.words().any(|word| word == flag)
    }
}
