//! A seeded system-call fuzzer: `fuzz SEED SECONDS`. Random call numbers and arguments —
//! pointers into the kernel half, past our mappings, non-canonical, null, or into a scratch
//! region of our own; lengths from 0 to `u64::MAX` — for SECONDS seconds, then one line
//! `fuzz: seed S, N calls`. `cargo xtask fuzz` runs it next to a neighbour process and checks
//! the kernel, the neighbour and the monitor survive.
//!
//! Calls that would end or wedge the fuzzer itself are steered away: `exit`, `thread_exit`
//! and `kill` of itself are skipped, sleeps are short, `futex_wait` never waits forever,
//! reads and joins that block until someone else acts are skipped, and new threads start at
//! a function that exits at once. Everything else — including `kill` of other processes,
//! which must fail with `EPERM` — is fair game.
#![no_std]
#![no_main]

use ulib::abi::Syscall;
use ulib::println;
use ulib::raw::syscall_number;

ulib::main!(main);

/// xorshift64*: small, seedable, good enough to pick arguments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SCRATCH_LEN: u64 = 64 * 1024;
/// The scratch region, far from our heap (`mmap`ed by ulib) so nothing written past its end
/// lands in memory we use.
const SCRATCH_AT: u64 = 0x0000_3000_0000_0000;
/// Where ulib's heap is mapped from (the kernel's `MMAP_BASE`), and where stacks are.
const MMAP_BASE: u64 = 0x0000_1000_0000_0000;
const STACKS: u64 = 0x0000_7000_0000_0000;
const USER_END: u64 = 0x0000_8000_0000_0000;
/// `munmap` and `mmap FIXED` stay above this: below are our heap and the scratch region.
const FUZZ_ZONE: u64 = 0x0000_4000_0000_0000;

/// Where pointers point.
struct Targets {
    scratch: u64,
    me: u64,
}

impl Targets {
    fn pointer(&self, rng: &mut Rng) -> u64 {
        match rng.below(10) {
            0 => 0,
            1 => 0xFFFF_8000_0000_0000 + rng.below(1 << 40), // kernel half
            2 => 0x0000_8000_0000_0000 + rng.below(1 << 46), // non-canonical
            3 => self.scratch + SCRATCH_LEN - rng.below(128), // running past our mapping
            4 => 0x0000_7FFF_FFFF_F000 + rng.below(0x1000),  // top of the user half
            5 => rng.next(),
            6 => rng.below(0x40_0000), // the unmapped low 4 MiB
            _ => self.scratch + rng.below(SCRATCH_LEN),
        }
    }

    fn length(&self, rng: &mut Rng) -> u64 {
        match rng.below(8) {
            0 => 0,
            1 => u64::MAX - rng.below(4096),
            2 => 1 << rng.below(64),
            3 => rng.next(),
            _ => rng.below(256),
        }
    }

    fn value(&self, rng: &mut Rng) -> u64 {
        match rng.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => self.me,
            3 => rng.below(1 << 26), // pid-like
            4 => rng.next(),
            _ => rng.below(300),
        }
    }
}

extern "C" fn thread_entry(_arg: u64) -> ! {
    ulib::thread::exit(0)
}

/// Fills the arguments of `number`, or `None` to skip a call that would end or wedge us.
fn arguments(number: u64, rng: &mut Rng, t: &Targets) -> Option<[u64; 6]> {
    let mut args = [0u64; 6];
    for arg in args.iter_mut() {
        *arg = match rng.below(3) {
            0 => t.pointer(rng),
            1 => t.length(rng),
            _ => t.value(rng),
        };
    }
    // A "length" such as 1 << 44 is also an address: keep every argument off our own heap
    // and stack (the kernel would rightly write there), sending it to the scratch instead.
    for arg in args.iter_mut() {
        let ours = (MMAP_BASE..SCRATCH_AT).contains(arg) || (STACKS..USER_END).contains(arg);
        if ours {
            *arg = t.scratch + (*arg % SCRATCH_LEN);
        }
    }
    let call = Syscall::from_number(number);
    match call {
        Some(Syscall::Exit | Syscall::ThreadExit) => return None,
        // Block until another party acts: they would wedge a lone fuzzer.
        Some(
            Syscall::MailboxRead
            | Syscall::MailboxReadFrom
            | Syscall::PortalRead
            | Syscall::PortalWrite
            | Syscall::SyncWait
            | Syscall::ThreadJoin
            | Syscall::Wait,
        ) => return None,
        Some(Syscall::Kill) if args[0] == t.me || args[0] as u32 as u64 == t.me => return None,
        Some(Syscall::Sleep) => args[0] %= 1_000_000,
        // Unmapping our heap or stacks would kill us, not test the kernel.
        Some(Syscall::Munmap) if args[0] < FUZZ_ZONE || args[0] >= 0x7F00_0000_0000 => {
            args[0] = FUZZ_ZONE + (rng.below(1 << 40) & !0xFFF)
        }
        // Always `FIXED` in the fuzz zone: a placed mapping would move the cursor our heap
        // grows from into the zone, where a random `munmap` could take it away.
        Some(Syscall::Mmap) => {
            args[0] = FUZZ_ZONE | (args[0] & 0x0000_0FFF_FFFF_FFFF);
            args[3] |= ulib::abi::MapFlags::FIXED.bits();
        }
        // Short lines: the console is a slow serial port shared with the neighbour.
        Some(Syscall::Write) => args[1] %= 32,
        Some(Syscall::FutexWait) => args[2] = 1 + rng.below(1_000_000), // finite: EINVAL
        Some(Syscall::ThreadCreate) => {
            let entry: extern "C" fn(u64) -> ! = thread_entry;
            args[0] = entry as usize as u64;
        }
        // Moving ourselves is legal but would take the fuzzer off its cluster for good.
        Some(Syscall::Migrate | Syscall::MigrateWith) if args[0] as u32 as u64 == t.me => {
            return None
        }
        _ => {}
    }
    Some(args)
}

fn main(args: ulib::rt::Args) -> i32 {
    let seed: u64 = args.number(1, 1);
    let seconds: u64 = args.number(2, 15);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let prot = ulib::abi::Prot::READ.bits() | ulib::abi::Prot::WRITE.bits();
    let fixed = ulib::abi::MapFlags::FIXED.bits();
    let Ok(scratch) = ulib::raw::call(Syscall::Mmap, &[SCRATCH_AT, SCRATCH_LEN, prot, fixed])
    else {
        println!("fuzz: no scratch memory");
        return 1;
    };
    let targets = Targets {
        scratch: scratch as u64,
        me: ulib::process::getpid().raw() as u64,
    };
    println!("fuzz: seed {seed}, {seconds} s, pid {}", targets.me);
    let end = ulib::time::now_ns() + seconds * 1_000_000_000;
    let mut next_report = ulib::time::now_ns() + 5_000_000_000;
    let mut calls: u64 = 0;
    while ulib::time::now_ns() < end {
        let number = match rng.below(16) {
            0 => rng.next(),
            1 => 112 + rng.below(400),
            _ => rng.below(112),
        };
        let Some(call_args) = arguments(number, &mut rng, &targets) else {
            continue;
        };
        // SAFETY: the kernel checks every argument; pointers we pass lead either nowhere
        // (the call fails) or into the scratch region, which nothing of ours reads.
        let _ = unsafe { syscall_number(number, call_args) };
        calls += 1;
        if ulib::time::now_ns() >= next_report {
            println!("fuzz: {calls} calls so far");
            next_report += 5_000_000_000;
        }
    }
    // A newline first: a random `write` may have left half a line.
    println!("\nfuzz: seed {seed}, {calls} calls");
    0
}
