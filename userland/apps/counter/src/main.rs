//! Prints a rising counter forever — the migration demo. `counter [PERIOD_MS]` (default 500).
#![no_std]
#![no_main]

use ulib::println;

ulib::main!(main);

fn main(args: ulib::rt::Args) -> i32 {
    let period_ms: u64 = args.number(1, 500);
    let mut count: u64 = 0;
    loop {
        println!("count {count} (cluster {})", ulib::process::cluster_id().0);
        count += 1;
        ulib::time::sleep_ms(period_ms);
    }
}
