//! Turning a frozen process into a migration image, chunk by chunk.

use abi::{ClusterId, Pid};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use kernel::process::{Process, Table};
use uarea::image::{encode_page, ImageCrc, Manifest, PageTransport, CARRIED, REMOTE};
use x86_64::structures::paging::{PhysFrame, Size4KiB};
use x86_64::VirtAddr;

use crate::MigrationError;

/// What the source sends: the manifest, the encoded UArea, and which pages follow.
pub struct Snapshot {
    pub manifest: Manifest,
    uarea: Vec<u8>,
    /// User addresses of every page that has a frame, in segment order.
    pages: Vec<u64>,
    /// Delta transport: the pages the destination already holds, clean since they went.
    carried: BTreeSet<u64>,
    /// Post-copy: the pages that come after the commit.
    remote: BTreeSet<u64>,
    /// The pages whose bytes go by DMA, in index order (direct and delta).
    dma: Vec<u64>,
    /// Next byte of the body to produce.
    cursor: u64,
    crc: ImageCrc,
}

impl Snapshot {
    /// Captures a frozen process; `destination` goes into its UArea as its new home.
    pub fn take(
        table: &mut Table,
        pid: Pid,
        destination: ClusterId,
        sequence: u32,
        transport: PageTransport,
    ) -> Result<Snapshot, MigrationError> {
        Snapshot::take_delta(
            table,
            pid,
            destination,
            sequence,
            transport,
            BTreeSet::new(),
            BTreeSet::new(),
        )
    }

    /// Like [`Snapshot::take`]; the pages in `carried` (already at the destination from
    /// pre-copy, and clean since: the caller took the dirty set) are named [`CARRIED`] and not
    /// sent again, those in `remote` are named [`REMOTE`] and sent after the commit
    /// (post-copy); the transport must allow them (delta: carried; post-copy: remote;
    /// hybrid: both).
    pub fn take_delta(
        table: &mut Table,
        pid: Pid,
        destination: ClusterId,
        sequence: u32,
        transport: PageTransport,
        carried: BTreeSet<u64>,
        remote: BTreeSet<u64>,
    ) -> Result<Snapshot, MigrationError> {
        let source = table.cluster;
        let process = table
            .processes
            .get(&pid)
            .ok_or(MigrationError::NoSuchProcess)?;
        let mut uarea = process.uarea.clone();
        uarea.header.current_cluster = destination;
        answer_migrating(&mut uarea, destination);
        let encoded = uarea.encode();
        let mut pages = Vec::new();
        // A page-table walk: bounded by the pages that exist, not by the segments' lengths
        // (a 1 TiB mapping with three pages touched is three pages of work).
        for segment in &uarea.memory.segments {
            process
                .space
                .for_each_mapped(segment.start, segment.end(), |address| pages.push(address));
        }
        let manifest = Manifest {
            pid,
            source,
            destination,
            uarea_len: encoded.len() as u32,
            page_count: pages.len() as u32,
            sequence,
            transport,
        };
        let keep = |set: &BTreeSet<u64>, allowed: bool| -> BTreeSet<u64> {
            match allowed {
                true => pages.iter().copied().filter(|p| set.contains(p)).collect(),
                false => BTreeSet::new(),
            }
        };
        let carried = keep(
            &carried,
            matches!(transport, PageTransport::Delta | PageTransport::Hybrid),
        );
        let remote = keep(
            &remote,
            matches!(transport, PageTransport::PostCopy | PageTransport::Hybrid),
        );
        let dma = match transport {
            PageTransport::Inline => Vec::new(),
            _ => pages
                .iter()
                .copied()
                .filter(|p| !carried.contains(p) && !remote.contains(p))
                .collect(),
        };
        Ok(Snapshot {
            manifest,
            uarea: encoded,
            pages,
            carried,
            remote,
            dma,
            cursor: 0,
            crc: ImageCrc::new(),
        })
    }

    /// Bytes of the whole body (UArea and page records).
    pub fn body_len(&self) -> u64 {
        self.manifest.body_len()
    }

    /// True once every byte was produced.
    pub fn is_done(&self) -> bool {
        self.cursor == self.body_len()
    }

    /// Produces up to `max` more body bytes, reading pages from the frozen process's frames.
    pub fn next_chunk(&mut self, process: &Process, max: usize) -> Result<Vec<u8>, MigrationError> {
        let mut chunk = Vec::with_capacity(max.min((self.body_len() - self.cursor) as usize));
        let uarea_len = self.uarea.len() as u64;
        while chunk.len() < max && self.cursor < self.body_len() {
            if self.cursor < uarea_len {
                let from = self.cursor as usize;
                let take = (self.uarea.len() - from).min(max - chunk.len());
                chunk.extend_from_slice(&self.uarea[from..from + take]);
                self.cursor += take as u64;
                continue;
            }
            // Whole page records only, so a chunk never ends inside one (simpler to read).
            let record_len = self.manifest.record_len();
            if max - chunk.len() < record_len && !chunk.is_empty() {
                break;
            }
            let index = ((self.cursor - uarea_len) / record_len as u64) as usize;
            let address = self.pages[index];
            if self.manifest.transport != PageTransport::Inline {
                let flag = if self.carried.contains(&address) {
                    CARRIED
                } else if self.remote.contains(&address) {
                    REMOTE
                } else {
                    0
                };
                chunk.extend_from_slice(&(address | flag).to_le_bytes());
                self.cursor += record_len as u64;
                continue;
            }
            let (phys, _) = process
                .space
                .translate(VirtAddr::new(address))
                .ok_or(MigrationError::Image(uarea::image::ImageError::Truncated))?;
            let frame = hal::paging::phys_to_virt(phys).as_ptr::<[u8; 4096]>();
            // SAFETY: the page is mapped in the frozen process, so its frame is live and
            // nothing writes it while the process is frozen (the kernel is not preemptible).
            let data = unsafe { &*frame };
            encode_page(address, data, &mut chunk);
            self.cursor += record_len as u64;
        }
        self.crc.update(&chunk);
        Ok(chunk)
    }

    /// DMA transfers the direct and delta transports take for the pages.
    pub fn page_batches(&self) -> usize {
        self.dma.len().div_ceil(crate::BATCH_PAGES)
    }

    /// Pages whose bytes this image sends by DMA (all of them but the carried ones).
    pub fn dma_pages(&self) -> usize {
        self.dma.len()
    }

    /// The frozen process's frames holding pages `batch * BATCH_PAGES ..`, in index order:
    /// what the engine reads for that transfer.
    pub fn batch_frames(
        &self,
        process: &Process,
        batch: usize,
    ) -> Result<Vec<PhysFrame<Size4KiB>>, MigrationError> {
        let start = batch * crate::BATCH_PAGES;
        let end = (start + crate::BATCH_PAGES).min(self.dma.len());
        let pages = self
            .dma
            .get(start..end)
            .ok_or(MigrationError::NoSuchProcess)?;
        frames_of(process, pages)
    }

    /// The body's CRC, once every chunk was produced.
    pub fn crc(&self) -> Option<u32> {
        self.is_done().then(|| self.crc.value())
    }
}

/// The frames holding `pages` of `process`, in order: what the engine reads for a transfer.
pub fn frames_of(
    process: &Process,
    pages: &[u64],
) -> Result<Vec<PhysFrame<Size4KiB>>, MigrationError> {
    pages
        .iter()
        .map(|&address| {
            process
                .space
                .translate(VirtAddr::new(address))
                .map(|(phys, _)| PhysFrame::containing_address(phys))
                .ok_or(MigrationError::Image(uarea::image::ImageError::Truncated))
        })
        .collect()
}

impl Snapshot {
    /// The pages named [`REMOTE`]: those that stay here until after the commit.
    pub fn remote_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.remote.iter().copied()
    }
}

/// The copy that travels answers the threads waiting for their own process's migration
/// (`BlockReason::Migrating`; the live process keeps them blocked, for the source to answer
/// if the migration fails): one that asked for `destination` returns 0 there, one that asked
/// for another cluster is rewound to ask again from there.
fn answer_migrating(uarea: &mut uarea::UArea, destination: ClusterId) {
    use uarea::{BlockReason, ThreadState};
    let mut answered = Vec::new();
    for thread in &mut uarea.threads {
        if let ThreadState::Blocked(BlockReason::Migrating { destination: asked }) = thread.state {
            if asked == destination {
                thread.context.rax = 0;
            } else {
                thread.context.rip -= abi::conv::SYSCALL_INSN_LEN;
                thread.restart_syscall = true;
            }
            thread.state = ThreadState::Ready;
            answered.push(thread.tid);
        }
    }
    uarea.sched.run_queue.extend(answered);
}
