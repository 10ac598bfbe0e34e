//! DMA engine cases of the `noc` suite: rejected descriptors must not touch either
//! cluster's memory, and injected DMA faults must reach both kernels as errors.

use alloc::string::String;
use alloc::vec::Vec;
use hal::noc::dma::{self, RangeList};
use hal::noc::{ClusterId, Header, Kind, PortId};
use kernel::noc::{self, portal, NocError};
use noc_proto::dma::{Completion, Descriptor, ListRef, Range, Role, Status};

use super::noc::{barrier, me, retry, transfer_data, wait};
use crate::{ensure, ensure_eq};

const PAGE: usize = 4096;

/// Waits for the next unclaimed completion on `port` (rejections of raw descriptors, and the
/// router's answers to raw grants).
fn next_report(port: PortId, pending: &mut Vec<Completion>) -> Result<Completion, String> {
    wait("a DMA completion", || {
        pending.extend(portal::take_unclaimed(port));
        !pending.is_empty()
    })?;
    Ok(pending.remove(0))
}

fn arm(fault: &str) -> Result<(), String> {
    let request = Header::new(Kind::Control, ClusterId(0), ClusterId::ROUTER, PortId(0), 0);
    retry("arming a DMA fault", || {
        hal::noc::send(request, fault.as_bytes()).map_err(NocError::from)
    })
}

pub fn dma_rejections_leave_memory_untouched() -> Result<(), String> {
    let port = PortId(55);
    let mut reports = Vec::new();
    // Cluster 0 grants one page in the middle of a buffer of 0xAA, twice: transfer 100 with
    // a 4 KiB limit, transfer 101 with a 1 MiB limit (more than the page holds).
    let guarded = if me() == 0 {
        let buffer = alloc::vec![0xAAu8; 4 * PAGE];
        let at = PAGE - (buffer.as_ptr() as usize % PAGE) + PAGE;
        let list = RangeList::of_buffer(buffer[at..].as_ptr(), PAGE)
            .map_err(|e| alloc::format!("{e:?}"))?;
        for (id, limit) in [(100, PAGE as u32), (101, 1 << 20)] {
            let grant = dma::grant_message(ClusterId(1), id, &list, limit);
            retry("grant", || {
                dma::send_grant(port, &grant).map_err(NocError::from)
            })?;
        }
        Some((buffer, list))
    } else {
        None
    };
    barrier(56)?;
    if me() == 1 {
        let data = transfer_data(7, 1 << 20);
        let post = |id: u32, len: usize| -> Result<(), String> {
            let list =
                RangeList::of_buffer(data.as_ptr(), len).map_err(|e| alloc::format!("{e:?}"))?;
            let descriptor = dma::descriptor_message(ClusterId(0), id, &list);
            retry("descriptor", || {
                dma::send_descriptor(port, &descriptor).map_err(NocError::from)
            })?;
            // The list frame must outlive the router's reading of it: wait for the answer.
            wait("the router", hal::noc::tx_idle)?;
            Ok(())
        };
        let mut expect = |id: u32, status: Status| -> Result<(), String> {
            let report = next_report(port, &mut reports)?;
            ensure_eq!(
                (report.role, report.transfer, report.status),
                (Role::Sender, id, status)
            );
            ensure_eq!(report.bytes, 0);
            Ok(())
        };
        post(99, PAGE)?; // refused: nobody granted transfer 99
        expect(99, Status::NoGrant)?;
        post(100, 2 * PAGE)?; // above the grant's 4 KiB limit
        expect(100, Status::TooLarge)?;
        post(101, 2 * PAGE)?; // within the limit, but out of the granted page
        expect(101, Status::OutOfGrant)?;
        // Above the 1 MiB transfer limit: a list naming 1 MiB + 4 KiB (built by hand, as
        // RangeList refuses to describe it).
        let whole =
            RangeList::of_buffer(data.as_ptr(), 1 << 20).map_err(|e| alloc::format!("{e:?}"))?;
        let frame = hal::frames::alloc().map_err(|e| alloc::format!("{e:?}"))?;
        let entries = hal::paging::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>();
        let first = whole.list_ref();
        let extra = Range {
            addr: frame.start_address().as_u64(),
            len: PAGE as u32,
        };
        // SAFETY: `frame` is ours, mapped at `entries`; the copied list (≤ 255 entries) and
        // one more entry fit in its 4 KiB.
        unsafe {
            let from = hal::paging::phys_to_virt(x86_64::PhysAddr::new(first.addr)).as_ptr::<u8>();
            core::ptr::copy_nonoverlapping(from, entries, first.count as usize * 16);
            let tail = extra.encode();
            core::ptr::copy_nonoverlapping(
                tail.as_ptr(),
                entries.add(first.count as usize * 16),
                16,
            );
        }
        let oversized = Descriptor {
            destination: 0,
            transfer: 101,
            list: ListRef {
                addr: extra.addr,
                count: first.count + 1,
            },
            total: (1 << 20) + PAGE as u32,
        };
        retry("oversized", || {
            dma::send_descriptor(port, &oversized).map_err(NocError::from)
        })?;
        expect(101, Status::TooLarge)?;
        let _ = hal::frames::free(frame);
        ensure!(
            data == transfer_data(7, 1 << 20),
            "the sender's memory changed"
        );
    }
    barrier(57)?;
    if let Some((buffer, list)) = guarded {
        ensure!(
            buffer.iter().all(|&b| b == 0xAA),
            "a rejected DMA wrote into the receiver's memory"
        );
        // Revoke both grants and wait for the router's word before freeing the buffer.
        for id in [100, 101] {
            let revoke = dma::revoke_message(ClusterId(1), id);
            retry("revoke", || {
                dma::send_grant(port, &revoke).map_err(NocError::from)
            })?;
        }
        for _ in 0..2 {
            let report = next_report(port, &mut reports)?;
            ensure_eq!(
                (report.role, report.status),
                (Role::Receiver, Status::Revoked)
            );
        }
        drop(list);
        drop(buffer);
    }
    Ok(())
}

pub fn dma_faults_reach_both_sides() -> Result<(), String> {
    let port = PortId(58);
    let inbox = if me() == 0 {
        Some(portal::create(port).map_err(|e| alloc::format!("{e:?}"))?)
    } else {
        None
    };
    let data = transfer_data(1, 64 * 1024);
    for (round, fault) in ["dma-corrupt 1", "dma-peer-gone 1"].iter().enumerate() {
        if let Some(inbox) = &inbox {
            portal::allow(inbox, ClusterId(1)).map_err(|e| alloc::format!("{e:?}"))?;
            let mut got = Err(NocError::WouldBlock);
            wait("the failed transfer", || {
                got = portal::try_read_vec(inbox).map(|_| ());
                got != Err(NocError::WouldBlock)
            })?;
            ensure_eq!(got, Err(NocError::TransferFailed));
        }
        if me() == 1 {
            arm(fault)?;
            let to = portal::open(ClusterId(0), port).map_err(|e| alloc::format!("{e:?}"))?;
            let result = noc::retry(90_000_000_000, || portal::write(&to, &data));
            ensure_eq!(result, Err(NocError::TransferFailed));
        }
        barrier(60 + round as u16 * 2)?;
    }
    // Dropped: the writer times out; the receiver gets nothing.
    if let Some(inbox) = &inbox {
        portal::allow(inbox, ClusterId(1)).map_err(|e| alloc::format!("{e:?}"))?;
    }
    if me() == 1 {
        arm("dma-drop 1")?;
        let to = portal::open(ClusterId(0), port).map_err(|e| alloc::format!("{e:?}"))?;
        let result = noc::retry(90_000_000_000, || portal::write(&to, &data));
        ensure_eq!(result, Err(NocError::TimedOut));
    }
    barrier(64)?;
    // Faults used up: a clean transfer goes through intact.
    if let Some(inbox) = &inbox {
        ensure_eq!(
            portal::try_read_vec(inbox).map(|_| ()),
            Err(NocError::WouldBlock)
        );
        portal::allow(inbox, ClusterId(1)).map_err(|e| alloc::format!("{e:?}"))?;
        let mut got = None;
        wait("the clean transfer", || {
            got = portal::try_read_vec(inbox).ok();
            got.is_some()
        })?;
        let (source, bytes) = got.ok_or("no transfer")?;
        ensure_eq!(source, ClusterId(1));
        ensure!(bytes == data, "the clean transfer's data differs");
    }
    if me() == 1 {
        let to = portal::open(ClusterId(0), port).map_err(|e| alloc::format!("{e:?}"))?;
        retry("clean write", || portal::write(&to, &data))?;
    }
    if let Some(inbox) = inbox {
        portal::unlink(inbox); // revokes the grant the dropped transfer left behind
    }
    Ok(())
}

/// A transfer allowed under the id its sender chose (`allow_as`, what the user portal relay
/// does with the id in its claim) goes only under that id: another allowance does not carry
/// it, the receiver learns which id landed, and once the receiver gave a grant up (`revoke`)
/// a write under its stale id is refused by the engine and delivers nothing.
pub fn portal_transfers_are_bound_to_their_id() -> Result<(), String> {
    let err = |e: NocError| alloc::format!("{e:?}");
    let port = PortId(59);
    let inbox = if me() == 0 {
        let inbox = portal::create(port).map_err(err)?;
        portal::allow_as(&inbox, ClusterId(1), 7).map_err(err)?;
        portal::allow_as(&inbox, ClusterId(1), 9).map_err(err)?;
        ensure_eq!(
            portal::allow_as(&inbox, ClusterId(1), 7),
            Err(NocError::BadEndpoint)
        );
        Some(inbox)
    } else {
        None
    };
    barrier(71)?;
    let data = transfer_data(5, 16 * 1024);
    let to = portal::open(ClusterId(0), port).map_err(err)?;
    let write_as = |id: u32| -> Result<Result<(), NocError>, String> {
        let posted = portal::post_buffer_as(&to, id, &data).map_err(err)?;
        let mut done = None;
        wait("the completion", || {
            done = portal::take_completion(&posted);
            done.is_some()
        })?;
        done.ok_or_else(|| String::from("no completion"))
    };
    if me() == 1 {
        wait("both allowances", || {
            portal::is_allowed_as(&to, 7) && portal::is_allowed_as(&to, 9)
        })?;
        ensure!(
            !portal::is_allowed_as(&to, 8),
            "allowed an id never granted"
        );
        ensure_eq!(
            portal::post_buffer_as(&to, 8, &data).err(),
            Some(NocError::WouldBlock)
        );
        ensure_eq!(write_as(9)?, Ok(()));
    }
    barrier(72)?;
    if let Some(inbox) = &inbox {
        let mut got = None;
        wait("the transfer", || {
            got = portal::try_read_vec_as(inbox).ok();
            got.is_some()
        })?;
        let (from, id, bytes) = got.ok_or("no transfer")?;
        ensure_eq!((from, id), (ClusterId(1), 9));
        ensure!(bytes == data, "the data differs");
        portal::revoke(inbox, ClusterId(1)); // gives up transfer 7
    }
    barrier(73)?;
    if me() == 1 {
        ensure!(portal::is_allowed_as(&to, 7), "the stale allowance is gone");
        ensure_eq!(write_as(7)?, Err(NocError::Refused));
    }
    barrier(74)?;
    if let Some(inbox) = inbox {
        ensure_eq!(
            portal::try_read_vec_as(&inbox).map(|(from, id, _)| (from, id)),
            Err(NocError::WouldBlock)
        );
        portal::unlink(inbox);
    }
    Ok(())
}
