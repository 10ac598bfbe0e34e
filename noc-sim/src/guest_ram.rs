//! Each cluster's RAM, seen by the router: the file QEMU backs the guest's memory with
//! (`-object memory-backend-file,…,mem-path=FILE,share=on`), mapped shared here, so file
//! offset = guest-physical address (true below 4 GiB, i.e. for RAM up to 2 GiB on q35).
//!
//! All access goes through [`GuestRam::read`], [`GuestRam::write`] and [`copy`], which take
//! guest-physical ranges and check them against the mapping's size — a guest names addresses,
//! never pointers, so nothing it sends can make the router touch memory outside its RAM.

use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::shm::Mapping;

/// One cluster's RAM, mapped shared.
pub struct GuestRam {
    map: Mapping,
}

impl GuestRam {
    /// Maps the whole of `path` (the QEMU memory-backend file), read-write, shared.
    pub fn open(path: &Path) -> Result<GuestRam> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("open guest RAM {}", path.display()))?;
        let size = file.metadata()?.len() as usize;
        if size == 0 {
            bail!("guest RAM {} is empty", path.display());
        }
        let fd: OwnedFd = file.into();
        let map = Mapping::map(&fd, size).with_context(|| format!("map {}", path.display()))?;
        Ok(GuestRam { map })
    }

    /// Bytes of RAM (the file size).
    pub fn size(&self) -> u64 {
        self.map.len() as u64
    }

    fn checked(&self, addr: u64, len: usize) -> Option<usize> {
        let end = addr.checked_add(len as u64)?;
        (end <= self.size()).then_some(addr as usize)
    }

    /// Copies `out.len()` bytes from guest-physical `addr`; `None` if outside RAM.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Option<()> {
        let at = self.checked(addr, out.len())?;
        // SAFETY: at..at+len lies inside the mapping (checked); the guest may change the
        // bytes concurrently, which a byte copy tolerates (we validate the copy, not RAM).
        unsafe { std::ptr::copy(self.map.as_ptr().add(at), out.as_mut_ptr(), out.len()) };
        Some(())
    }

    /// Copies `data` to guest-physical `addr`; `None` if outside RAM.
    pub fn write(&self, addr: u64, data: &[u8]) -> Option<()> {
        let at = self.checked(addr, data.len())?;
        // SAFETY: inside the mapping (checked); `data` is host memory, never this mapping.
        unsafe { std::ptr::copy(data.as_ptr(), self.map.as_ptr().add(at), data.len()) };
        Some(())
    }

    /// CRC-32 of `len` bytes at `addr`; `None` if outside RAM.
    pub fn crc(
        &self,
        addr: u64,
        len: u64,
        mut crc: crc32fast::Hasher,
    ) -> Option<crc32fast::Hasher> {
        let at = self.checked(addr, usize::try_from(len).ok()?)?;
        // SAFETY: inside the mapping (checked); read-only view for the duration of the call.
        let bytes = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at), len as usize) };
        crc.update(bytes);
        Some(crc)
    }

    /// Flips one bit at `addr` (fault injection); `None` if outside RAM.
    pub fn flip_bit(&self, addr: u64) -> Option<()> {
        let at = self.checked(addr, 1)?;
        // SAFETY: one byte inside the mapping (checked).
        unsafe { *self.map.as_ptr().add(at) ^= 0x01 };
        Some(())
    }
}

/// Copies `len` bytes from `from` at `src` to `to` at `dst` (the same RAM if a cluster sends to
/// itself; overlapping ranges are handled as `memmove`). `None` if either is outside its RAM.
pub fn copy(from: &GuestRam, src: u64, to: &GuestRam, dst: u64, len: u64) -> Option<()> {
    let len = usize::try_from(len).ok()?;
    let s = from.checked(src, len)?;
    let d = to.checked(dst, len)?;
    // SAFETY: both ranges lie inside their mappings (checked); `ptr::copy` allows overlap.
    unsafe { std::ptr::copy(from.map.as_ptr().add(s), to.map.as_ptr().add(d), len) };
    Some(())
}
