//! The local APIC: interrupt acknowledgement and the periodic timer.
//!
//! The legacy 8259 PICs are remapped and masked so they can never raise a stray interrupt on
//! an exception vector; every interrupt then comes through the local APIC (timer, and later
//! the NoC's MSI-X messages). Register offsets: Intel SDM Vol. 3A, Table 11-1.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;
use x86_64::PhysAddr;

use crate::frame::TrapFrame;
use crate::vectors::{self, SPURIOUS_VECTOR};

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 32;

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;

const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xB0;
const REG_SPURIOUS: usize = 0xF0;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3E0;

const SOFTWARE_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;
const CALIBRATION_MS: u64 = 20;

/// Virtual address of the APIC registers (0 until [`init`]).
static BASE: AtomicU64 = AtomicU64::new(0);

/// What the calibration measured.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    pub tsc_hz: u64,
    pub apic_timer_hz: u64,
}

fn read(register: usize) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: `base` maps the 4 KiB APIC register page uncached, and `register` is one of
    // the aligned 32-bit register offsets above.
    unsafe { core::ptr::read_volatile((base as usize + register) as *const u32) }
}

fn write(register: usize, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as in `read`; APIC registers must be written with 32-bit stores.
    unsafe { core::ptr::write_volatile((base as usize + register) as *mut u32, value) }
}

fn disable_legacy_pics() {
    // SAFETY: the 8259 command/data ports; the standard ICW1-4 sequence remaps them to
    // vectors 0x20-0x2F and then masks every line, after which they stay silent.
    unsafe {
        let mut master_cmd: Port<u8> = Port::new(0x20);
        let mut master_data: Port<u8> = Port::new(0x21);
        let mut slave_cmd: Port<u8> = Port::new(0xA0);
        let mut slave_data: Port<u8> = Port::new(0xA1);
        master_cmd.write(0x11);
        slave_cmd.write(0x11);
        master_data.write(0x20);
        slave_data.write(0x28);
        master_data.write(4);
        slave_data.write(2);
        master_data.write(1);
        slave_data.write(1);
        master_data.write(0xFF);
        slave_data.write(0xFF);
    }
}

/// Enables the local APIC, calibrates its timer and the TSC against the PIT, and starts the
/// periodic timer at `hz`.
pub fn init(hz: u32) -> Calibration {
    disable_legacy_pics();
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting the global enable bit keeps
    // the base address the firmware chose.
    let apic_base = unsafe {
        let value = msr.read() | APIC_GLOBAL_ENABLE;
        msr.write(value);
        value & 0xF_FFFF_F000
    };
    let virt = crate::paging::map_mmio(PhysAddr::new(apic_base), 4096)
        .expect("cannot map the local APIC registers");
    BASE.store(virt.as_u64(), Ordering::SeqCst);

    write(REG_SPURIOUS, SOFTWARE_ENABLE | SPURIOUS_VECTOR as u32);
    vectors::set_handler(TIMER_VECTOR, timer_interrupt);

    // Count down from the maximum during a PIT-timed interval.
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    let mut tsc_start = 0;
    crate::pit::wait_ms(CALIBRATION_MS, || {
        write(REG_TIMER_INITIAL, u32::MAX);
        tsc_start = crate::cpu::rdtsc();
    });
    let tsc_end = crate::cpu::rdtsc();
    let elapsed_apic = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INITIAL, 0);

    let apic_timer_hz = elapsed_apic as u64 * 1000 / CALIBRATION_MS;
    let tsc_hz = (tsc_end - tsc_start) * 1000 / CALIBRATION_MS;
    set_rate(apic_timer_hz, hz);
    Calibration {
        tsc_hz,
        apic_timer_hz,
    }
}

static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

fn set_rate(apic_timer_hz: u64, hz: u32) {
    TIMER_HZ.store(apic_timer_hz, Ordering::SeqCst);
    let initial = (apic_timer_hz / hz.max(1) as u64).clamp(1, u32::MAX as u64) as u32;
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INITIAL, initial);
}

/// Changes the timer interrupt rate.
pub fn set_timer_hz(hz: u32) {
    set_rate(TIMER_HZ.load(Ordering::SeqCst), hz);
}

/// The local APIC id of this CPU.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Signals end of interrupt to the local APIC.
pub fn end_of_interrupt() {
    if BASE.load(Ordering::Relaxed) != 0 {
        write(REG_EOI, 0);
    }
}

fn timer_interrupt(_frame: &mut TrapFrame) {
    crate::clock::tick();
}
