//! The smallest Tessera app: greet, show where it runs, exit.
#![no_std]
#![no_main]

use ulib::println;

ulib::main!(main);

fn main(args: ulib::rt::Args) -> i32 {
    let who = args.get(1).unwrap_or("world");
    println!(
        "hello, {who}! I am process {} on cluster {} of {}",
        ulib::process::getpid(),
        ulib::process::cluster_id().0,
        ulib::process::cluster_count()
    );
    0
}
