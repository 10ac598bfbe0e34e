//! Allocates S MiB and keeps dirtying pages at R pages per second — a workload whose dirty
//! rate pre-copy migration must chase. `memtouch [S_MIB] [RATE] [SECONDS]`
//! (default 16 MiB, 1000 pages/s, run forever when SECONDS is 0).
#![no_std]
#![no_main]

use ulib::println;

ulib::main!(main);

const PAGE: usize = 4096;

fn main(args: ulib::rt::Args) -> i32 {
    let mib: usize = args.number(1, 16);
    let rate: u64 = args.number(2, 1000).max(1);
    let seconds: u64 = args.number(3, 0);
    let len = mib << 20;
    let memory = match ulib::heap::mmap(len) {
        Ok(memory) => memory,
        Err(error) => {
            println!("cannot map {mib} MiB: {error:?}");
            return 1;
        }
    };
    let pages = len / PAGE;
    let start = ulib::time::now_ns();
    let mut touched: u64 = 0;
    let mut page = 0usize;
    loop {
        // SAFETY: `page < pages`, inside the mapping we own.
        unsafe {
            memory
                .add(page * PAGE)
                .cast::<u64>()
                .write_volatile(touched)
        };
        touched += 1;
        page = (page + 1) % pages;
        let elapsed = ulib::time::now_ns() - start;
        if seconds != 0 && elapsed >= seconds * 1_000_000_000 {
            break;
        }
        // Pace: sleep whenever we are ahead of the requested rate.
        let due = touched * 1_000_000_000 / rate;
        if due > elapsed {
            ulib::time::sleep_ns(due - elapsed);
        }
        if touched.is_multiple_of(rate * 5) {
            println!("touched {touched} pages of {pages} ({mib} MiB)");
        }
    }
    println!("done: touched {touched} pages");
    0
}
