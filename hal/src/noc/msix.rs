//! MSI-X: route one table entry of a device to a local APIC vector.
//!
//! QEMU's ivshmem delivers a doorbell **only** as an MSI-X message and drops it while MSI-X is
//! disabled (`ivshmem_vector_notify`), so the NoC driver must program this. Layout: PCI Local
//! Bus Specification 3.0 §6.8.2; message address/data for the xAPIC: Intel SDM Vol. 3A §11.11.

use super::pci::PciAddress;
use crate::paging;
use x86_64::PhysAddr;

/// MSI-X capability id.
const CAPABILITY_ID: u8 = 0x11;
const CONTROL_ENABLE: u16 = 1 << 15;
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
const ENTRY_SIZE: u64 = 16;
/// Fixed delivery to the local APIC whose id is in bits 19:12.
const MESSAGE_ADDRESS: u32 = 0xFEE0_0000;

/// Why MSI-X could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixError {
    NoCapability,
    BadTable,
    MapFailed,
}

/// Points table entry `entry` at `vector` on the local APIC `apic_id`, unmasks it and enables
/// MSI-X on the function.
pub fn enable(device: PciAddress, entry: u16, vector: u8, apic_id: u32) -> Result<(), MsixError> {
    let cap = device
        .find_capability(CAPABILITY_ID)
        .ok_or(MsixError::NoCapability)?;
    let control = device.read16(cap + 2);
    let table_size = (control & 0x7FF) + 1;
    if entry >= table_size {
        return Err(MsixError::BadTable);
    }
    let table = device.read32(cap + 4);
    let bir = (table & 7) as u8;
    let table_offset = (table & !7) as u64;
    let bar = device.memory_bar(bir).ok_or(MsixError::BadTable)?;
    let entry_offset = table_offset + entry as u64 * ENTRY_SIZE;
    if entry_offset + ENTRY_SIZE > bar.size {
        return Err(MsixError::BadTable);
    }
    let base = paging::map_mmio(PhysAddr::new(bar.phys + entry_offset), ENTRY_SIZE)
        .map_err(|_| MsixError::MapFailed)?;
    let words = base.as_mut_ptr::<u32>();
    // SAFETY: `words` maps this entry's 16 bytes of the MSI-X table uncached; the entry is
    // four dwords (address low, address high, data, vector control) written with 32-bit
    // stores as the specification requires.
    unsafe {
        words.add(3).write_volatile(1); // masked while it changes
        words.write_volatile(MESSAGE_ADDRESS | (apic_id & 0xFF) << 12);
        words.add(1).write_volatile(0);
        words.add(2).write_volatile(vector as u32);
        words.add(3).write_volatile(0); // unmasked
    }
    device.write16(cap + 2, (control | CONTROL_ENABLE) & !CONTROL_FUNCTION_MASK);
    Ok(())
}
