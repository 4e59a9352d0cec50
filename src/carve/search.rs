//! Substring search tuned for what disks hold.
//!
//! `memchr`'s searcher checks two "rare" bytes of the needle with SIMD first, and
//! ranks bytes by their frequency in text and code, where a zero byte is rare. On a
//! disk, zeros are the most common byte of all (unwritten space, padding, binaries,
//! every BSON document and FLV tag header), so a needle such as `_id\0` was searched
//! by its zero byte and stopped every few bytes of a binary. Here the ranking is a
//! disk's: zero and `FF` most common, then text, then control bytes, and bytes above
//! `7F` rarest (outside text they are as common as any, and text holds few).

use std::sync::LazyLock;

use memchr::arch::all::packedpair::HeuristicFrequencyRank;
use memchr::memmem::{Finder, FinderBuilder};

/// Byte frequencies as a disk has them (see the module documentation).
struct DiskRank;

impl HeuristicFrequencyRank for DiskRank {
    fn rank(&self, byte: u8) -> u8 {
        match byte {
            0x00 => 255,
            0xFF => 250,
            b' ' | b'a'..=b'z' => 200,
            b'A'..=b'Z' | b'0'..=b'9' | b'\n' => 180,
            0x21..=0x7E => 160,
            0x01..=0x1F | 0x7F => 140,
            0x80..=0xFE => 100,
        }
    }
}

/// A searcher for `needle` that picks the bytes to check first by how common each byte
/// is on disks (zero bytes common, unlike in text): build it once (a `static
/// LazyLock`), search with it everywhere.
pub fn finder(needle: &'static [u8]) -> Finder<'static> {
    FinderBuilder::new().build_forward_with_ranker(DiskRank, needle)
}

/// A lazily built [`finder`], for a `static`.
pub type Lazy = LazyLock<Finder<'static>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_memmem_finds() {
        let mut hay = vec![0u8; 4096];
        hay.extend_from_slice(b"xx_id\0yy");
        hay.extend(std::iter::repeat_n(0xFF, 100));
        hay.extend_from_slice(b"_id\0");
        let ours: Vec<usize> = finder(b"_id\0").find_iter(&hay).collect();
        let theirs: Vec<usize> = memchr::memmem::find_iter(&hay, b"_id\0").collect();
        assert_eq!(ours, theirs);
        assert_eq!(ours.len(), 2);
    }
}
