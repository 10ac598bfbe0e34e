//! Loading static ELF64 executables, with every field checked before it is trusted.
//!
//! User programs are linked at fixed addresses (static, non-PIE), so loading is: validate the
//! header, then hand each `PT_LOAD` segment to the caller, which maps and fills it. A program
//! that would land outside the user half, overlap itself or read past its own file is refused
//! with a precise error; nothing is mapped before the whole file has been checked.

use alloc::vec::Vec;

/// Why an executable was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    TooShort,
    NotElf,
    Not64BitLittleEndian,
    NotExecutable,
    WrongMachine,
    BadProgramHeaders,
    SegmentOutOfFile,
    SegmentOutOfUserSpace,
    SegmentsOverlap,
    EntryOutsideText,
    NoLoadableSegment,
}

/// Segment permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFlags {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    /// Bytes in memory (≥ `file_size`; the rest is zero, i.e. bss).
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub flags: SegmentFlags,
}

/// A validated executable.
#[derive(Debug, Clone)]
pub struct Executable {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

const PT_LOAD: u32 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

fn u16_at(data: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        data.get(offset..offset + 2)?.try_into().ok()?,
    ))
}
fn u32_at(data: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(offset..offset + 4)?.try_into().ok()?,
    ))
}
fn u64_at(data: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

/// Parses and validates an executable; `user_range` is where its segments may lie.
pub fn parse(data: &[u8], user_range: core::ops::Range<u64>) -> Result<Executable, ElfError> {
    if data.len() < 64 {
        return Err(ElfError::TooShort);
    }
    if &data[0..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if data[4] != 2 || data[5] != 1 {
        return Err(ElfError::Not64BitLittleEndian);
    }
    let field = |v: Option<u64>| v.ok_or(ElfError::TooShort);
    if u16_at(data, 16) != Some(ET_EXEC) {
        return Err(ElfError::NotExecutable);
    }
    if u16_at(data, 18) != Some(EM_X86_64) {
        return Err(ElfError::WrongMachine);
    }
    let entry = field(u64_at(data, 24))?;
    let ph_offset = field(u64_at(data, 32))? as usize;
    let ph_size = field(u16_at(data, 54).map(u64::from))? as usize;
    let ph_count = field(u16_at(data, 56).map(u64::from))? as usize;
    if ph_size < 56 || ph_count > 64 {
        return Err(ElfError::BadProgramHeaders);
    }
    let table_end = ph_count
        .checked_mul(ph_size)
        .and_then(|n| n.checked_add(ph_offset));
    if table_end.is_none_or(|end| end > data.len()) {
        return Err(ElfError::BadProgramHeaders);
    }

    let mut segments: Vec<Segment> = Vec::new();
    for i in 0..ph_count {
        let header = &data[ph_offset + i * ph_size..][..ph_size];
        if u32_at(header, 0) != Some(PT_LOAD) {
            continue;
        }
        let flags = field(u32_at(header, 4).map(u64::from))? as u32;
        let segment = Segment {
            file_offset: field(u64_at(header, 8))?,
            vaddr: field(u64_at(header, 16))?,
            file_size: field(u64_at(header, 32))?,
            mem_size: field(u64_at(header, 40))?,
            flags: SegmentFlags {
                read: flags & PF_R != 0,
                write: flags & PF_W != 0,
                execute: flags & PF_X != 0,
            },
        };
        if segment.mem_size == 0 {
            continue;
        }
        let file_end = segment.file_offset.checked_add(segment.file_size);
        if segment.file_size > segment.mem_size
            || file_end.is_none_or(|end| end > data.len() as u64)
        {
            return Err(ElfError::SegmentOutOfFile);
        }
        let mem_end = segment.vaddr.checked_add(segment.mem_size);
        if segment.vaddr < user_range.start || mem_end.is_none_or(|end| end > user_range.end) {
            return Err(ElfError::SegmentOutOfUserSpace);
        }
        let page = |a: u64| a & !0xFFF;
        let pages = |s: &Segment| page(s.vaddr)..(s.vaddr + s.mem_size).next_multiple_of(4096);
        if segments.iter().any(|other| {
            let (a, b) = (pages(other), pages(&segment));
            a.start < b.end && b.start < a.end
        }) {
            return Err(ElfError::SegmentsOverlap);
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegment);
    }
    let in_text = segments
        .iter()
        .any(|s| s.flags.execute && (s.vaddr..s.vaddr + s.mem_size).contains(&entry));
    if !in_text {
        return Err(ElfError::EntryOutsideText);
    }
    Ok(Executable { entry, segments })
}
