//! The pre-copy stream: what crosses the image portal while a process still runs, before its
//! final image.
//!
//! Pre-copy sends the pages while the process runs and sends again what it dirtied, round
//! after round; only the last, small, set goes while it is frozen. The pages themselves go
//! frame to frame by DMA as in a direct image, so the stream carries only which pages a
//! transfer holds: one *piece* per portal write, each answered by one grant of frames.
//!
//! ```text
//!  piece header (16 bytes): magic "TPCR" | kind u16 | 0 u16 | round u32 | count u32
//!  kind 1, round piece: `count` (≤ MAX_PIECE_PAGES) user page addresses, u64 LE
//!  kind 2, final piece: count = 0, then the final image's manifest (delta transport);
//!          the image body follows as ordinary image chunks (`crate::image`)
//! ```
//!
//! A receiver checks each address (page-aligned, in the user half, not twice in a piece)
//! before it allocates a frame for it; the final image then says which of those pages the
//! process still has ([`crate::image::CARRIED`]) and the rest are dropped.

use alloc::vec::Vec;

use crate::image::{ImageError, Manifest, PageTransport, MANIFEST_LEN};

/// Piece magic.
pub const PIECE_MAGIC: [u8; 4] = *b"TPCR";
/// Bytes of a piece header.
pub const PIECE_HEADER_LEN: usize = 16;
/// Most pages one round piece names (one DMA transfer of 1 MiB).
pub const MAX_PIECE_PAGES: usize = 256;
/// First address above the user half: no page of a process lies there.
const USER_END: u64 = 0x0000_8000_0000_0000;
const PAGE: u64 = 4096;

const ROUND: u16 = 1;
const FINAL: u16 = 2;

/// One decoded piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Pages of a pre-copy round, in the order of the grant.
    Round {
        /// The round, counted from 1.
        round: u32,
        /// User addresses of the pages.
        pages: Vec<u64>,
    },
    /// The process is frozen; its final image (delta transport) follows.
    Final {
        /// Rounds that were sent.
        rounds: u32,
        /// The final image's manifest.
        manifest: Manifest,
    },
}

fn header(kind: u16, round: u32, count: u32) -> [u8; PIECE_HEADER_LEN] {
    let mut out = [0u8; PIECE_HEADER_LEN];
    out[0..4].copy_from_slice(&PIECE_MAGIC);
    out[4..6].copy_from_slice(&kind.to_le_bytes());
    out[8..12].copy_from_slice(&round.to_le_bytes());
    out[12..16].copy_from_slice(&count.to_le_bytes());
    out
}

/// The bytes of a round piece naming `pages` (at most [`MAX_PIECE_PAGES`]).
pub fn encode_round(round: u32, pages: &[u64]) -> Vec<u8> {
    debug_assert!(pages.len() <= MAX_PIECE_PAGES);
    let mut out = Vec::with_capacity(PIECE_HEADER_LEN + 8 * pages.len());
    out.extend_from_slice(&header(ROUND, round, pages.len() as u32));
    for page in pages {
        out.extend_from_slice(&page.to_le_bytes());
    }
    out
}

/// The bytes of the final piece: `rounds` rounds were sent; `manifest` announces the image.
pub fn encode_final(rounds: u32, manifest: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(PIECE_HEADER_LEN + MANIFEST_LEN);
    out.extend_from_slice(&header(FINAL, rounds, 0));
    out.extend_from_slice(&manifest.encode());
    out
}

/// Reads and checks one piece (a whole portal write).
pub fn decode(bytes: &[u8]) -> Result<Piece, ImageError> {
    let head = bytes.get(..PIECE_HEADER_LEN).ok_or(ImageError::Truncated)?;
    if head[0..4] != PIECE_MAGIC {
        return Err(ImageError::BadMagic);
    }
    let u32_at = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
    let kind = u16::from_le_bytes([head[4], head[5]]);
    if head[6..8] != [0, 0] {
        return Err(ImageError::LengthMismatch);
    }
    let (round, count) = (u32_at(8), u32_at(12) as usize);
    let body = &bytes[PIECE_HEADER_LEN..];
    match kind {
        ROUND => {
            if count == 0 || count > MAX_PIECE_PAGES || body.len() != 8 * count || round == 0 {
                return Err(ImageError::LengthMismatch);
            }
            let mut pages = Vec::new();
            pages
                .try_reserve_exact(count)
                .map_err(|_| ImageError::NoMemory)?;
            for record in body.as_chunks::<8>().0 {
                let page = u64::from_le_bytes(*record);
                if page % PAGE != 0 || page >= USER_END {
                    return Err(ImageError::PageOutsideSegments(page));
                }
                pages.push(page);
            }
            let mut sorted = pages.clone();
            sorted.sort_unstable();
            if let Some(twice) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(ImageError::DuplicatePage(twice[0]));
            }
            Ok(Piece::Round { round, pages })
        }
        FINAL => {
            if count != 0 || body.len() != MANIFEST_LEN {
                return Err(ImageError::LengthMismatch);
            }
            let manifest = Manifest::decode(body)?;
            if manifest.transport != PageTransport::Delta {
                return Err(ImageError::UnknownTransport(manifest.transport as u16));
            }
            Ok(Piece::Final {
                rounds: round,
                manifest,
            })
        }
        other => Err(ImageError::UnknownTransport(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::{ClusterId, Pid};
    use proptest::prelude::{any, prop_assert_eq, proptest};

    fn manifest() -> Manifest {
        Manifest {
            pid: Pid::new(ClusterId(0), 3).unwrap(),
            source: ClusterId(0),
            destination: ClusterId(1),
            uarea_len: 100,
            page_count: 5,
            sequence: 9,
            transport: PageTransport::Delta,
        }
    }

    #[test]
    fn pieces_round_trip() {
        let pages = [0x40_0000, 0x40_1000, 0x7FFF_FFFF_F000];
        assert_eq!(
            decode(&encode_round(2, &pages)),
            Ok(Piece::Round {
                round: 2,
                pages: pages.to_vec()
            })
        );
        assert_eq!(
            decode(&encode_final(3, &manifest())),
            Ok(Piece::Final {
                rounds: 3,
                manifest: manifest()
            })
        );
    }

    #[test]
    fn bad_pieces_are_rejected() {
        let good = encode_round(1, &[0x40_0000, 0x40_1000]);
        assert_eq!(decode(&good[..20]), Err(ImageError::LengthMismatch));
        assert_eq!(decode(&good[..10]), Err(ImageError::Truncated));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert_eq!(decode(&magic), Err(ImageError::BadMagic));
        assert_eq!(
            decode(&encode_round(1, &[0x40_0008])),
            Err(ImageError::PageOutsideSegments(0x40_0008))
        );
        assert_eq!(
            decode(&encode_round(1, &[USER_END])),
            Err(ImageError::PageOutsideSegments(USER_END))
        );
        assert_eq!(
            decode(&encode_round(1, &[0x40_0000, 0x40_0000])),
            Err(ImageError::DuplicatePage(0x40_0000))
        );
        assert_eq!(
            decode(&encode_round(0, &[0x40_0000])),
            Err(ImageError::LengthMismatch)
        );
        assert_eq!(
            decode(&encode_round(1, &[])),
            Err(ImageError::LengthMismatch)
        );
        let too_many: Vec<u64> = (0..=MAX_PIECE_PAGES as u64).map(|i| i * PAGE).collect();
        let mut big = header(ROUND, 1, too_many.len() as u32).to_vec();
        for p in &too_many {
            big.extend_from_slice(&p.to_le_bytes());
        }
        assert_eq!(decode(&big), Err(ImageError::LengthMismatch));
        let mut direct = manifest();
        direct.transport = PageTransport::Direct;
        assert_eq!(
            decode(&encode_final(1, &direct)),
            Err(ImageError::UnknownTransport(1))
        );
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn any_valid_round_round_trips(round in 1u32.., pages in proptest::collection::btree_set(0u64..(USER_END / PAGE), 1..=MAX_PIECE_PAGES)) {
            let pages: Vec<u64> = pages.into_iter().map(|p| p * PAGE).collect();
            prop_assert_eq!(decode(&encode_round(round, &pages)), Ok(Piece::Round { round, pages }));
        }
    }
}
