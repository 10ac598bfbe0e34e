//! The process's memory map, by user virtual address.
//!
//! User programs are linked at fixed addresses, so a restored process gets
//! the same virtual layout on any cluster; only the physical frames change,
//! and those never appear here.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// Segment permissions (a small bitset; unknown bits are rejected by
/// [`crate::UArea::validate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Perms(u8);

impl Perms {
    /// No access.
    pub const NONE: Perms = Perms(0);
    /// Readable.
    pub const R: Perms = Perms(1 << 0);
    /// Writable.
    pub const W: Perms = Perms(1 << 1);
    /// Executable.
    pub const X: Perms = Perms(1 << 2);
    /// Read + write.
    pub const RW: Perms = Perms(Self::R.0 | Self::W.0);
    /// Read + execute.
    pub const RX: Perms = Perms(Self::R.0 | Self::X.0);
    /// Every defined bit.
    pub const ALL: Perms = Perms(Self::R.0 | Self::W.0 | Self::X.0);

    /// Permissions from raw bits, `None` if an unknown bit is set.
    pub const fn from_bits(bits: u8) -> Option<Perms> {
        if bits & !Self::ALL.0 != 0 {
            None
        } else {
            Some(Perms(bits))
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every permission of `other` is granted.
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union.
    pub const fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    /// Whether only defined bits are set.
    pub const fn is_known(self) -> bool {
        self.0 & !Self::ALL.0 == 0
    }
}

impl From<abi::Prot> for Perms {
    fn from(prot: abi::Prot) -> Perms {
        let mut perms = Perms::NONE;
        if prot.contains(abi::Prot::READ) {
            perms = perms.union(Perms::R);
        }
        if prot.contains(abi::Prot::WRITE) {
            perms = perms.union(Perms::W);
        }
        if prot.contains(abi::Prot::EXEC) {
            perms = perms.union(Perms::X);
        }
        perms
    }
}

/// What a segment is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SegmentKind {
    /// Program code.
    Text,
    /// Initialised data.
    Data,
    /// Zero-initialised data.
    Bss,
    /// `brk` heap (at most one).
    Heap,
    /// A thread stack.
    Stack,
    /// An anonymous `mmap` region.
    Mmap,
}

/// Where a segment's initial contents come from. Migration moves the
/// *current* contents of every page; this says what a page that was never
/// touched holds, so untouched pages need not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Backing {
    /// Zero-filled.
    Anonymous,
    /// The first `len` bytes come from the program image (named by
    /// [`crate::Header::name`]) at file offset `offset`; the rest is zero.
    Image {
        /// Offset in the program image.
        offset: u64,
        /// Bytes taken from the image (at most the segment length).
        len: u64,
    },
}

/// One contiguous mapping `[start, start + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    /// First address (page-aligned, user half, not the null page).
    pub start: u64,
    /// Length in bytes (page multiple, non-zero).
    pub len: u64,
    /// Access rights (never W and X together).
    pub perms: Perms,
    /// Purpose.
    pub kind: SegmentKind,
    /// Initial contents.
    pub backing: Backing,
}

impl Segment {
    /// One past the last address (saturating: validation rejects overflow).
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    /// Whether `addr` lies inside.
    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end()
    }

    /// Whether `[start, start + len)` lies inside (an empty range at
    /// `start` counts if `start` is inside).
    pub const fn covers(&self, start: u64, len: u64) -> bool {
        match start.checked_add(len) {
            Some(end) => start >= self.start && end <= self.end(),
            None => false,
        }
    }
}

/// Every user mapping of the process.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryMap {
    /// Segments sorted by `start`, non-overlapping.
    pub segments: Vec<Segment>,
    /// Current program break: inside `[heap.start, heap.end]`, or 0 without heap.
    pub heap_break: u64,
    /// Next address `mmap` tries without a hint (page-aligned, user half).
    pub mmap_cursor: u64,
}

impl MemoryMap {
    /// The segment holding `addr`.
    pub fn segment_at(&self, addr: u64) -> Option<&Segment> {
        self.segments.iter().find(|s| s.contains(addr))
    }

    /// The heap segment, if any.
    pub fn heap(&self) -> Option<&Segment> {
        self.segments.iter().find(|s| s.kind == SegmentKind::Heap)
    }

    /// Total mapped bytes.
    pub fn mapped_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Insert `segment` keeping the list sorted (overlap is left to
    /// [`crate::UArea::validate`]).
    pub fn insert(&mut self, segment: Segment) {
        let at = self.segments.partition_point(|s| s.start < segment.start);
        self.segments.insert(at, segment);
    }
}
