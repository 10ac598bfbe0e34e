//! CRC-32 (IEEE 802.3, reflected polynomial `0xEDB88320`).
//!
//! The same CRC as zlib, PNG and Ethernet, so any tool can check an image by
//! hand (`crc32(b"123456789") == 0xCBF43926`).

/// An incremental CRC-32 computation (backed by `crc32fast`: slicing-by-16 without `std`;
/// migration checksums every page it moves, so speed matters).
#[derive(Clone, Debug)]
pub struct Crc32(crc32fast::Hasher);

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A fresh computation.
    pub fn new() -> Self {
        Crc32(crc32fast::Hasher::new())
    }

    /// Feed `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The checksum of everything fed so far.
    pub fn finish(self) -> u32 {
        self.0.finalize()
    }
}

/// CRC-32 of `bytes` in one call.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// The plain byte-at-a-time definition, to check the sliced version against.
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
    fn matches_the_bitwise_definition_for_every_length_and_split() {
        let data: alloc::vec::Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(crc32(&data[..len]), reference(&data[..len]), "len {len}");
            for split in [0, 1, 3, 7, 8, 9, len / 2] {
                let split = split.min(len);
                let mut crc = Crc32::new();
                crc.update(&data[..split]);
                crc.update(&data[split..len]);
                assert_eq!(crc.finish(), reference(&data[..len]));
            }
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data = b"The UArea moves with the process.";
        let mut crc = Crc32::new();
        crc.update(&data[..7]);
        crc.update(&data[7..]);
        assert_eq!(crc.finish(), crc32(data));
    }
}
