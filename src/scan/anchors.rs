//! Every position a chunk finder starts from, found in one pass over the chunk: the
//! magic numbers (BSON's `_id` key, MMAPv1's extent header, the namespace file's name,
//! FLV's header, WiredTiger's descriptor block, ext4's extent header, XFS's inode) and
//! the places an FLV tag could start (a fragment of a recording, see
//! [`fragments::could_start_tag`]).
//!
//! A search per pattern cost a pass over the chunk each. `aho-corasick`'s packed
//! (Teddy) searcher finds the magic numbers in one pass, but no multi-pattern
//! searcher expresses a tag start (a byte class with three zero bytes 8 bytes on),
//! which took a second pass. On CPUs with AVX-512 VBMI one loop finds them all, 64
//! positions at a time: two 128-entry table lookups classify each position's first
//! and second byte (which magic numbers they could begin, whether it is a tag's type
//! byte), one test finds the zero stream ids, and the few positions that pass are
//! checked in full. Other CPUs make the two passes.

use aho_corasick::Span;
use aho_corasick::packed::{Config, Searcher};
use std::sync::LazyLock;

use crate::carve::{bson, ext4, flv, fragments, mmapv1, nsfile, wiredtiger, xfs};

/// A magic number the scan looks for, in [`NEEDLES`] order.
#[derive(Clone, Copy)]
pub enum Magic {
    /// BSON's `_id` key ([`bson::ID_KEY`]).
    BsonId,
    /// An MMAPv1 extent header ([`mmapv1::EXTENT_MAGIC`]).
    Extent,
    /// A namespace file's own name ([`nsfile::ANCHOR`]).
    Namespaces,
    /// An FLV header ([`flv::MAGIC`]).
    Flv,
    /// A WiredTiger file's descriptor block ([`wiredtiger::FILE_MAGIC`]).
    WiredTiger,
    /// An ext4 extent header ([`ext4::HEADER_MAGIC`]).
    Ext4Extents,
    /// An XFS inode ([`xfs::INODE_MAGIC`]).
    XfsInode,
}

/// The magic numbers, by [`Magic`]. They start with seven different bytes, so no two
/// can start at one offset, and searching on from each hit's next byte finds every
/// occurrence of each.
const NEEDLES: [&[u8]; 7] = [
    bson::ID_KEY,
    mmapv1::EXTENT_MAGIC,
    nsfile::ANCHOR,
    flv::MAGIC,
    &wiredtiger::FILE_MAGIC,
    ext4::HEADER_MAGIC,
    xfs::INODE_MAGIC,
];

/// The packed searcher for the magic numbers, on CPUs without the one-pass search;
/// `None` where it has no packed searcher either (each is then searched for alone).
static SEARCHER: LazyLock<Option<Searcher>> =
    LazyLock::new(|| Config::new().builder().extend(NEEDLES).build());

/// Where each magic number occurs in one buffer, and where a tag could start,
/// ascending.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Anchors {
    at: [Vec<usize>; NEEDLES.len()],
    tag_starts: Vec<usize>,
}

impl Anchors {
    /// Every occurrence of every magic number in `buf`, and every tag start.
    pub fn find(buf: &[u8]) -> Anchors {
        #[cfg(target_arch = "x86_64")]
        if one_pass::supported() {
            // SAFETY: the CPU has the features `one_pass::find` is built for.
            return unsafe { one_pass::find(buf) };
        }
        Anchors::two_passes(buf)
    }

    /// The same in two passes: the magic numbers with the packed searcher, then the
    /// tag starts.
    fn two_passes(buf: &[u8]) -> Anchors {
        let mut at: [Vec<usize>; NEEDLES.len()] = Default::default();
        if let Some(searcher) = SEARCHER.as_ref() {
            let mut from = 0;
            while let Some(m) = searcher.find_in(buf, Span::from(from..buf.len())) {
                at[m.pattern().as_usize()].push(m.start());
                from = m.start() + 1;
            }
        } else {
            for (found, needle) in at.iter_mut().zip(NEEDLES) {
                *found = memchr::memmem::find_iter(buf, needle).collect();
            }
        }
        Anchors {
            at,
            tag_starts: fragments::tag_starts(buf),
        }
    }

    /// Where `magic` occurs, ascending.
    pub fn of(&self, magic: Magic) -> &[usize] {
        &self.at[magic as usize]
    }

    /// Where a tag could start, ascending.
    pub fn tag_starts(&self) -> &[usize] {
        &self.tag_starts
    }

    /// Records what starts at `k` in `buf`, checked in full.
    #[cfg(target_arch = "x86_64")]
    fn check(&mut self, buf: &[u8], k: usize) {
        if fragments::could_start_tag(buf, k) {
            self.tag_starts.push(k);
        }
        for (found, needle) in self.at.iter_mut().zip(NEEDLES) {
            if buf[k..].starts_with(needle) {
                found.push(k);
            }
        }
    }
}

/// The one-pass search, for CPUs with AVX-512 VBMI.
#[cfg(target_arch = "x86_64")]
mod one_pass {
    use super::{Anchors, NEEDLES};
    use std::arch::x86_64::*;

    /// Bytes a step reads past its 64 positions (a tag's stream id ends 10 on).
    const AHEAD: usize = 10;
    /// In the first byte's class: it is a tag's type byte (8, audio; 9, video).
    const TAG_TYPE: u8 = 1 << 7;

    /// Whether this CPU can run [`find`] (the answer is cached by `std`).
    pub fn supported() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
    }

    /// The classes of bytes at one position of a pattern: bit `i` if the byte (its
    /// low seven bits: the lookup ignores the eighth) can be byte `nth` of magic
    /// number `i`, [`TAG_TYPE`] if `tag_types` and it can be a tag's type byte.
    /// Bytes that differ only in the eighth bit pass as well and are checked in full.
    fn classes(nth: usize, tag_types: bool) -> [u8; 128] {
        let mut table = [0u8; 128];
        for (i, needle) in NEEDLES.iter().enumerate() {
            table[(needle[nth] & 0x7F) as usize] |= 1 << i;
        }
        if tag_types {
            table[8] |= TAG_TYPE;
            table[9] |= TAG_TYPE;
        }
        table
    }

    /// [`Anchors::find`] in one pass, 64 positions at a time: a position passes if its
    /// first and second byte can begin the same magic number, or if its first byte
    /// can be a tag's type byte and its stream id is zero. Positions too close to the
    /// end for a whole step are checked one by one.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub fn find(buf: &[u8]) -> Anchors {
        let mut out = Anchors::default();
        let load = |bytes: &[u8]| {
            assert!(bytes.len() >= 64);
            // SAFETY: the 64 bytes read lie inside `bytes`; no alignment is needed.
            unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
        };
        let halves = |t: [u8; 128]| (load(&t[..64]), load(&t[64..]));
        let (first_lo, first_hi) = halves(classes(0, true));
        let (second_lo, second_hi) = halves(classes(1, false));
        let tag_type = _mm512_set1_epi8(TAG_TYPE as i8);
        let mut k = 0;
        while k + 64 + AHEAD <= buf.len() {
            let at = |skip: usize| load(&buf[k + skip..k + skip + 64]);
            let first = _mm512_permutex2var_epi8(first_lo, at(0), first_hi);
            let second = _mm512_permutex2var_epi8(second_lo, at(1), second_hi);
            // OR of the three stream id bytes (truth table 0xFE: any bit set).
            let stream_id = _mm512_ternarylogic_epi32::<0xFE>(at(8), at(9), at(10));
            let zero_id = _mm512_testn_epi8_mask(stream_id, stream_id);
            let mut hits = _mm512_test_epi8_mask(first, second)
                | _mm512_mask_test_epi8_mask(zero_id, first, tag_type);
            while hits != 0 {
                out.check(buf, k + hits.trailing_zeros() as usize);
                hits &= hits - 1;
            }
            k += 64;
        }
        for k in k..buf.len() {
            out.check(buf, k);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One pass finds what five memmem passes find, overlapping repeats included.
    #[test]
    fn one_pass_finds_what_each_search_finds() {
        let mut buf: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for (k, needle) in NEEDLES.iter().enumerate() {
            for at in [k * 1000 + 7, 50_000 + k * 113, 199_000 - k * 100] {
                buf[at..at + needle.len()].copy_from_slice(needle);
            }
        }
        buf[120_000..120_012].copy_from_slice(b"_id\0_id\0_id\0");
        let anchors = Anchors::find(&buf);
        let magics = [
            Magic::BsonId,
            Magic::Extent,
            Magic::Namespaces,
            Magic::Flv,
            Magic::WiredTiger,
            Magic::Ext4Extents,
            Magic::XfsInode,
        ];
        for (magic, needle) in magics.into_iter().zip(NEEDLES) {
            let each: Vec<usize> = memchr::memmem::find_iter(&buf, needle).collect();
            assert!(each.len() >= 3, "{needle:?}");
            assert_eq!(anchors.of(magic), each, "{needle:?}");
        }
    }

    /// Bytes made of pieces of every pattern (whole, cut short, next to each other)
    /// and of the bytes they are made of, so that near misses are common.
    fn pieces() -> impl Strategy<Value = Vec<u8>> {
        let tag: &[u8] = &[9, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0x17];
        let mut words: Vec<Vec<u8>> = NEEDLES.iter().map(|n| n.to_vec()).collect();
        words.extend(NEEDLES.iter().map(|n| n[..2].to_vec()));
        words.extend([tag.to_vec(), tag[..10].to_vec(), vec![8], vec![0; 3]]);
        words.extend([
            b"x".to_vec(),
            vec![0xFE],
            vec![0x09, 1],
            vec![0x88, 0xDF, 0xE9],
        ]);
        prop::collection::vec(prop::sample::select(words), 0..240).prop_map(|w| w.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The one pass (on a CPU that has it) and the two passes find exactly what
        /// a search per pattern finds, at every length and alignment.
        #[test]
        fn one_pass_is_each_search(bytes in pieces(), skip in 0usize..64) {
            let buf = &bytes[skip.min(bytes.len())..];
            let mut each = Anchors {
                tag_starts: (0..buf.len())
                    .filter(|&k| fragments::could_start_tag(buf, k))
                    .collect(),
                ..Anchors::default()
            };
            for (found, needle) in each.at.iter_mut().zip(NEEDLES) {
                *found = memchr::memmem::find_iter(buf, needle).collect();
            }
            prop_assert_eq!(&Anchors::find(buf), &each);
            prop_assert_eq!(&Anchors::two_passes(buf), &each);
        }
    }
}
