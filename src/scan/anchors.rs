//! Every magic number a chunk finder starts from, found in one pass over the chunk.
//!
//! Five finders each searched the whole chunk for their own magic number (BSON's `_id`
//! key, MMAPv1's extent header, the namespace file's name, FLV's header, WiredTiger's
//! descriptor block): five passes at memchr speed were a third of a scan's time.
//! `aho-corasick`'s packed (Teddy) searcher finds all five in one SIMD pass. The magic
//! numbers start with five different bytes, so no two can start at one offset and
//! searching on from each hit's next byte finds every occurrence of each.

use aho_corasick::Span;
use aho_corasick::packed::{Config, Searcher};
use std::sync::LazyLock;

use crate::carve::{bson, flv, mmapv1, nsfile, wiredtiger};

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
}

/// The magic numbers, by [`Magic`].
const NEEDLES: [&[u8]; 5] = [
    bson::ID_KEY,
    mmapv1::EXTENT_MAGIC,
    nsfile::ANCHOR,
    flv::MAGIC,
    &wiredtiger::FILE_MAGIC,
];

/// The searcher for all of them; `None` where the CPU has no packed searcher (each is
/// then searched for on its own).
static SEARCHER: LazyLock<Option<Searcher>> =
    LazyLock::new(|| Config::new().builder().extend(NEEDLES).build());

/// Where each magic number occurs in one buffer, ascending.
pub struct Anchors {
    at: [Vec<usize>; 5],
}

impl Anchors {
    /// Every occurrence of every magic number in `buf`.
    pub fn find(buf: &[u8]) -> Anchors {
        let mut at: [Vec<usize>; 5] = Default::default();
        let Some(searcher) = SEARCHER.as_ref() else {
            for (found, needle) in at.iter_mut().zip(NEEDLES) {
                *found = memchr::memmem::find_iter(buf, needle).collect();
            }
            return Anchors { at };
        };
        let mut from = 0;
        while let Some(m) = searcher.find_in(buf, Span::from(from..buf.len())) {
            at[m.pattern().as_usize()].push(m.start());
            from = m.start() + 1;
        }
        Anchors { at }
    }

    /// Where `magic` occurs, ascending.
    pub fn of(&self, magic: Magic) -> impl Iterator<Item = usize> + '_ {
        self.at[magic as usize].iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ];
        for (magic, needle) in magics.into_iter().zip(NEEDLES) {
            let each: Vec<usize> = memchr::memmem::find_iter(&buf, needle).collect();
            assert!(each.len() >= 3, "{needle:?}");
            assert_eq!(anchors.of(magic).collect::<Vec<_>>(), each, "{needle:?}");
        }
    }
}
