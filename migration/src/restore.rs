//! Rebuilding an arriving process: every page at its old user address on fresh frames, then
//! the UArea, then its threads in the run queue.
//!
//! Nothing becomes visible until the whole image checked out; a failure at any point drops
//! the half-built address space (freeing its frames) and leaves the cluster as it was.

use alloc::vec::Vec;
use hal::paging::AddressSpace;
use kernel::process::memory::page_flags;
use kernel::process::Table;
use uarea::image::{ImageError, ImageReader, Manifest, PageBytes, PageTransport};
use uarea::{Perms, UAreaFlags};
use x86_64::structures::paging::{Page, PhysFrame, Size4KiB};
use x86_64::VirtAddr;

use crate::precopy::PreCopied;
use crate::MigrationError;

/// An image being received.
pub struct Restorer {
    reader: ImageReader,
    space: AddressSpace,
    /// Direct transport: the frame mapped for each page, in index order (the engine fills
    /// them batch by batch).
    frames: Vec<PhysFrame<Size4KiB>>,
    batches_arrived: usize,
    /// Delta transport: the frames pre-copy filled, until the image maps them.
    precopied: PreCopied,
    /// Post-copy transport: the pages still at the source.
    remote: Vec<u64>,
}

impl Restorer {
    /// Accepts a manifest, or refuses it (the pid already lives here, or no memory).
    pub fn new(table: &Table, manifest: Manifest) -> Result<Restorer, MigrationError> {
        if table.processes.contains_key(&manifest.pid) || manifest.destination != table.cluster {
            return Err(MigrationError::Refused);
        }
        let free_bytes = hal::frames::free_count() as u64 * 4096;
        if manifest.page_count as u64 * 4096 + (1 << 20) > free_bytes {
            return Err(MigrationError::OutOfMemory);
        }
        Restorer::after_precopy(table, manifest, PreCopied::new())
    }

    /// Accepts the final image of a pre-copy, which maps the pages `precopied` holds
    /// (memory was reserved when the process was first offered).
    pub fn after_precopy(
        table: &Table,
        manifest: Manifest,
        precopied: PreCopied,
    ) -> Result<Restorer, MigrationError> {
        if table.processes.contains_key(&manifest.pid) || manifest.destination != table.cluster {
            return Err(MigrationError::Refused);
        }
        let space = AddressSpace::new().map_err(|_| MigrationError::OutOfMemory)?;
        Ok(Restorer {
            reader: ImageReader::new(manifest),
            space,
            frames: Vec::new(),
            batches_arrived: 0,
            precopied,
            remote: Vec::new(),
        })
    }

    /// The manifest being received.
    pub fn manifest(&self) -> &Manifest {
        self.reader.manifest()
    }

    /// Takes the next body bytes: each page is checked, then mapped and filled.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), MigrationError> {
        let space = &mut self.space;
        let frames = &mut self.frames;
        let precopied = &mut self.precopied;
        let remote = &mut self.remote;
        self.reader
            .feed(bytes, |uarea, vaddr, data| {
                let segment = uarea
                    .memory
                    .segment_at(vaddr)
                    .ok_or(ImageError::PageOutsideSegments(vaddr))?;
                if data == PageBytes::Remote {
                    // Post-copy: it comes after the process resumed.
                    remote.push(vaddr);
                    return Ok(());
                }
                let page = Page::containing_address(VirtAddr::new(vaddr));
                // No need to zero the frame: the page's bytes overwrite all of it (here, or
                // by DMA before the process can run), or pre-copy filled it.
                let frame = match data {
                    PageBytes::Carried => precopied
                        .take(vaddr)
                        .ok_or(ImageError::PageOutsideSegments(vaddr))?,
                    _ => match precopied.take(vaddr) {
                        Some(frame) => frame,
                        None => hal::frames::alloc().map_err(|_| ImageError::NoMemory)?,
                    },
                };
                match data {
                    PageBytes::Inline(data) => {
                        let target = hal::paging::phys_to_virt(frame.start_address())
                            .as_mut_ptr::<[u8; 4096]>();
                        // SAFETY: the frame was just allocated, is reached through the
                        // physical map, and nothing else refers to it yet.
                        unsafe { target.write(*data) };
                    }
                    PageBytes::Dma => frames.push(frame),
                    PageBytes::Carried | PageBytes::Remote => {}
                }
                space
                    .map(page, frame, page_flags(segment.perms))
                    .map_err(|_| {
                        let _ = hal::frames::free(frame);
                        ImageError::NoMemory
                    })
            })
            .map_err(|error| match error {
                ImageError::NoMemory => MigrationError::OutOfMemory,
                other => MigrationError::Image(other),
            })
    }

    /// True once the stream (UArea and page records) arrived whole.
    pub fn index_complete(&self) -> bool {
        self.reader.is_complete()
    }

    /// DMA transfers the pages take (0 with the inline transport).
    pub fn page_batches(&self) -> usize {
        match self.manifest().transport {
            PageTransport::Inline => 0,
            PageTransport::Direct
            | PageTransport::Delta
            | PageTransport::PostCopy
            | PageTransport::Hybrid => self.frames.len().div_ceil(crate::BATCH_PAGES),
        }
    }

    /// The frames transfer `batch` fills, in index order (once the index is complete).
    pub fn batch_frames(&self, batch: usize) -> &[PhysFrame<Size4KiB>] {
        let start = (batch * crate::BATCH_PAGES).min(self.frames.len());
        let end = (start + crate::BATCH_PAGES).min(self.frames.len());
        &self.frames[start..end]
    }

    /// Page transfers completed so far.
    pub fn batches_arrived(&self) -> usize {
        self.batches_arrived
    }

    /// One more transfer of pages completed (the engine checked it).
    pub fn batch_arrived(&mut self) {
        self.batches_arrived += 1;
    }

    /// True once every announced byte arrived, pages included.
    pub fn is_complete(&self) -> bool {
        self.index_complete() && self.batches_arrived >= self.page_batches()
    }

    /// Checks the CRC and makes the process live here. Returns its pid.
    pub fn finish(self, table: &mut Table, body_crc: u32) -> Result<abi::Pid, MigrationError> {
        let pid = self.finish_frozen(table, body_crc)?;
        crate::freeze::thaw(table, pid);
        Ok(pid)
    }

    /// Like [`Restorer::finish`], but the process stays frozen: present and validated, never
    /// scheduled until [`crate::freeze::thaw`] — the destination's *prepared* state, in
    /// which it waits for the source's decision.
    pub fn finish_frozen(
        self,
        table: &mut Table,
        body_crc: u32,
    ) -> Result<abi::Pid, MigrationError> {
        if !self.is_complete() {
            return Err(MigrationError::Image(ImageError::Truncated));
        }
        let mut uarea = self
            .reader
            .finish(body_crc)
            .map_err(MigrationError::Image)?;
        let pid = uarea.header.pid;
        uarea.header.flags.set(UAreaFlags::FROZEN, true);
        uarea.header.current_cluster = table.cluster;
        uarea.counters.migrations += 1;
        for thread in &mut uarea.threads {
            thread.restart_syscall = false;
        }
        let mut space = self.space;
        // Pages written by DMA that will run as code: QEMU must not run stale translations.
        prepare_code(&space, &uarea.memory);
        space.set_remote(self.remote);
        table
            .insert_restored(uarea, space)
            .map_err(|_| MigrationError::Refused)?;
        Ok(pid)
    }
}

/// The pages of every executable segment, which arrived by DMA (or were carried from
/// pre-copy) into frames that may have held other code: made fit to run before the process
/// can (see `hal::noc::dma_code`, a QEMU TCG quirk). Inline pages were copied by the CPU and
/// need it not, but they are few and it is harmless.
fn prepare_code(space: &AddressSpace, memory: &uarea::MemoryMap) {
    for segment in memory
        .segments
        .iter()
        .filter(|s| s.perms.contains(Perms::X))
    {
        space.for_each_mapped(segment.start, segment.end(), |address| {
            if let Some((phys, _)) = space.translate(VirtAddr::new(address)) {
                hal::noc::dma_code::prepare_to_execute(PhysFrame::containing_address(phys));
            }
        });
    }
}
