//! The boot archive: user programs shipped beside the kernel.
//!
//! `cargo xtask` packs the userland binaries into a POSIX ustar archive and hands it to the
//! bootloader as the ramdisk, so `tar tf target/tessera/ramdisk.tar` shows exactly what a
//! cluster can run. Headers are validated (checksum, octal fields, bounds); a damaged entry
//! ends the listing instead of being trusted.

use spin::Once;

static ARCHIVE: Once<&'static [u8]> = Once::new();

/// Registers the ramdisk the bootloader loaded.
pub fn init(archive: &'static [u8]) {
    ARCHIVE.call_once(|| archive);
}

/// One file of the archive.
#[derive(Debug, Clone, Copy)]
pub struct File {
    pub name: &'static str,
    pub data: &'static [u8],
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn checksum_ok(header: &[u8]) -> bool {
    let Some(expected) = octal(&header[148..156]) else {
        return false;
    };
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u64
            } else {
                b as u64
            }
        })
        .sum();
    sum == expected
}

/// Every regular file in the archive, in order.
pub fn files() -> impl Iterator<Item = File> {
    let archive: &'static [u8] = ARCHIVE.get().copied().unwrap_or(&[]);
    let mut offset = 0usize;
    core::iter::from_fn(move || loop {
        let header = archive.get(offset..offset + 512)?;
        if header.iter().all(|&b| b == 0) || !checksum_ok(header) {
            return None;
        }
        let size = octal(&header[124..136])? as usize;
        let data_start = offset + 512;
        let data = archive.get(data_start..data_start.checked_add(size)?)?;
        offset = data_start + size.next_multiple_of(512);
        let name_len = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = core::str::from_utf8(&header[..name_len]).ok()?;
        let kind = header[156];
        if kind == b'0' || kind == 0 {
            return Some(File {
                name: name.trim_start_matches("./"),
                data,
            });
        }
    })
}

/// The program called `name`.
pub fn find(name: &str) -> Option<File> {
    files().find(|file| file.name == name)
}
