//! The local APIC: interrupt acknowledgement and the one-shot timer.
//!
//! The legacy 8259 PICs are remapped and masked so they can never raise a stray interrupt on
//! an exception vector; every interrupt then comes through the local APIC (timer, the NoC's
//! MSI-X messages, and COM1 through the I/O APIC). Register offsets: Intel SDM Vol. 3A,
//! Table 11-1.
//!
//! There is no periodic tick: [`crate::timer`] arms the timer for the next deadline only.
//! The timer runs in TSC-deadline mode when the CPU offers it (SDM 10.5.4.1: the interrupt
//! fires when the TSC reaches IA32_TSC_DEADLINE — exact, nothing to calibrate), else in
//! one-shot mode, counting APIC ticks whose rate relative to the TSC is measured at boot.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const IA32_TSC_DEADLINE: u32 = 0x6E0;
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
    /// The timer runs in TSC-deadline mode.
    pub tsc_deadline: bool,
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

/// Enables the local APIC and calibrates the TSC against the PIT (good enough until the chip
/// clock takes over, and the only reference without a NoC) and the APIC timer against the
/// TSC. The timer stays disarmed until [`crate::timer`] arms it.
pub fn init() -> Calibration {
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

    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    let mut tsc_start = 0;
    crate::pit::wait_ms(CALIBRATION_MS, || tsc_start = crate::cpu::rdtsc());
    let tsc_hz = (crate::cpu::rdtsc() - tsc_start) * 1000 / CALIBRATION_MS;
    let apic_per_tsc = measure_apic_per_tsc(tsc_hz);
    APIC_PER_TSC_Q32.store(apic_per_tsc, Ordering::SeqCst);
    let deadline = tsc_deadline_supported();
    TSC_DEADLINE.store(deadline, Ordering::SeqCst);
    let mode = if deadline { LVT_TSC_DEADLINE } else { 0 };
    write(REG_LVT_TIMER, mode | TIMER_VECTOR as u32);
    Calibration {
        tsc_hz,
        apic_timer_hz: ((apic_per_tsc as u128 * tsc_hz as u128) >> 32) as u64,
        tsc_deadline: deadline,
    }
}

/// APIC timer ticks per TSC tick, as a 32.32 fixed-point number: the median of 5 counts of
/// about 2 ms each, every end read bracketed by TSC reads (both clocks follow host time under
/// TCG, so a host preemption inside an interval does not matter; one across a read is
/// rejected by the median).
fn measure_apic_per_tsc(tsc_hz: u64) -> u64 {
    let interval = (tsc_hz / 500).max(1);
    let mut samples = [0u64; 5];
    for sample in samples.iter_mut() {
        let before = crate::cpu::rdtsc();
        write(REG_TIMER_INITIAL, u32::MAX);
        let start = crate::cpu::rdtsc() / 2 + before / 2;
        while crate::cpu::rdtsc() - start < interval {
            core::hint::spin_loop();
        }
        let before_read = crate::cpu::rdtsc();
        let elapsed_apic = (u32::MAX - read(REG_TIMER_CURRENT)) as u64;
        let end = crate::cpu::rdtsc() / 2 + before_read / 2;
        *sample = (elapsed_apic << 32) / (end - start).max(1);
    }
    write(REG_TIMER_INITIAL, 0);
    samples.sort_unstable();
    samples[2].max(1)
}

/// CPUID.01H:ECX bit 24: the local APIC timer has a TSC-deadline mode.
fn tsc_deadline_supported() -> bool {
    let leaf = core::arch::x86_64::__cpuid(1);
    leaf.ecx & (1 << 24) != 0
}

static APIC_PER_TSC_Q32: AtomicU64 = AtomicU64::new(0);

/// The APIC timer's rate in Hz, from its measured ratio to the TSC and the clock's current
/// TSC rate (the chip's once synchronised).
pub fn timer_hz() -> u64 {
    ((APIC_PER_TSC_Q32.load(Ordering::Relaxed) as u128 * crate::clock::tsc_hz() as u128) >> 32)
        as u64
}
static TSC_DEADLINE: AtomicBool = AtomicBool::new(false);

/// Arms the timer to interrupt when the TSC reaches `tsc`, at the latest (one-shot mode fires
/// up to one APIC tick early, or after ~68 s at most; [`crate::timer`] re-arms then).
pub(crate) fn arm_at_tsc(tsc: u64) {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        let mut msr = Msr::new(IA32_TSC_DEADLINE);
        // SAFETY: the CPU advertised TSC-deadline mode and the LVT timer is in that mode;
        // writing a TSC value arms it (0 would disarm it, and `tsc` is never 0 here).
        unsafe { msr.write(tsc.max(1)) };
        return;
    }
    let ticks = tsc.saturating_sub(crate::cpu::rdtsc()) as u128;
    let count = (ticks * APIC_PER_TSC_Q32.load(Ordering::Relaxed) as u128) >> 32;
    write(REG_TIMER_INITIAL, count.clamp(1, u32::MAX as u128) as u32);
}

/// Stops the timer: no interrupt until it is armed again.
pub(crate) fn disarm() {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        let mut msr = Msr::new(IA32_TSC_DEADLINE);
        // SAFETY: as in `arm_at_tsc`; 0 disarms the TSC-deadline timer.
        unsafe { msr.write(0) };
    } else {
        write(REG_TIMER_INITIAL, 0);
    }
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
    crate::timer::interrupt();
}
