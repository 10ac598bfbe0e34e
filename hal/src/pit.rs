//! The legacy 8254 PIT, used only as a known-frequency reference to calibrate the local APIC
//! timer and the TSC (OSDev "APIC timer": calibrate against PIT channel 2).

use x86_64::instructions::port::Port;

/// PIT input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Busy-waits `ms` milliseconds (≤ 50) on PIT channel 2, calling `start` right when the
/// countdown begins. Interrupts are irrelevant: channel 2 is polled through port 0x61.
pub fn wait_ms(ms: u64, start: impl FnOnce()) {
    let count = (PIT_HZ * ms.min(50) / 1000) as u16;
    // SAFETY: ports 0x42, 0x43 and 0x61 belong to the PIT and the keyboard controller's
    // speaker gate; only this calibration code touches them, once at boot.
    unsafe {
        let mut gate: Port<u8> = Port::new(0x61);
        let mut command: Port<u8> = Port::new(0x43);
        let mut channel2: Port<u8> = Port::new(0x42);
        let speaker = gate.read();
        gate.write((speaker & !0x02) | 0x01); // gate on, speaker off
        command.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        // Restart the countdown by pulsing the gate.
        let value = gate.read() & !0x01;
        gate.write(value);
        gate.write(value | 0x01);
        start();
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        gate.write(speaker);
    }
}
