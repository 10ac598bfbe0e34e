//! PCI configuration space through the legacy I/O ports (0xCF8 address, 0xCFC data), enough to
//! find a device, size and enable its BARs and walk its capability list.
//!
//! Configuration mechanism #1: PCI Local Bus Specification 3.0, §3.2.2.3.2. QEMU's q35 also
//! offers ECAM, but the port mechanism needs no ACPI MCFG parsing and reaches every register
//! below 0x100, which is all this driver uses.

use x86_64::instructions::port::Port;

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// Offsets in the type-0 configuration header.
pub const VENDOR_ID: u8 = 0x00;
pub const DEVICE_ID: u8 = 0x02;
pub const COMMAND: u8 = 0x04;
pub const STATUS: u8 = 0x06;
pub const HEADER_TYPE: u8 = 0x0E;
pub const BAR0: u8 = 0x10;
pub const CAPABILITIES: u8 = 0x34;

/// Command register bits.
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// Status register: the capability list is valid.
const STATUS_CAPABILITIES: u16 = 1 << 4;

/// Bus, device, function of one PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciAddress {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl PciAddress {
    fn config_address(self, offset: u8) -> u32 {
        (1 << 31)
            | (self.bus as u32) << 16
            | (self.device as u32) << 11
            | (self.function as u32) << 8
            | (offset as u32 & 0xFC)
    }

    pub fn read32(self, offset: u8) -> u32 {
        // SAFETY: 0xCF8/0xCFC are the PCI configuration ports on every PC; selecting and
        // reading a configuration dword has no side effect on the registers we use.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(self.config_address(offset));
            Port::<u32>::new(CONFIG_DATA).read()
        }
    }

    pub fn write32(self, offset: u8, value: u32) {
        // SAFETY: as in `read32`; callers write only registers whose effect they intend
        // (BAR sizing, command, MSI-X control), on the device this driver owns.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(self.config_address(offset));
            Port::<u32>::new(CONFIG_DATA).write(value);
        }
    }

    pub fn read16(self, offset: u8) -> u16 {
        (self.read32(offset) >> ((offset & 2) * 8)) as u16
    }

    pub fn write16(self, offset: u8, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(offset);
        let new = (old & !(0xFFFF << shift)) | (value as u32) << shift;
        self.write32(offset, new);
    }

    pub fn read8(self, offset: u8) -> u8 {
        (self.read32(offset) >> ((offset & 3) * 8)) as u8
    }

    /// Sets bits in the command register.
    pub fn enable(self, bits: u16) {
        let command = self.read16(COMMAND);
        self.write16(COMMAND, command | bits);
    }

    /// Size and address of memory BAR `index` (a 64-bit BAR spans `index` and `index + 1`).
    /// `None` for I/O BARs and unimplemented ones.
    pub fn memory_bar(self, index: u8) -> Option<Bar> {
        let offset = BAR0 + 4 * index;
        let low = self.read32(offset);
        if low & 1 != 0 {
            return None; // I/O space
        }
        let is_64 = (low >> 1) & 0b11 == 0b10;
        // Sizing: write all ones, read back the mask, restore (memory decoding off meanwhile
        // so the device never answers at the probe address).
        let command = self.read16(COMMAND);
        self.write16(COMMAND, command & !COMMAND_MEMORY);
        self.write32(offset, u32::MAX);
        let mask_low = self.read32(offset) & !0xF;
        self.write32(offset, low);
        let (high, mask_high) = if is_64 {
            let high = self.read32(offset + 4);
            self.write32(offset + 4, u32::MAX);
            let mask_high = self.read32(offset + 4);
            self.write32(offset + 4, high);
            (high, mask_high)
        } else {
            (0, u32::MAX)
        };
        self.write16(COMMAND, command);
        let mask = (mask_high as u64) << 32 | mask_low as u64;
        if mask_low == 0 && mask_high == 0 {
            return None;
        }
        let size = (!mask).wrapping_add(1);
        let phys = (high as u64) << 32 | (low & !0xF) as u64;
        (size != 0 && phys != 0).then_some(Bar { phys, size })
    }

    /// Offset of the first capability with `id`, if any.
    pub fn find_capability(self, id: u8) -> Option<u8> {
        if self.read16(STATUS) & STATUS_CAPABILITIES == 0 {
            return None;
        }
        let mut offset = self.read8(CAPABILITIES) & !3;
        // A list longer than 48 entries would be a loop: config space holds at most that.
        for _ in 0..48 {
            if offset < 0x40 {
                return None;
            }
            if self.read8(offset) == id {
                return Some(offset);
            }
            offset = self.read8(offset + 1) & !3;
        }
        None
    }
}

/// A memory BAR: physical address and size (a power of two).
#[derive(Clone, Copy, Debug)]
pub struct Bar {
    pub phys: u64,
    pub size: u64,
}

/// The first function with this vendor and device id, scanning every bus.
pub fn find(vendor: u16, device: u16) -> Option<PciAddress> {
    for bus in 0..=255u8 {
        for dev in 0..32u8 {
            let first = PciAddress {
                bus,
                device: dev,
                function: 0,
            };
            if first.read16(VENDOR_ID) == 0xFFFF {
                continue;
            }
            let functions = if first.read8(HEADER_TYPE) & 0x80 != 0 {
                8
            } else {
                1
            };
            for function in 0..functions {
                let address = PciAddress {
                    bus,
                    device: dev,
                    function,
                };
                if address.read16(VENDOR_ID) == vendor && address.read16(DEVICE_ID) == device {
                    return Some(address);
                }
            }
        }
    }
    None
}
