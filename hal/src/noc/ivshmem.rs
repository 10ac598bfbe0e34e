//! The `ivshmem-doorbell` PCI device (`1af4:1110`): BAR0 registers, BAR2 shared memory.
//!
//! Register layout from QEMU `docs/specs/ivshmem-spec.rst`: IntrMask 0x00, IntrStatus 0x04
//! (INTx only), IVPosition 0x08 (our peer id), Doorbell 0x0C (write `peer << 16 | vector`).

use super::pci::{self, PciAddress};
use crate::paging;
use x86_64::PhysAddr;

pub const VENDOR: u16 = 0x1AF4;
pub const DEVICE: u16 = 0x1110;

const REG_IVPOSITION: usize = 0x08;
const REG_DOORBELL: usize = 0x0C;

/// The device once found and its register BAR mapped.
pub struct Ivshmem {
    pub pci: PciAddress,
    registers: *mut u32,
    /// BAR2: physical address and size of the shared memory.
    pub shm: pci::Bar,
}

// SAFETY: `registers` points to the device's MMIO registers, mapped for the kernel's lifetime;
// every access is a single volatile 32-bit load or store.
unsafe impl Send for Ivshmem {}
// SAFETY: as above; the registers tolerate concurrent single-word accesses.
unsafe impl Sync for Ivshmem {}

/// Why the device is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IvshmemError {
    NoRegisterBar,
    NoSharedMemoryBar,
    MapFailed,
}

impl Ivshmem {
    /// Finds the device, or `None` if this machine has none (a single cluster without noc-sim).
    pub fn find() -> Option<PciAddress> {
        pci::find(VENDOR, DEVICE)
    }

    /// Maps BAR0 and sizes BAR2; enables memory decoding and bus mastering (MSI-X writes are
    /// bus-master writes).
    pub fn open(address: PciAddress) -> Result<Ivshmem, IvshmemError> {
        let bar0 = address.memory_bar(0).ok_or(IvshmemError::NoRegisterBar)?;
        let shm = address
            .memory_bar(2)
            .ok_or(IvshmemError::NoSharedMemoryBar)?;
        address.enable(pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER | pci::COMMAND_INTX_DISABLE);
        let registers =
            paging::map_mmio(PhysAddr::new(bar0.phys), 256).map_err(|_| IvshmemError::MapFailed)?;
        Ok(Ivshmem {
            pci: address,
            registers: registers.as_mut_ptr(),
            shm,
        })
    }

    fn read(&self, register: usize) -> u32 {
        // SAFETY: `registers` maps the 256-byte register BAR; `register` is an aligned
        // offset below 0x10.
        unsafe { self.registers.add(register / 4).read_volatile() }
    }

    /// Our ivshmem peer id, which is the cluster number (noc-sim assigns it by socket).
    pub fn position(&self) -> u32 {
        self.read(REG_IVPOSITION)
    }

    /// Rings `vector` of `peer` (for us: always the router).
    pub fn ring(&self, peer: u16, vector: u16) {
        // SAFETY: as in `read`; a doorbell write only makes QEMU signal the peer's eventfd.
        unsafe {
            self.registers
                .add(REG_DOORBELL / 4)
                .write_volatile((peer as u32) << 16 | vector as u32)
        }
    }
}
