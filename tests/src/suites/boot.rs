//! What bring-up promised: the command line reached the kernel, memory was found, the
//! descriptor tables are in place.

use alloc::string::String;

use crate::{ensure, ensure_eq, tests};

pub const TESTS: &[crate::framework::Test] = tests![
    cmdline_reaches_kernel,
    usable_memory_found,
    kernel_segments_loaded,
    the_kernel_runs_every_catalogued_suite
];

/// `cargo xtask test` boots what `suite-catalog` lists; the test kernel must know each of
/// them, and nothing else.
fn the_kernel_runs_every_catalogued_suite() -> Result<(), String> {
    for listed in catalog::SUITES {
        ensure!(
            crate::suites::SUITES.iter().any(|s| s.name == listed.name),
            "suite `{}` is catalogued but has no tests here",
            listed.name
        );
    }
    for known in crate::suites::SUITES {
        ensure!(
            catalog::find(known.name).is_some(),
            "suite `{}` is not in the catalog",
            known.name
        );
    }
    Ok(())
}

fn cmdline_reaches_kernel() -> Result<(), String> {
    let cmdline = kernel::Cmdline::from_firmware();
    ensure_eq!(cmdline.get("suite"), Some("core"));
    ensure!(cmdline.get("no-such-key").is_none());
    Ok(())
}

fn usable_memory_found() -> Result<(), String> {
    let total = hal::frames::total_count();
    // xtask boots clusters with 256 MiB; allow for firmware holes.
    ensure!(total * 4096 > 128 << 20, "only {} KiB usable", total * 4);
    ensure!(hal::frames::free_count() <= total);
    Ok(())
}

fn kernel_segments_loaded() -> Result<(), String> {
    use x86_64::instructions::segmentation::{Segment, CS};
    let selectors = hal::gdt::selectors();
    ensure_eq!(CS::get_reg(), selectors.kernel_code);
    // sysret needs user data right below user code, kernel data right after kernel code.
    ensure_eq!(selectors.user_code.0 & !3, (selectors.user_data.0 & !3) + 8);
    ensure_eq!(selectors.kernel_data.0, selectors.kernel_code.0 + 8);
    Ok(())
}
