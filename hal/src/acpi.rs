//! Just enough ACPI to power off: find the FADT's PM1a control block and the `\_S5` sleep
//! type in the DSDT (ACPI 6.4, sections 5.2.9 and 7.4.2; the DSDT scan follows the OSDev
//! "Shutdown" recipe, which works for QEMU's firmware tables without an AML interpreter).

use core::sync::atomic::{AtomicU32, Ordering};
use x86_64::instructions::port::Port;
use x86_64::PhysAddr;

use crate::paging::phys_to_virt;

/// PM1a control port (0 = unknown) and the S5 sleep type.
static PM1A_CONTROL: AtomicU32 = AtomicU32::new(0);
static SLP_TYP_S5: AtomicU32 = AtomicU32::new(0);

const SLP_EN: u16 = 1 << 13;

fn bytes(phys: u64, len: usize) -> &'static [u8] {
    // SAFETY: firmware tables lie in RAM below the top of the memory map, which the bootloader
    // mapped entirely at the physical-memory offset; we only read them.
    unsafe { core::slice::from_raw_parts(phys_to_virt(PhysAddr::new(phys)).as_ptr(), len) }
}

fn u32_at(data: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

fn u64_at(data: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

/// A table's bytes, if its header's length is sane.
fn table(phys: u64) -> Option<&'static [u8]> {
    let length = u32_at(bytes(phys, 36), 4)? as usize;
    (36..1 << 20).contains(&length).then(|| bytes(phys, length))
}

fn find_fadt(rsdp: u64) -> Option<&'static [u8]> {
    let rsdp = bytes(rsdp, 36);
    if &rsdp[0..8] != b"RSD PTR " {
        return None;
    }
    let (root, entry_size) = if rsdp[15] >= 2 && u64_at(rsdp, 24)? != 0 {
        (u64_at(rsdp, 24)?, 8)
    } else {
        (u32_at(rsdp, 16)? as u64, 4)
    };
    let root = table(root)?;
    root[36..].chunks_exact(entry_size).find_map(|entry| {
        let address = if entry_size == 8 {
            u64_at(entry, 0)?
        } else {
            u32_at(entry, 0)? as u64
        };
        let candidate = table(address)?;
        (&candidate[0..4] == b"FACP").then_some(candidate)
    })
}

/// Reads the `\_S5_` package's first element from AML bytecode.
fn s5_sleep_type(dsdt: &[u8]) -> Option<u8> {
    let at = dsdt.windows(4).position(|w| w == b"_S5_")?;
    // NameOp (0x08) before the name, optionally with a root prefix '\'.
    let name_op = at.checked_sub(1).map(|i| dsdt[i]) == Some(0x08)
        || (at >= 2 && dsdt[at - 1] == b'\\' && dsdt[at - 2] == 0x08);
    let mut cursor = at + 4;
    if !name_op || *dsdt.get(cursor)? != 0x12 {
        return None; // not a Name(_S5_, Package(){...})
    }
    cursor += 1;
    let length_bytes = (*dsdt.get(cursor)? >> 6) as usize;
    cursor += 1 + length_bytes + 1; // PkgLength, NumElements
    match *dsdt.get(cursor)? {
        0x0A => dsdt.get(cursor + 1).copied(), // BytePrefix
        value @ (0x00 | 0x01) => Some(value),  // ZeroOp / OneOp
        _ => None,
    }
}

/// Finds the power-off registers; without them, [`enter_s5`] does nothing.
pub fn init(rsdp: Option<u64>) {
    let Some(fadt) = rsdp.and_then(find_fadt) else {
        log::warn!("no ACPI FADT: power-off unavailable");
        return;
    };
    let (Some(pm1a), Some(dsdt)) = (u32_at(fadt, 64), u32_at(fadt, 40)) else {
        return;
    };
    let slp_typ = table(dsdt as u64).and_then(s5_sleep_type).unwrap_or(0);
    SLP_TYP_S5.store(slp_typ as u32, Ordering::SeqCst);
    PM1A_CONTROL.store(pm1a, Ordering::SeqCst);
}

/// Enters sleep state S5 (soft off). Returns only if that failed.
pub fn enter_s5() {
    let port = PM1A_CONTROL.load(Ordering::SeqCst);
    if port == 0 || port > u16::MAX as u32 {
        return;
    }
    let value = ((SLP_TYP_S5.load(Ordering::SeqCst) as u16) << 10) | SLP_EN;
    // SAFETY: the FADT names this I/O port as the PM1a control register; writing SLP_TYP
    // with SLP_EN is the ACPI-defined way to enter a sleep state.
    unsafe { Port::<u16>::new(port as u16).write(value) };
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
}
