//! What a destination holds of a process on its way in: pre-copy rounds (pages that came
//! while it still ran at the source), then its image.
//!
//! A round piece names up to 256 pages; each gets a frame (the one that already holds it, if
//! it came in an earlier round, or a fresh one) and the piece's frames are granted as one
//! transfer. The final piece announces the image; it is taken only once every round transfer
//! landed, so no grant of a round is open when the image maps those frames. The image
//! portal is allowed again only after a piece was handled: the source never runs ahead.

use abi::ClusterId;
use alloc::collections::VecDeque;
use kernel::noc::{portal, NocError};
use kernel::process::with_table;
use migration::precopy::PreCopied;
use migration::restore::Restorer;
use migration::MigrationError;
use multikernel_proto::message::Reason;
use uarea::image::Manifest;
use uarea::precopy::{self, Piece};

/// Frames kept free for the kernel while pages arrive.
const RESERVE_FRAMES: usize = 256;

/// Where an incoming process stands.
pub enum Stage {
    /// Pre-copy rounds.
    Rounds(Rounds),
    /// The image (after a pre-copy, the final one).
    Image(alloc::boxed::Box<Restorer>),
}

pub struct Rounds {
    /// The offer's manifest (what the final one must match).
    offer: Manifest,
    precopied: PreCopied,
    /// Round transfers granted and not yet landed.
    open: usize,
    /// The final piece, waiting for the open transfers.
    final_manifest: Option<Manifest>,
}

/// What handling a piece of the image portal did.
pub enum Handled {
    /// Ready for the next piece (the image portal must be allowed again).
    Next,
    /// Waiting for round transfers to land before the image starts.
    Held,
}

impl Stage {
    /// The stage an offer starts in: rounds for a live (delta) offer, else the image.
    pub fn admit(manifest: Manifest) -> Result<Stage, MigrationError> {
        use uarea::image::PageTransport;
        if !matches!(
            manifest.transport,
            PageTransport::Delta | PageTransport::Hybrid
        ) {
            return with_table(|table| Restorer::new(table, manifest))
                .map(|r| Stage::Image(alloc::boxed::Box::new(r)));
        }
        with_table(|table| {
            if table.processes.contains_key(&manifest.pid) || manifest.destination != table.cluster
            {
                return Err(MigrationError::Refused);
            }
            let free = hal::frames::free_count();
            if manifest.page_count as usize + RESERVE_FRAMES > free {
                return Err(MigrationError::OutOfMemory);
            }
            Ok(Stage::Rounds(Rounds {
                offer: manifest,
                precopied: PreCopied::new(),
                open: 0,
                final_manifest: None,
            }))
        })
    }

    /// The restorer, once the image is arriving.
    pub fn restorer(&mut self) -> Option<&mut Restorer> {
        match self {
            Stage::Image(restorer) => Some(&mut **restorer),
            Stage::Rounds(_) => None,
        }
    }

    /// The restorer, taken to finish the image.
    pub fn into_restorer(self) -> Option<Restorer> {
        match self {
            Stage::Image(restorer) => Some(*restorer),
            Stage::Rounds(_) => None,
        }
    }

    /// Handles one pre-copy piece from `from`, granting the frames of a round piece on
    /// `pages` (its transfer id joins `granted`, in order).
    pub fn on_piece(
        &mut self,
        from: ClusterId,
        data: &[u8],
        pages: &portal::Portal,
        granted: &mut VecDeque<u32>,
    ) -> Result<Handled, Reason> {
        let Stage::Rounds(rounds) = self else {
            return Err(Reason::BadImage);
        };
        match precopy::decode(data).map_err(|_| Reason::BadImage)? {
            Piece::Round { pages: named, .. } => {
                if named.len() + RESERVE_FRAMES > hal::frames::free_count() {
                    return Err(Reason::NoMemory);
                }
                let frames = rounds
                    .precopied
                    .frames_for(&named)
                    .map_err(|_| Reason::NoMemory)?;
                let id =
                    portal::allow_frames(pages, from, &frames).map_err(|_| Reason::NoMemory)?;
                granted.push_back(id);
                rounds.open += 1;
                Ok(Handled::Next)
            }
            Piece::Final { manifest, .. } => {
                let offer = rounds.offer;
                let matches = manifest.pid == offer.pid
                    && manifest.sequence == offer.sequence
                    && manifest.source == offer.source
                    && manifest.destination == offer.destination;
                if !matches || rounds.final_manifest.is_some() {
                    return Err(Reason::BadImage);
                }
                rounds.final_manifest = Some(manifest);
                self.start_image()
            }
        }
    }

    /// A round transfer landed. `Some(Next)` once the image may start.
    pub fn on_round_landed(&mut self) -> Result<Option<Handled>, Reason> {
        let Stage::Rounds(rounds) = self else {
            return Err(Reason::BadImage);
        };
        rounds.open = rounds.open.checked_sub(1).ok_or(Reason::BadImage)?;
        match rounds.final_manifest {
            Some(_) if rounds.open == 0 => self.start_image().map(Some),
            _ => Ok(None),
        }
    }

    /// True while pre-copy rounds arrive.
    pub fn in_rounds(&self) -> bool {
        matches!(self, Stage::Rounds(_))
    }

    fn start_image(&mut self) -> Result<Handled, Reason> {
        let Stage::Rounds(rounds) = self else {
            return Err(Reason::BadImage);
        };
        let Some(manifest) = rounds.final_manifest.filter(|_| rounds.open == 0) else {
            return Ok(Handled::Held);
        };
        let precopied = core::mem::take(&mut rounds.precopied);
        let restorer = with_table(|table| Restorer::after_precopy(table, manifest, precopied))
            .map_err(|_| Reason::Exists)?;
        *self = Stage::Image(alloc::boxed::Box::new(restorer));
        Ok(Handled::Next)
    }
}

/// Lets the source send its next piece or chunk.
pub fn allow_next(image: &portal::Portal, from: ClusterId) -> Result<(), NocError> {
    portal::allow(image, from)
}
