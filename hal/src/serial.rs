//! The serial console (COM1, a 16550 UART): the only output device a cluster has, and the
//! console input of the kernel monitor.
//!
//! Output is written with interrupts disabled so a timer interrupt that logs cannot deadlock
//! on a half-written line.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;
use x86_64::instructions::interrupts;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3F8;
/// Line status register bit: a received byte is waiting.
const LSR_DATA_READY: u8 = 1;

static PORT: Mutex<Option<SerialPort>> = Mutex::new(None);

/// Programs the UART (115200 8N1, FIFOs on). Idempotent.
pub fn init() {
    interrupts::without_interrupts(|| {
        let mut port = PORT.lock();
        if port.is_none() {
            // SAFETY: COM1 is the standard PC serial port at 0x3F8 on every QEMU machine we
            // boot, and nothing else in the kernel drives these I/O ports.
            let mut uart = unsafe { SerialPort::new(COM1) };
            uart.init();
            *port = Some(uart);
        }
    });
}

/// Writes formatted text to the console.
pub fn write_fmt(args: fmt::Arguments) {
    interrupts::without_interrupts(|| {
        if let Some(port) = PORT.lock().as_mut() {
            let _ = port.write_fmt(args);
        }
    });
}

/// Writes raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    interrupts::without_interrupts(|| {
        if let Some(port) = PORT.lock().as_mut() {
            for &b in bytes {
                port.send_raw(b);
            }
        }
    });
}

/// Returns a received byte if one is waiting, without blocking.
pub fn try_read_byte() -> Option<u8> {
    interrupts::without_interrupts(|| {
        let _guard = PORT.lock();
        // SAFETY: reading COM1's line status and data registers has no side effect beyond
        // consuming the received byte, and the PORT lock serialises access to the UART.
        unsafe {
            let mut lsr: Port<u8> = Port::new(COM1 + 5);
            if lsr.read() & LSR_DATA_READY == 0 {
                return None;
            }
            let mut data: Port<u8> = Port::new(COM1);
            Some(data.read())
        }
    })
}

/// Last-resort output for fatal paths: bypasses the lock, which the failing code may hold.
///
/// # Safety
/// Only for code that will never return to normal operation (fatal exception, panic).
pub unsafe fn force_unlock() {
    // SAFETY: the caller promises no further concurrent use of the lock's previous holder.
    unsafe { PORT.force_unlock() };
}

/// `print!` to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::write_fmt(format_args!($($arg)*)) };
}

/// `println!` to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
