//! Migration through memory instead of the NoC: freeze, snapshot, remove, restore on the same
//! cluster. It runs every step of a real migration except the wire, so the in-kernel tests can
//! check freezing and restoring thoroughly before clusters are involved; it is also a
//! checkpoint/restore of a process in place.

use abi::Pid;
use kernel::process::with_table;

use crate::restore::Restorer;
use crate::snapshot::Snapshot;
use crate::{freeze, MigrationError};
use kernel::migstats::{self as stats, Record, Strategy};

/// Moves `pid` out and back in through a full image, streamed chunk by chunk as a real
/// migration would. On failure the process runs on, unchanged.
pub fn checkpoint_restore(pid: Pid) -> Result<Record, MigrationError> {
    let started = hal::clock::now_ns();
    with_table(|table| {
        freeze::freeze(table, pid)?;
        let frozen_at = hal::clock::now_ns();
        let here = table.cluster;
        let mut snapshot =
            match Snapshot::take(table, pid, here, 0, uarea::image::PageTransport::Inline) {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    freeze::thaw(table, pid);
                    return Err(error);
                }
            };
        let manifest = snapshot.manifest;
        // The source copy leaves the table (same pid, same cluster) but keeps its frames
        // until the copy is complete.
        let original = table
            .remove_migrated(pid)
            .ok_or(MigrationError::NoSuchProcess)?;
        let restored = (|| {
            let mut restorer = Restorer::new(table, manifest)?;
            while !snapshot.is_done() {
                let chunk = snapshot.next_chunk(&original, CHUNK)?;
                restorer.feed(&chunk)?;
            }
            let crc = snapshot.crc().ok_or(MigrationError::LinkError)?;
            let received = hal::clock::now_ns();
            restorer.finish(table, crc).map(|_| received)
        })();
        match restored {
            Ok(received) => {
                drop(original);
                let now = hal::clock::now_ns();
                let record = Record {
                    pid,
                    source: here,
                    destination: here,
                    strategy: Strategy::StopAndCopy,
                    preparation_ns: frozen_at - started,
                    downtime_ns: now - frozen_at,
                    resume_ns: now - received,
                    total_ns: now - started,
                    bytes: manifest.body_len(),
                    pages: manifest.page_count as u64,
                    pages_live: 0,
                    rounds: 0,
                    dirty_rate: 0,
                    failure: None,
                    // Nothing crossed the NoC: a checkpoint restored on its own cluster.
                    phases: stats::Phases {
                        complete: true,
                        stop_pages: manifest.page_count as u64,
                        stop_bytes: manifest.body_len(),
                        ..stats::Phases::ZERO
                    },
                };
                stats::record(record);
                Ok(record)
            }
            Err(error) => {
                // Put the original back, unchanged.
                let (uarea, space) = original.into_parts();
                let _ = table.insert_restored(uarea, space);
                freeze::thaw(table, pid);
                Err(error)
            }
        }
    })
}

/// Portal-sized chunks, as on the NoC.
const CHUNK: usize = 1 << 20;
