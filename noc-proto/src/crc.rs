//! CRC-32 (IEEE 802.3, reflected polynomial `0xEDB88320`), table-driven.
//!
//! Every NoC message carries a CRC-32 over its header and payload so that a
//! receiver can reject anything the router (or a fault injector, or a buggy
//! peer) damaged. The table is built at compile time by a `const fn`, so the
//! crate needs no dependency and no runtime initialisation in the guest.

/// Running CRC-32 state: `Crc32::new().update(a).update(b).finish()` equals
/// `crc32(a ++ b)`. Backed by `crc32fast` (slicing-by-16 in `no_std`), the same CRC the
/// UArea and migration images use.
#[derive(Clone, Debug)]
pub struct Crc32(crc32fast::Hasher);

impl Crc32 {
    pub fn new() -> Self {
        Crc32(crc32fast::Hasher::new())
    }

    #[must_use]
    pub fn update(mut self, bytes: &[u8]) -> Self {
        self.0.update(bytes);
        self
    }

    pub fn finish(self) -> u32 {
        self.0.finalize()
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

/// CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    proptest! {
        #[test]
        fn incremental_equals_whole(a in proptest::collection::vec(any::<u8>(), 0..300),
                                    b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut whole = a.clone();
            whole.extend_from_slice(&b);
            prop_assert_eq!(Crc32::new().update(&a).update(&b).finish(), crc32(&whole));
        }
    }
}
