//! Code that arrives by DMA, a case of the `noc` suite: a frame that already ran code here and
//! is then refilled by the DMA engine must run the new code once
//! `hal::noc::dma_code::prepare_to_execute` saw it — what migration relies on for the text
//! pages of every process that arrives (QEMU's TCG keeps translating the old bytes
//! otherwise; see that module). Cluster 0 runs a function in a frame, grants the frame to
//! cluster 1, which DMA-writes another function over it; cluster 0 runs it again.

use alloc::string::String;
use hal::noc::{dma_code, ClusterId, PortId};
use kernel::noc::portal;
use x86_64::structures::paging::{Page, PageTableFlags, PhysFrame, Size4KiB};
use x86_64::VirtAddr;

use super::noc::{barrier, me, retry, wait};
use crate::{ensure, ensure_eq};

/// Where cluster 0 maps the frame (supervisor-only, executable), next to `paging`'s scratch.
const CODE_AT: u64 = 0x0000_7100_0040_0000;
const PORT: u16 = 100;

/// `mov eax, value; ret`, at the start of an otherwise zero frame.
fn function_returning(value: u32) -> [u8; 4096] {
    let mut page = [0u8; 4096];
    page[0] = 0xB8;
    page[1..5].copy_from_slice(&value.to_le_bytes());
    page[5] = 0xC3;
    page
}

fn fill(frame: PhysFrame<Size4KiB>, bytes: &[u8; 4096]) {
    let target = hal::paging::phys_to_virt(frame.start_address()).as_mut_ptr::<[u8; 4096]>();
    // SAFETY: the frame was allocated by the caller and is reached whole through the
    // physical-memory map; nothing else uses it.
    unsafe { target.write(*bytes) };
}

fn debug(error: impl core::fmt::Debug) -> String {
    alloc::format!("{error:?}")
}

fn run() -> u32 {
    // SAFETY: `CODE_AT` is mapped executable on cluster 0 for the test's duration and always
    // holds one of the two functions `function_returning` writes (a complete `mov; ret`).
    let function: extern "C" fn() -> u32 = unsafe { core::mem::transmute(CODE_AT as usize) };
    function()
}

const OLD: u32 = 0x1111_0000;
const NEW: u32 = 0x2222_0000;

/// Cluster 0's frame: mapped at `CODE_AT`, and granted to cluster 1.
struct Receiving {
    inbox: portal::Portal,
    page: Page<Size4KiB>,
    frame: PhysFrame<Size4KiB>,
}

pub fn dma_written_code_runs_as_written() -> Result<(), String> {
    let receiving = (me() == 0).then(run_old_and_grant);
    barrier(PORT + 2)?;
    let sent = if me() == 1 { write_new() } else { Ok(()) };
    let checked = match receiving {
        Some(Ok(receiving)) => run_what_arrived(receiving),
        Some(Err(error)) => Err(error),
        None => Ok(()),
    };
    // Whatever happened, every cluster meets here, so one failure does not stall the suite.
    barrier(PORT + 4)?;
    sent.and(checked)
}

/// Cluster 0: the old function runs (so TCG translated it), then its frame is granted.
fn run_old_and_grant() -> Result<Receiving, String> {
    let frame = hal::frames::alloc().map_err(debug)?;
    fill(frame, &function_returning(OLD));
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(CODE_AT));
    // SAFETY: the frame is ours, the page is in the user half of the kernel's own table (no
    // process runs in this suite), supervisor-only; it is unmapped before the frame is freed.
    if let Err(error) = unsafe { hal::paging::map(page, frame, PageTableFlags::PRESENT) } {
        let _ = hal::frames::free(frame);
        return Err(debug(error));
    }
    let ran = run(); // translated now
    if ran != OLD {
        let _ = hal::paging::unmap(page);
        let _ = hal::frames::free(frame);
        return Err(alloc::format!("the old function returned {ran:#x}"));
    }
    let inbox = portal::create(PortId(PORT)).map_err(debug);
    match inbox.and_then(
        |inbox| match portal::allow_frames(&inbox, ClusterId(1), &[frame]) {
            Ok(_) => Ok(inbox),
            Err(error) => {
                portal::unlink(inbox);
                Err(debug(error))
            }
        },
    ) {
        Ok(inbox) => Ok(Receiving { inbox, page, frame }),
        Err(error) => {
            // The frame is not freed: a grant of it may have reached the router.
            let _ = hal::paging::unmap(page);
            Err(error)
        }
    }
}

/// Cluster 1: DMA-writes the new function over cluster 0's frame.
fn write_new() -> Result<(), String> {
    let frame = hal::frames::alloc().map_err(debug)?;
    fill(frame, &function_returning(NEW));
    let written = portal::open(ClusterId(0), PortId(PORT))
        .map_err(debug)
        .and_then(|to| {
            wait("the grant", || portal::is_allowed(&to))?;
            retry("the DMA write", || portal::write_frames(&to, &[frame]))
        });
    let _ = hal::frames::free(frame);
    written
}

/// Cluster 0: once the transfer landed, the new function runs after `prepare_to_execute`.
fn run_what_arrived(receiving: Receiving) -> Result<(), String> {
    let Receiving { inbox, page, frame } = receiving;
    let mut landed = None;
    let waited = wait("the code", || {
        landed = portal::try_read_frames(&inbox).ok();
        landed.is_some()
    });
    portal::unlink(inbox);
    if let Err(error) = waited {
        let _ = hal::paging::unmap(page); // the frame stays: the router may still write it
        return Err(error);
    }
    // SAFETY: reading the frame the transfer completed into, through the physical map.
    let arrived = unsafe {
        hal::paging::phys_to_virt(frame.start_address())
            .as_ptr::<[u8; 4096]>()
            .read()
    };
    // Not asserted (hardware and KVM run the new bytes at once): what TCG still runs.
    let before = run();
    hal::println!(
        "    (before prepare_to_execute the CPU ran the {} function)",
        if before == OLD { "old" } else { "new" }
    );
    dma_code::prepare_to_execute(frame);
    let after = run();
    if let Ok(unmapped) = hal::paging::unmap(page) {
        let _ = hal::frames::free(unmapped);
    }
    ensure_eq!(landed, Some((ClusterId(1), 4096)));
    ensure!(arrived == function_returning(NEW), "the DMA did not land");
    ensure_eq!(after, NEW);
    Ok(())
}
