//! Prints this cluster's migration records, read by `migration_stats_ex`: one `MIGREC` line
//! each, `key=value`, every figure of the record, so a person, a test or a script reads the
//! same thing the kernel keeps. `migstat [PID]`: only the records of raw pid PID.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write;
use ulib::abi::{MigrationRecordEx, Strategy};
use ulib::println;

ulib::main!(main);

fn line(r: &MigrationRecordEx) -> String {
    let b = &r.base;
    let strategy = Strategy::from_number(b.strategy as u64).map_or("?", Strategy::name);
    let mut out = String::new();
    let _ = write!(
        out,
        "MIGREC pid={} source={} destination={} strategy={strategy} failed={} complete={} cut_short={} \
         rounds={} dirty_rate={} preparation_ns={} downtime_ns={} resume_ns={} total_ns={} \
         residual_ns={} pages={} bytes={} precopy_pages={} precopy_bytes={} stop_pages={} \
         stop_bytes={} pulled_pages={} pulled_bytes={} pushed_pages={} pushed_bytes={} \
         remote_pages={} fault_wait_ns={} link_bytes={} throttle_pct={} round_pages=",
        b.pid,
        b.source.0,
        b.destination.0,
        b.failed as u8,
        r.complete as u8,
        r.cut_short as u8,
        b.rounds,
        b.dirty_rate,
        b.preparation_ns,
        b.downtime_ns,
        b.resume_ns,
        b.total_ns,
        r.residual_ns,
        b.pages,
        b.bytes,
        r.precopy_pages,
        r.precopy_bytes,
        r.stop_pages,
        r.stop_bytes,
        r.pulled_pages,
        r.pulled_bytes,
        r.pushed_pages,
        r.pushed_bytes,
        r.remote_pages,
        r.fault_wait_ns,
        r.link_bytes,
        r.throttle_pct,
    );
    let rounds = (b.rounds as usize).min(r.round_pages.len());
    for (i, pages) in r.round_pages[..rounds].iter().enumerate() {
        let _ = write!(out, "{}{pages}", if i == 0 { "" } else { "," });
    }
    out
}

fn main(args: ulib::rt::Args) -> i32 {
    let only: Option<u32> = args.get(1).and_then(|a| a.parse().ok());
    let records = match ulib::process::migration_records() {
        Ok(records) => records,
        Err(error) => {
            println!("migration_stats_ex: {error:?}");
            return 1;
        }
    };
    for record in records
        .iter()
        .filter(|r| only.is_none_or(|p| r.base.pid == p))
    {
        println!("{}", line(record));
    }
    println!("MIGREC end {} records", records.len());
    0
}
