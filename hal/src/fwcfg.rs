//! QEMU's firmware configuration device, used as the kernel command line.
//!
//! The host passes boot options with `-fw_cfg name=opt/tessera/cmdline,string=...`; the kernel
//! reads them before anything else (QEMU `docs/specs/fw_cfg.rst`: selector port 0x510, data
//! port 0x511, file directory at selector 0x19, big-endian directory fields).

use x86_64::instructions::port::Port;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
const SIGNATURE: u16 = 0x0000;
const FILE_DIR: u16 = 0x0019;

fn select(key: u16) {
    // SAFETY: 0x510 is the fw_cfg selector port on every QEMU x86 machine; selecting an item
    // has no other effect.
    unsafe { Port::<u16>::new(SELECTOR).write(key) };
}

fn read_into(buffer: &mut [u8]) {
    let mut data: Port<u8> = Port::new(DATA);
    for byte in buffer {
        // SAFETY: reading the fw_cfg data port streams the selected item; nothing else uses it.
        *byte = unsafe { data.read() };
    }
}

/// Reads the fw_cfg file `name` into `buffer`; returns the number of bytes read, or `None` if
/// there is no fw_cfg device or no such file. Longer files are truncated to the buffer.
pub fn read_file(name: &str, buffer: &mut [u8]) -> Option<usize> {
    select(SIGNATURE);
    let mut signature = [0u8; 4];
    read_into(&mut signature);
    if &signature != b"QEMU" {
        return None;
    }
    select(FILE_DIR);
    let mut count = [0u8; 4];
    read_into(&mut count);
    for _ in 0..u32::from_be_bytes(count) {
        let mut entry = [0u8; 64];
        read_into(&mut entry);
        let size = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
        let key = u16::from_be_bytes([entry[4], entry[5]]);
        let entry_name = &entry[8..];
        let len = entry_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(entry_name.len());
        if &entry_name[..len] == name.as_bytes() {
            select(key);
            let n = size.min(buffer.len());
            read_into(&mut buffer[..n]);
            return Some(n);
        }
    }
    None
}
