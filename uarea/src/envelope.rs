//! The fixed envelope around the postcard payload.
//!
//! All integers little-endian:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0      | 8    | magic `b"UAREA\0\0\0"` |
//! | 8      | 2    | format version ([`FORMAT_VERSION`]) |
//! | 10     | 2    | reserved, 0 |
//! | 12     | 4    | payload length in bytes |
//! | 16     | 4    | CRC-32 of bytes `0..16` followed by the payload |
//! | 20     | n    | payload: postcard encoding of [`crate::UArea`] |
//!
//! Bytes after the payload (padding up to the block size) must be zero.
//! postcard is not self-describing, so *any* change to the `UArea` types
//! bumps [`FORMAT_VERSION`]; see `docs/uarea.md`.

use alloc::vec;
use alloc::vec::Vec;

use postcard::ser_flavors::Size;

use crate::error::{Invariant, UAreaError};
use crate::thread::{BlockReason, ThreadState};
use crate::UArea;

/// First eight bytes of every image.
pub const MAGIC: [u8; 8] = *b"UAREA\0\0\0";
/// The version this build writes. 3 added `BlockReason::PortalDma` and
/// `BlockReason::Migrating` at the end of the enum (2 added the exit record's children and
/// `BlockReason::RemotePage`).
pub const FORMAT_VERSION: u16 = 3;
/// The oldest version this build reads. Version 2 is version 3 without the two new block
/// reasons, so the same types decode it; a version-2 image that names one is rejected.
pub const OLDEST_SUPPORTED_VERSION: u16 = 2;
/// Envelope header size.
pub const HEADER_LEN: usize = 20;
/// Largest payload accepted (checked before decoding anything).
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;
/// Allocation unit of a UArea block: images are padded to a multiple of it.
pub const UAREA_BLOCK_SIZE: usize = 4096;

const CRC_OFFSET: usize = 16;

fn le_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..CRC_OFFSET]);
    crc.update(payload);
    crc.finalize()
}

impl UArea {
    /// True if a thread is in a state format 2 cannot express.
    fn uses_format_3(&self) -> bool {
        self.threads.iter().any(|t| {
            matches!(
                t.state,
                ThreadState::Blocked(BlockReason::PortalDma { .. } | BlockReason::Migrating { .. })
            )
        })
    }

    fn payload_len(&self) -> usize {
        // Measuring cannot fail: the Size flavor never runs out of space and
        // every UArea field is serializable.
        postcard::serialize_with_flavor::<Self, Size, usize>(self, Size::default()).unwrap_or(0)
    }

    /// Bytes of the encoded image (envelope + payload).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Bytes of the page-aligned block holding the image
    /// (`encoded_len` rounded up to [`UAREA_BLOCK_SIZE`]).
    pub fn block_len(&self) -> usize {
        self.encoded_len().div_ceil(UAREA_BLOCK_SIZE) * UAREA_BLOCK_SIZE
    }

    /// Encode into a new vector of exactly [`UArea::encoded_len`] bytes.
    ///
    /// Encoding does not validate (so tests can build invalid images); the
    /// kernel calls [`UArea::validate`] first if in doubt, and
    /// [`UArea::decode`] always validates.
    pub fn encode(&self) -> Vec<u8> {
        let mut image = vec![0; self.encoded_len()];
        // Cannot fail: the buffer has exactly the measured length.
        let written = self.encode_into(&mut image).unwrap_or(0);
        debug_assert_eq!(written, image.len());
        image
    }

    /// Encode into a zero-padded, page-aligned block of [`UArea::block_len`] bytes.
    pub fn encode_block(&self) -> Vec<u8> {
        let mut block = vec![0; self.block_len()];
        let written = self.encode_into(&mut block).unwrap_or(0);
        debug_assert_eq!(written, self.encoded_len());
        block
    }

    /// Encode into `buf` without allocating; returns the image length.
    /// The rest of `buf` is zeroed, so the whole buffer decodes.
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize, UAreaError> {
        let payload_len = self.payload_len();
        let needed = HEADER_LEN + payload_len;
        if buf.len() < needed {
            return Err(UAreaError::BufferTooSmall {
                needed,
                got: buf.len(),
            });
        }
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(UAreaError::LengthMismatch {
                declared: payload_len,
                actual: MAX_PAYLOAD_LEN,
            });
        }
        let (header, rest) = buf.split_at_mut(HEADER_LEN);
        let written = postcard::to_slice(self, &mut rest[..payload_len])
            .map_err(UAreaError::Encode)?
            .len();
        debug_assert_eq!(written, payload_len);
        rest[payload_len..].fill(0);

        header[0..8].copy_from_slice(&MAGIC);
        header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[10..12].copy_from_slice(&0u16.to_le_bytes());
        header[12..16].copy_from_slice(&(payload_len as u32).to_le_bytes());
        let crc = checksum(header, &rest[..payload_len]);
        header[CRC_OFFSET..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        Ok(needed)
    }

    /// Decode and validate an image (or a zero-padded block holding one).
    ///
    /// Checks, in order: header length, magic, version, reserved field,
    /// payload length, zero padding, checksum, postcard decoding (which must
    /// use every payload byte), then [`UArea::validate`].
    pub fn decode(bytes: &[u8]) -> Result<UArea, UAreaError> {
        if bytes.len() < HEADER_LEN {
            // A short prefix of a foreign image is still foreign.
            let seen = bytes.len().min(MAGIC.len());
            if bytes[..seen] != MAGIC[..seen] {
                let mut found = [0u8; 8];
                found[..seen].copy_from_slice(&bytes[..seen]);
                return Err(UAreaError::BadMagic { found });
            }
            return Err(UAreaError::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            });
        }
        let (header, rest) = bytes.split_at(HEADER_LEN);
        if header[0..8] != MAGIC {
            let mut found = [0u8; 8];
            found.copy_from_slice(&header[0..8]);
            return Err(UAreaError::BadMagic { found });
        }
        let version = le_u16(header, 8);
        if !(OLDEST_SUPPORTED_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(UAreaError::UnsupportedVersion {
                found: version,
                oldest: OLDEST_SUPPORTED_VERSION,
                newest: FORMAT_VERSION,
            });
        }
        let reserved = le_u16(header, 10);
        if reserved != 0 {
            return Err(UAreaError::ReservedNonZero { value: reserved });
        }
        let declared = le_u32(header, 12) as usize;
        if declared > MAX_PAYLOAD_LEN {
            return Err(UAreaError::LengthMismatch {
                declared,
                actual: rest.len(),
            });
        }
        if rest.len() < declared {
            return Err(UAreaError::Truncated {
                needed: HEADER_LEN + declared,
                got: bytes.len(),
            });
        }
        let (payload, padding) = rest.split_at(declared);
        if padding.iter().any(|&b| b != 0) {
            return Err(UAreaError::LengthMismatch {
                declared,
                actual: rest.len(),
            });
        }
        let stored = le_u32(header, CRC_OFFSET);
        let computed = checksum(header, payload);
        if stored != computed {
            return Err(UAreaError::ChecksumMismatch { stored, computed });
        }
        let (uarea, unused) =
            postcard::take_from_bytes::<UArea>(payload).map_err(UAreaError::Decode)?;
        if !unused.is_empty() {
            return Err(UAreaError::LengthMismatch {
                declared,
                actual: declared - unused.len(),
            });
        }
        if version < 3 && uarea.uses_format_3() {
            return Err(UAreaError::Invalid(Invariant::NewerThanItsVersion {
                version,
            }));
        }
        uarea.validate()?;
        Ok(uarea)
    }
}
