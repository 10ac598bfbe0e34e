//! Allocates S of memory, writes every page of it once, then keeps dirtying pages at R pages
//! per second — a workload whose dirty rate pre-copy migration must chase, and whose touched
//! size the migration benchmark chooses. `memtouch [S] [RATE] [SECONDS]`: S in MiB, or in
//! KiB with a `K` suffix (`64K`; default 16 MiB); RATE in pages per second (default 1000;
//! 0 = idle: no writes after the first pass); SECONDS 0 runs forever. It prints `ready`
//! once every page was written, so a benchmark measures a process whose pages all exist.
#![no_std]
#![no_main]

use ulib::println;

ulib::main!(main);

const PAGE: usize = 4096;

/// `S` in bytes: `N` MiB or `NK` KiB (at least one page).
fn size_bytes(arg: Option<&str>) -> usize {
    let bytes = arg.and_then(|arg| match arg.strip_suffix('K') {
        Some(kib) => kib.parse::<usize>().ok().map(|k| k << 10),
        None => arg.parse::<usize>().ok().map(|m| m << 20),
    });
    bytes.unwrap_or(16 << 20).max(PAGE)
}

fn main(args: ulib::rt::Args) -> i32 {
    let len = size_bytes(args.get(1));
    let rate: u64 = args.number(2, 1000);
    let seconds: u64 = args.number(3, 0);
    let kib = len >> 10;
    let memory = match ulib::heap::mmap(len) {
        Ok(memory) => memory,
        Err(error) => {
            println!("cannot map {kib} KiB: {error:?}");
            return 1;
        }
    };
    let pages = len / PAGE;
    for page in 0..pages {
        // SAFETY: `page < pages`, inside the mapping we own.
        unsafe { memory.add(page * PAGE).cast::<u64>().write_volatile(0) };
    }
    println!("ready ({kib} KiB, {pages} pages, {rate} pages/s)");
    let start = ulib::time::now_ns();
    let deadline = (seconds != 0).then(|| start + seconds * 1_000_000_000);
    let mut touched: u64 = 0;
    let mut page = 0usize;
    loop {
        let now = ulib::time::now_ns();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if rate == 0 {
            // Idle: the pages stay as they are.
            ulib::time::sleep_ns(deadline.map_or(1_000_000_000, |d| (d - now).min(1_000_000_000)));
            continue;
        }
        // SAFETY: `page < pages`, inside the mapping we own.
        unsafe {
            memory
                .add(page * PAGE)
                .cast::<u64>()
                .write_volatile(touched + 1)
        };
        touched += 1;
        page = (page + 1) % pages;
        // Pace: sleep whenever we are ahead of the requested rate.
        let due = touched * 1_000_000_000 / rate;
        let elapsed = ulib::time::now_ns() - start;
        if due > elapsed {
            ulib::time::sleep_ns(due - elapsed);
        }
        if touched.is_multiple_of(rate * 5) {
            println!("touched {touched} pages of {pages} ({kib} KiB)");
        }
    }
    println!("done: touched {touched} pages");
    0
}
