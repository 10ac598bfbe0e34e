//! The migration image: what crosses the NoC when a process moves.
//!
//! ```text
//!  manifest (48 bytes) | UArea (envelope, `uarea_len` bytes) | page records …
//!  page record, inline transport = user virtual address (u64 LE) + 4096 bytes of the page
//!  page record, direct transport = user virtual address (u64 LE) only
//!  page record, delta transport  = user virtual address | CARRIED (bit 0) (u64 LE)
//! ```
//!
//! With the *direct* transport the records are an index: the pages themselves go frame to
//! frame by the NoC's DMA engine (the receiver maps a fresh frame for each address and grants
//! it; the sender names the frozen process's frames), so no CPU copies or checksums them — the
//! engine checks every transfer. The *inline* transport carries the bytes in the stream
//! (checkpoints on one cluster, and any path without DMA). The *delta* transport is the final
//! image of a pre-copy (`crate::precopy`): like direct, but a record with [`CARRIED`] set names a
//! page the destination already holds from a round while the process ran, clean since, so
//! its bytes do not travel again.
//!
//! The stream is consumed incrementally — a 64 MiB process never sits whole in a kernel heap —
//! so the manifest announces every length up front, and a CRC-32 of the UArea and every page
//! record, in order, follows the body (the source computes it while it sends). The receiver checks each record as it arrives (aligned user address,
//! inside a segment of the UArea, not seen before) and the CRC at the end; anything else
//! rejects the whole image, and the source keeps running the process.

use alloc::collections::BTreeSet;

use abi::{ClusterId, Pid};

use crate::UArea;
/// zlib's CRC-32 (IEEE 802.3), so any tool can check an image by hand.
use crc32fast::Hasher as Crc32;

/// Manifest magic.
pub const IMAGE_MAGIC: [u8; 4] = *b"TMIG";
/// Image format version (2: the manifest names the page transport).
pub const IMAGE_VERSION: u16 = 2;
/// Encoded manifest length.
pub const MANIFEST_LEN: usize = 48;
/// Bytes of one page record.
pub const PAGE_RECORD_LEN: usize = 8 + PAGE_LEN;
const PAGE_LEN: usize = 4096;

/// How the pages' bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageTransport {
    /// In the stream, after each page's address.
    Inline = 0,
    /// Frame to frame by DMA; the stream carries only the addresses.
    Direct = 1,
    /// As `Direct`, after a pre-copy: records flagged [`CARRIED`] are already there.
    Delta = 2,
}

/// Bit 0 of a delta record: the page came in a pre-copy round and was not written since.
pub const CARRIED: u64 = 1;

/// Where a page's bytes come from, as [`ImageReader::feed`] reports each record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageBytes<'a> {
    /// In the stream (inline transport).
    Inline(&'a [u8; PAGE_LEN]),
    /// By DMA into the frame the receiver grants for it (direct, delta).
    Dma,
    /// Already at the receiver, from a pre-copy round (delta, [`CARRIED`]).
    Carried,
}

/// What the source announces before sending the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The migrating process.
    pub pid: Pid,
    /// Cluster it leaves.
    pub source: ClusterId,
    /// Cluster it moves to.
    pub destination: ClusterId,
    /// Bytes of the encoded UArea that follow the manifest.
    pub uarea_len: u32,
    /// Page records that follow the UArea.
    pub page_count: u32,
    /// Migration sequence number chosen by the source (to match replies).
    pub sequence: u32,
    /// How the pages' bytes travel.
    pub transport: PageTransport,
}

/// Why an image was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Fewer bytes than a manifest or record needs.
    Truncated,
    /// Not a migration image.
    BadMagic,
    /// A format this build cannot read.
    UnsupportedVersion(u16),
    /// A page transport this build does not know.
    UnknownTransport(u16),
    /// The manifest's pid is not a valid pid.
    BadPid,
    /// More bytes than the manifest announced, or records not whole.
    LengthMismatch,
    /// The manifest or body CRC does not match.
    ChecksumMismatch,
    /// The UArea inside does not decode or validate.
    BadUArea(crate::UAreaError),
    /// The UArea's pid differs from the manifest's.
    PidMismatch,
    /// A page address is unaligned or outside every segment of the UArea.
    PageOutsideSegments(u64),
    /// A page sent twice.
    DuplicatePage(u64),
    /// The receiver had no frame for a page (not the image's fault).
    NoMemory,
}

impl Manifest {
    /// Bytes of one page record in the stream.
    pub fn record_len(&self) -> usize {
        match self.transport {
            PageTransport::Inline => PAGE_RECORD_LEN,
            PageTransport::Direct | PageTransport::Delta => 8,
        }
    }

    /// Total bytes after the manifest.
    pub fn body_len(&self) -> u64 {
        self.uarea_len as u64 + self.page_count as u64 * self.record_len() as u64
    }

    /// Bytes of the pages themselves (whatever carries them).
    pub fn page_bytes(&self) -> u64 {
        self.page_count as u64 * PAGE_LEN as u64
    }

    /// The manifest's wire bytes (little-endian, with its own CRC).
    pub fn encode(&self) -> [u8; MANIFEST_LEN] {
        let mut out = [0u8; MANIFEST_LEN];
        out[0..4].copy_from_slice(&IMAGE_MAGIC);
        out[4..6].copy_from_slice(&IMAGE_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(self.transport as u16).to_le_bytes());
        out[8..12].copy_from_slice(&self.pid.raw().to_le_bytes());
        out[12..14].copy_from_slice(&self.source.0.to_le_bytes());
        out[14..16].copy_from_slice(&self.destination.0.to_le_bytes());
        out[16..20].copy_from_slice(&self.uarea_len.to_le_bytes());
        out[20..24].copy_from_slice(&self.page_count.to_le_bytes());
        out[28..32].copy_from_slice(&self.sequence.to_le_bytes());
        let check = crc32fast::hash(&out[..44]);
        out[44..48].copy_from_slice(&check.to_le_bytes());
        out
    }

    /// Parses and checks a manifest.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ImageError> {
        let bytes: &[u8; MANIFEST_LEN] = bytes
            .get(..MANIFEST_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(ImageError::Truncated)?;
        if bytes[0..4] != IMAGE_MAGIC {
            return Err(ImageError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != IMAGE_VERSION {
            return Err(ImageError::UnsupportedVersion(version));
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        if u32_at(44) != crc32fast::hash(&bytes[..44]) {
            return Err(ImageError::ChecksumMismatch);
        }
        let transport = match u16_at(6) {
            0 => PageTransport::Inline,
            1 => PageTransport::Direct,
            2 => PageTransport::Delta,
            other => return Err(ImageError::UnknownTransport(other)),
        };
        let uarea_len = u32_at(16);
        if uarea_len as usize > crate::HEADER_LEN + crate::MAX_PAYLOAD_LEN {
            return Err(ImageError::LengthMismatch);
        }
        Ok(Manifest {
            pid: Pid::from_raw(u32_at(8)).ok_or(ImageError::BadPid)?,
            source: ClusterId(u16_at(12)),
            destination: ClusterId(u16_at(14)),
            uarea_len,
            page_count: u32_at(20),
            sequence: u32_at(28),
            transport,
        })
    }
}

/// Appends one page record.
pub fn encode_page(vaddr: u64, page: &[u8; PAGE_LEN], out: &mut alloc::vec::Vec<u8>) {
    out.extend_from_slice(&vaddr.to_le_bytes());
    out.extend_from_slice(page);
}

/// Builds a manifest's CRC incrementally on the sending side.
#[derive(Default)]
pub struct ImageCrc(Crc32);

impl ImageCrc {
    /// An empty checksum.
    pub fn new() -> Self {
        ImageCrc(Crc32::new())
    }
    /// Adds the next body bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    /// The CRC of everything added.
    pub fn finish(self) -> u32 {
        self.0.finalize()
    }
    /// The CRC of everything added so far (more may follow).
    pub fn value(&self) -> u32 {
        self.0.clone().finalize()
    }
}

/// The receiving side: checks the body as it arrives, record by record.
pub struct ImageReader {
    manifest: Manifest,
    uarea: Option<UArea>,
    uarea_bytes: alloc::vec::Vec<u8>,
    /// A page record split across two chunks.
    partial: alloc::vec::Vec<u8>,
    pages_seen: BTreeSet<u64>,
    received: u64,
    crc: Crc32,
}

impl ImageReader {
    /// Starts reading the body announced by `manifest`.
    pub fn new(manifest: Manifest) -> Self {
        ImageReader {
            manifest,
            uarea: None,
            uarea_bytes: alloc::vec::Vec::new(),
            partial: alloc::vec::Vec::new(),
            pages_seen: BTreeSet::new(),
            received: 0,
            crc: Crc32::new(),
        }
    }

    /// The manifest being read.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The decoded UArea, once its bytes have all arrived.
    pub fn uarea(&self) -> Option<&UArea> {
        self.uarea.as_ref()
    }

    /// Feeds the next bytes of the body; calls `page(vaddr, bytes)` for each complete, checked
    /// page record, saying where its bytes come from. Returns an error on the first
    /// inconsistency.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut page: impl FnMut(&UArea, u64, PageBytes<'_>) -> Result<(), ImageError>,
    ) -> Result<(), ImageError> {
        if self.received + bytes.len() as u64 > self.manifest.body_len() {
            return Err(ImageError::LengthMismatch);
        }
        self.received += bytes.len() as u64;
        self.crc.update(bytes);
        // The UArea comes first.
        let uarea_len = self.manifest.uarea_len as usize;
        if self.uarea.is_none() {
            let take = (uarea_len - self.uarea_bytes.len()).min(bytes.len());
            self.uarea_bytes.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.uarea_bytes.len() < uarea_len {
                return Ok(());
            }
            let uarea = UArea::decode(&self.uarea_bytes).map_err(ImageError::BadUArea)?;
            if uarea.header.pid != self.manifest.pid {
                return Err(ImageError::PidMismatch);
            }
            self.uarea = Some(uarea);
        }
        let Some(uarea) = self.uarea.as_ref() else {
            return Ok(());
        };
        // Then whole page records, one possibly split across calls.
        let record_len = self.manifest.record_len();
        while !bytes.is_empty() {
            let record: &[u8] = if !self.partial.is_empty() || bytes.len() < record_len {
                let take = (record_len - self.partial.len()).min(bytes.len());
                self.partial.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.partial.len() < record_len {
                    return Ok(());
                }
                &self.partial
            } else {
                let (record, rest) = bytes.split_at(record_len);
                bytes = rest;
                record
            };
            let mut vaddr =
                u64::from_le_bytes(record[..8].try_into().map_err(|_| ImageError::Truncated)?);
            let data = match self.manifest.transport {
                PageTransport::Inline => {
                    PageBytes::Inline(record[8..].try_into().map_err(|_| ImageError::Truncated)?)
                }
                PageTransport::Direct => PageBytes::Dma,
                PageTransport::Delta if vaddr & CARRIED != 0 => {
                    vaddr &= !CARRIED;
                    PageBytes::Carried
                }
                PageTransport::Delta => PageBytes::Dma,
            };
            let inside = vaddr % PAGE_LEN as u64 == 0 && uarea.memory.segment_at(vaddr).is_some();
            if !inside {
                return Err(ImageError::PageOutsideSegments(vaddr));
            }
            if !self.pages_seen.insert(vaddr) {
                return Err(ImageError::DuplicatePage(vaddr));
            }
            page(uarea, vaddr, data)?;
            self.partial.clear();
        }
        Ok(())
    }

    /// True once every announced byte arrived.
    pub fn is_complete(&self) -> bool {
        self.received == self.manifest.body_len()
    }

    /// Checks the length and the body's CRC (sent after the body, so the source computes it
    /// in the same pass that sends the pages) and hands over the UArea.
    pub fn finish(self, body_crc: u32) -> Result<UArea, ImageError> {
        if !self.is_complete() || self.pages_seen.len() != self.manifest.page_count as usize {
            return Err(ImageError::LengthMismatch);
        }
        if self.crc.finalize() != body_crc {
            return Err(ImageError::ChecksumMismatch);
        }
        self.uarea.ok_or(ImageError::Truncated)
    }
}

#[cfg(test)]
mod crc_tests {
    use super::ImageCrc;

    /// The plain byte-at-a-time CRC-32 (reflected polynomial `0xEDB88320`) that
    /// `docs/uarea.md` names, to check the fast one against.
    fn reference(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= byte as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn the_image_crc_is_zlibs_crc32_for_every_length_and_split() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        let data: alloc::vec::Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            for split in [0, 1, 3, 7, 8, 9, len / 2] {
                let split = split.min(len);
                let mut crc = ImageCrc::new();
                crc.update(&data[..split]);
                assert_eq!(crc.value(), reference(&data[..split]));
                crc.update(&data[split..len]);
                assert_eq!(crc.finish(), reference(&data[..len]), "len {len}");
            }
        }
    }
}
